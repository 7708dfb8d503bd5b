//! How far one endpoint's deliveries got (the cursor of the last event it
//! acknowledged), and which replica delivers to it (a lease). In memory
//! both are this process's. In Redis they are shared: one replica holds
//! the lease (`SET … PX`, renewed while it delivers), the cursor is saved
//! after every acknowledged event, so a replica that takes over continues
//! after the last acknowledged one (an event acknowledged but not yet
//! saved when the holder died is delivered again: at least once).

use std::{sync::Mutex, time::Duration};

use async_trait::async_trait;
use sha1::{Digest, Sha1};

use crate::store::{RedisConnection, StoreError};

/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

#[async_trait]
pub trait Progress: Send + Sync + 'static {
    /// Takes or renews the lease; false if another replica holds it.
    async fn hold(&self) -> Result<bool, StoreError>;
    /// Lets go of the lease (at shutdown), if held.
    async fn release(&self);
    /// The last acknowledged event's cursor.
    async fn load(&self) -> Result<Option<String>, StoreError>;
    async fn save(&self, cursor: &str) -> Result<(), StoreError>;
}

/// This process only.
#[derive(Debug, Default)]
pub struct MemoryProgress {
    cursor: Mutex<Option<String>>,
}

#[async_trait]
impl Progress for MemoryProgress {
    async fn hold(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn release(&self) {}

    async fn load(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .cursor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn save(&self, cursor: &str) -> Result<(), StoreError> {
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(cursor.to_owned());
        Ok(())
    }
}

/// Takes the lease if free, renews it if ours: KEYS = lease. ARGV = node,
/// ttl ms. Returns 1 if held.
const HOLD: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// Deletes the lease if ours: KEYS = lease. ARGV = node.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Shared by the replicas, per endpoint.
pub struct RedisProgress {
    connection: RedisConnection,
    lease: String,
    cursor: String,
    node: String,
}

impl std::fmt::Debug for RedisProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProgress")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl RedisProgress {
    /// Progress of the endpoint `url`, for this replica `node`.
    pub fn new(connection: RedisConnection, url: &str, node: String) -> Self {
        let tag = hex::encode(&Sha1::digest(url.as_bytes())[..16]);
        Self {
            connection,
            lease: format!("sb:webhook:{{{tag}}}:lease"),
            cursor: format!("sb:webhook:{{{tag}}}:cursor"),
            node,
        }
    }
}

fn failed(err: redis::RedisError) -> StoreError {
    StoreError(err.to_string())
}

#[async_trait]
impl Progress for RedisProgress {
    async fn hold(&self) -> Result<bool, StoreError> {
        let held: i64 = redis::Script::new(HOLD)
            .key(&self.lease)
            .arg(&self.node)
            .arg(LEASE_TTL.as_millis() as u64)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        Ok(held == 1)
    }

    async fn release(&self) {
        let released: Result<i64, _> = redis::Script::new(RELEASE)
            .key(&self.lease)
            .arg(&self.node)
            .invoke_async(&mut self.connection.clone())
            .await;
        if let Err(err) = released {
            tracing::debug!(error = %err, "webhook lease not released (it expires)");
        }
    }

    async fn load(&self) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(&self.cursor)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(failed)
    }

    async fn save(&self, cursor: &str) -> Result<(), StoreError> {
        let _: () = redis::cmd("SET")
            .arg(&self.cursor)
            .arg(cursor)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        Ok(())
    }
}
