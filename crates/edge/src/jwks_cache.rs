//! The JWKS the edge publishes at `/.well-known/jwks.json`, fetched from
//! auth at most once a minute however many anonymous requests come, and
//! served from the last copy while auth is unreachable (the keys change
//! only at rotation, which keeps the old key verifying for a while).

use std::{sync::Arc, time::Duration};

use switchboard_proto::{SignalError, auth_client::AuthClient};
use tokio::{sync::Mutex, time::Instant};

/// How long a fetched JWKS is served before auth is asked again.
pub const JWKS_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
pub struct JwksCache {
    /// The last document and when it was fetched. The lock is held across
    /// a fetch: concurrent requests wait for one call instead of making
    /// their own.
    last: Arc<Mutex<Option<(Instant, String)>>>,
}

impl JwksCache {
    pub async fn get(&self, auth: &AuthClient) -> Result<String, SignalError> {
        let mut last = self.last.lock().await;
        if let Some((at, jwks)) = last.as_ref()
            && at.elapsed() < JWKS_TTL
        {
            return Ok(jwks.clone());
        }
        match auth.jwks().await {
            Ok(jwks) => {
                *last = Some((Instant::now(), jwks.clone()));
                Ok(jwks)
            }
            // Stale beats nothing: the keys it lists still verify.
            Err(err) => last.as_ref().map(|(_, jwks)| jwks.clone()).ok_or(err),
        }
    }
}
