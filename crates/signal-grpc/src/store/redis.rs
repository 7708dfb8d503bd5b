//! The Redis [`SessionStore`]: rooms and sessions shared by every signal
//! replica, on standalone Redis or Redis Cluster. Each operation on a room
//! is one Lua script on the room's slot (atomic); the session → room
//! locator is a separate key. Key schema and lifetimes: [`super::keys`].

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use redis::{Script, Value};
use switchboard_proto::{ParticipantId, RoomId, SessionId};

pub use super::redis_connection::RedisConnection;
use super::{JoinOutcome, SessionRecord, SessionStore, StoreError, keys};

/// Joins: KEYS = members, new session. ARGV = participant, session id, ttl,
/// name, attributes JSON, joined_at_ms, room, session key prefix, max
/// participants. Returns 'full', or {old session id or '', old record
/// fields, {session id, record fields}... of every other member}: the
/// snapshot is taken atomically with the join.
const JOIN: &str = r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[9]) then return 'full' end
local others = {}
for _, id in ipairs(redis.call('HVALS', KEYS[1])) do
  if id ~= old then
    local record = redis.call('HGETALL', ARGV[8] .. id)
    if #record > 0 then
      table.insert(others, id)
      table.insert(others, record)
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], 'participant', ARGV[1], 'name', ARGV[4], 'attributes', ARGV[5], 'joined_at_ms', ARGV[6], 'room', ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if old and old ~= ARGV[2] then
  local old_key = ARGV[8] .. old
  local record = redis.call('HGETALL', old_key)
  redis.call('DEL', old_key)
  return {old, record, others}
end
return {'', {}, others}
"#;

/// Leaves: KEYS = members, session. ARGV = session id. Returns the record
/// fields, or false.
const LEAVE: &str = r#"
local record = redis.call('HGETALL', KEYS[2])
if #record == 0 then return false end
redis.call('DEL', KEYS[2])
for i = 1, #record, 2 do
  if record[i] == 'participant' and redis.call('HGET', KEYS[1], record[i + 1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], record[i + 1])
  end
end
return record
"#;

/// Sets attributes: KEYS = session. ARGV = attributes JSON. Returns the
/// record fields, or false.
const SET_ATTRIBUTES: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'attributes', ARGV[1])
return redis.call('HGETALL', KEYS[1])
"#;

/// Members: KEYS = members. ARGV = session key prefix. Returns a flat list
/// of {session id, record fields}.
const MEMBERS: &str = r#"
local out = {}
for _, id in ipairs(redis.call('HVALS', KEYS[1])) do
  local record = redis.call('HGETALL', ARGV[1] .. id)
  if #record > 0 then
    table.insert(out, id)
    table.insert(out, record)
  end
end
return out
"#;

/// Sessions and rooms in Redis.
pub struct RedisStore {
    connection: RedisConnection,
    /// Lifetime of every key (refreshed on join); leave deletes them.
    record_ttl: Duration,
    join: Script,
    leave: Script,
    set_attributes: Script,
    members: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("record_ttl", &self.record_ttl)
            .finish_non_exhaustive()
    }
}

fn failed(err: redis::RedisError) -> StoreError {
    StoreError(err.to_string())
}

fn decode_record(id: SessionId, fields: Vec<String>) -> Option<SessionRecord> {
    let map: HashMap<String, String> = fields
        .chunks(2)
        .filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone())))
        .collect();
    Some(SessionRecord {
        id,
        room: RoomId::new(map.get("room")?).ok()?,
        participant: ParticipantId::new(map.get("participant")?).ok()?,
        name: map.get("name").cloned().unwrap_or_default(),
        attributes: map
            .get("attributes")
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default(),
        joined_at_ms: map
            .get("joined_at_ms")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
    })
}

/// A flat list {session id, record fields, ...} as records.
fn decode_records(raw: Vec<Value>) -> Result<Vec<SessionRecord>, StoreError> {
    let mut records = Vec::with_capacity(raw.len() / 2);
    for pair in raw.chunks(2) {
        let (Some(id), Some(fields)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        let id: String =
            redis::from_redis_value(id.clone()).map_err(|e| StoreError(e.to_string()))?;
        let fields: Vec<String> =
            redis::from_redis_value(fields.clone()).map_err(|e| StoreError(e.to_string()))?;
        if let Some(record) = SessionId::parse(&id).and_then(|id| decode_record(id, fields)) {
            records.push(record);
        }
    }
    Ok(records)
}

impl RedisStore {
    pub fn new(connection: RedisConnection, record_ttl: Duration) -> Self {
        Self {
            connection,
            record_ttl,
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            set_attributes: Script::new(SET_ATTRIBUTES),
            members: Script::new(MEMBERS),
        }
    }

    fn conn(&self) -> RedisConnection {
        self.connection.clone()
    }

    async fn room_of(&self, id: SessionId) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(keys::locator(&id.to_string()))
            .query_async(&mut self.conn())
            .await
            .map_err(failed)
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn join(
        &self,
        record: SessionRecord,
        max_participants: usize,
    ) -> Result<JoinOutcome, StoreError> {
        let (room, sid) = (record.room.as_str(), record.id.to_string());
        let attributes = serde_json::to_string(&record.attributes).unwrap_or_else(|_| "{}".into());
        let ttl = self.record_ttl.as_secs().max(1);
        let mut conn = self.conn();
        let reply: Value = self
            .join
            .key(keys::members(room))
            .key(keys::session(room, &sid))
            .arg(record.participant.as_str())
            .arg(&sid)
            .arg(ttl)
            .arg(&record.name)
            .arg(attributes)
            .arg(record.joined_at_ms)
            .arg(room)
            .arg(keys::session_prefix(room))
            .arg(max_participants)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        if matches!(&reply, Value::BulkString(b) if b == b"full")
            || matches!(&reply, Value::SimpleString(s) if s == "full")
        {
            return Ok(JoinOutcome::Full);
        }
        let (old_id, old_fields, others): (String, Vec<String>, Vec<Value>) =
            redis::from_redis_value(reply).map_err(|e| StoreError(e.to_string()))?;
        let _: () = redis::cmd("SET")
            .arg(keys::locator(&sid))
            .arg(room)
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        let others = decode_records(others)?;
        if old_id.is_empty() {
            return Ok(JoinOutcome::Joined {
                replaced: None,
                others,
            });
        }
        let _: () = redis::cmd("DEL")
            .arg(keys::locator(&old_id))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(JoinOutcome::Joined {
            replaced: SessionId::parse(&old_id).and_then(|id| decode_record(id, old_fields)),
            others,
        })
    }

    async fn leave(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let Some(room) = self.room_of(id).await? else {
            return Ok(None);
        };
        let sid = id.to_string();
        let mut conn = self.conn();
        let fields: Option<Vec<String>> = self
            .leave
            .key(keys::members(&room))
            .key(keys::session(&room, &sid))
            .arg(&sid)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        let _: () = redis::cmd("DEL")
            .arg(keys::locator(&sid))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(fields.and_then(|f| decode_record(id, f)))
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let Some(room) = self.room_of(id).await? else {
            return Ok(None);
        };
        let fields: Vec<String> = redis::cmd("HGETALL")
            .arg(keys::session(&room, &id.to_string()))
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(if fields.is_empty() {
            None
        } else {
            decode_record(id, fields)
        })
    }

    async fn set_attributes(
        &self,
        id: SessionId,
        attributes: HashMap<String, String>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(room) = self.room_of(id).await? else {
            return Ok(None);
        };
        let json = serde_json::to_string(&attributes).unwrap_or_else(|_| "{}".into());
        let fields: Option<Vec<String>> = self
            .set_attributes
            .key(keys::session(&room, &id.to_string()))
            .arg(json)
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(fields.and_then(|f| decode_record(id, f)))
    }

    async fn member(
        &self,
        room: &RoomId,
        participant: &ParticipantId,
    ) -> Result<Option<SessionId>, StoreError> {
        let id: Option<String> = redis::cmd("HGET")
            .arg(keys::members(room.as_str()))
            .arg(participant.as_str())
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(id.as_deref().and_then(SessionId::parse))
    }

    async fn lookup(
        &self,
        room: &RoomId,
        participants: &[&ParticipantId],
    ) -> Result<Vec<Option<SessionId>>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(keys::members(room.as_str()));
        for participant in participants {
            cmd.arg(participant.as_str());
        }
        let ids: Vec<Option<String>> = cmd.query_async(&mut self.conn()).await.map_err(failed)?;
        Ok(ids
            .into_iter()
            .map(|id| id.as_deref().and_then(SessionId::parse))
            .collect())
    }

    async fn members(&self, room: &RoomId) -> Result<Vec<SessionRecord>, StoreError> {
        let raw: Vec<Value> = self
            .members
            .key(keys::members(room.as_str()))
            .arg(keys::session_prefix(room.as_str()))
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        decode_records(raw)
    }
}
