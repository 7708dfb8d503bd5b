//! The sessions of each identity in Redis (`sb:ident:{<identity tag>}`, a
//! sorted set of session ids by join time): the cluster-wide count behind
//! `--max-sessions-per-identity`. The claim is one script on one key, so
//! two joins racing for the last place cannot both take it.

use switchboard_proto::{ParticipantId, SessionId};

use super::{
    IdentityClaim, StoreError, keys,
    redis::{RedisStore, failed},
};

/// KEYS = the identity's set. ARGV = session, max, now (ms), ttl (s).
/// Returns {} when the session holds a place (already, or now), else every
/// holder, oldest first.
const CLAIM: &str = r#"
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {}
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {}
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"#;

impl RedisStore {
    pub(super) async fn claim(
        &self,
        identity: &ParticipantId,
        session: SessionId,
        max: usize,
        now_ms: u64,
    ) -> Result<IdentityClaim, StoreError> {
        let holders: Vec<String> = redis::Script::new(CLAIM)
            .key(keys::identity(identity.as_str()))
            .arg(session.to_string())
            .arg(max)
            .arg(now_ms)
            .arg(self.record_ttl().as_secs().max(1))
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        if holders.is_empty() {
            return Ok(IdentityClaim::Held);
        }
        Ok(IdentityClaim::Full(
            holders.iter().filter_map(|h| SessionId::parse(h)).collect(),
        ))
    }

    pub(super) async fn release(
        &self,
        identity: &ParticipantId,
        session: SessionId,
    ) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("ZREM")
            .arg(keys::identity(identity.as_str()))
            .arg(session.to_string())
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(())
    }
}
