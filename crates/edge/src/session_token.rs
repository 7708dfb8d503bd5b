//! A joined connection's token: when to refresh it and when it expires.

use std::time::Duration;

use tokio::time::Instant;

/// Refresh at most this long before expiry…
const REFRESH_LEAD_MAX: Duration = Duration::from_secs(60);
/// …and at least this fraction of the remaining lifetime before it.
const REFRESH_LEAD_FRACTION: u32 = 5;
/// Wait before retrying a refresh that failed for a passing reason.
const REFRESH_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct SessionToken {
    token: String,
    expires_at: Instant,
    refresh_at: Option<Instant>,
}

fn instant_of(unix_secs: u64) -> Instant {
    let now = crate::now_secs();
    Instant::now() + Duration::from_secs(unix_secs.saturating_sub(now))
}

impl SessionToken {
    pub fn new(token: String, expires_at_unix: u64) -> Self {
        let mut state = Self {
            token,
            expires_at: Instant::now(),
            refresh_at: None,
        };
        state.set_expiry(expires_at_unix);
        state
    }

    fn set_expiry(&mut self, expires_at_unix: u64) {
        self.expires_at = instant_of(expires_at_unix);
        let remaining = self.expires_at.saturating_duration_since(Instant::now());
        let lead = (remaining / REFRESH_LEAD_FRACTION).min(REFRESH_LEAD_MAX);
        self.refresh_at = Some(self.expires_at - lead);
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    pub fn replace(&mut self, token: String, expires_at_unix: u64) {
        self.token = token;
        self.set_expiry(expires_at_unix);
    }

    pub fn retry_later(&mut self) {
        let retry = Instant::now() + REFRESH_RETRY;
        self.refresh_at = (retry < self.expires_at).then_some(retry);
    }

    pub fn stop_refreshing(&mut self) {
        self.refresh_at = None;
    }
}
