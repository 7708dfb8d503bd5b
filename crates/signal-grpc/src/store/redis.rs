//! The Redis [`SessionStore`]: rooms and sessions shared by every signal
//! replica, on standalone Redis or Redis Cluster. A room is two hashes in
//! one slot (the hash tag is a digest of the room name, so any name slots
//! correctly): its members and their records. Each operation on a room is
//! one Lua script that declares every key it touches (atomic in a cluster
//! too); the session → room locator is a separate key. Key schema and
//! lifetimes: [`super::keys`].

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use redis::{Script, Value};
use serde_json::json;
use switchboard_proto::{ParticipantId, RoomId, SessionId};

pub use super::redis_connection::RedisConnection;
use super::{Departure, JoinOutcome, SessionRecord, SessionStore, StoreError, keys};

/// Joins: KEYS = members, records. ARGV = participant, session id, ttl,
/// record JSON, max participants. Returns 'full', or {old session id or '',
/// old record JSON or '', {record JSON of every other member}}: the
/// snapshot is taken atomically with the join.
const JOIN: &str = r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return 'full' end
local others = {}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if all[i] ~= old and all[i] ~= ARGV[2] then table.insert(others, all[i + 1]) end
end
local old_record = ''
if old and old ~= ARGV[2] then
  old_record = redis.call('HGET', KEYS[2], old) or ''
  redis.call('HDEL', KEYS[2], old)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {old or '', old_record, others}
"#;

/// Leaves: KEYS = members, records. ARGV = session id. Returns the record
/// JSON, or false. The membership goes only if the session still holds it.
const LEAVE: &str = r#"
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
local participant = cjson.decode(record).participant
if redis.call('HGET', KEYS[1], participant) == ARGV[1] then
  redis.call('HDEL', KEYS[1], participant)
end
return {record, redis.call('HLEN', KEYS[1])}
"#;

/// Sets attributes: KEYS = records. ARGV = session id, attributes JSON.
/// Returns the new record JSON, or false.
const SET_ATTRIBUTES: &str = r#"
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return false end
local fields = cjson.decode(record)
fields.attributes = ARGV[2]
record = cjson.encode(fields)
redis.call('HSET', KEYS[1], ARGV[1], record)
return record
"#;

/// Sessions and rooms in Redis.
pub struct RedisStore {
    connection: RedisConnection,
    /// Lifetime of every key (refreshed on join); leave deletes them.
    record_ttl: Duration,
    join: Script,
    leave: Script,
    set_attributes: Script,
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

/// A record as stored: every field a string (Lua's JSON keeps numbers as
/// doubles), attributes as their own JSON.
fn encode_record(record: &SessionRecord) -> String {
    let attributes = serde_json::to_string(&record.attributes).unwrap_or_else(|_| "{}".into());
    json!({
        "id": record.id.to_string(),
        "room": record.room.as_str(),
        "participant": record.participant.as_str(),
        "name": record.name,
        "attributes": attributes,
        "joined_at_ms": record.joined_at_ms.to_string(),
    })
    .to_string()
}

fn decode_record(stored: &str) -> Option<SessionRecord> {
    let fields: HashMap<String, String> = serde_json::from_str(stored).ok()?;
    Some(SessionRecord {
        id: SessionId::parse(fields.get("id")?)?,
        room: RoomId::new(fields.get("room")?).ok()?,
        participant: ParticipantId::new(fields.get("participant")?).ok()?,
        name: fields.get("name").cloned().unwrap_or_default(),
        attributes: fields
            .get("attributes")
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default(),
        joined_at_ms: fields
            .get("joined_at_ms")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
    })
}

impl RedisStore {
    pub fn new(connection: RedisConnection, record_ttl: Duration) -> Self {
        Self {
            connection,
            record_ttl,
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            set_attributes: Script::new(SET_ATTRIBUTES),
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
        let ttl = self.record_ttl.as_secs().max(1);
        let mut conn = self.conn();
        let reply: Value = self
            .join
            .key(keys::members(room))
            .key(keys::records(room))
            .arg(record.participant.as_str())
            .arg(&sid)
            .arg(ttl)
            .arg(encode_record(&record))
            .arg(max_participants)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        if matches!(&reply, Value::BulkString(b) if b == b"full")
            || matches!(&reply, Value::SimpleString(s) if s == "full")
        {
            return Ok(JoinOutcome::Full);
        }
        let (old_id, old_record, others): (String, String, Vec<String>) =
            redis::from_redis_value(reply).map_err(|e| StoreError(e.to_string()))?;
        let _: () = redis::cmd("SET")
            .arg(keys::locator(&sid))
            .arg(room)
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        let others = others.iter().filter_map(|r| decode_record(r)).collect();
        if !old_id.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys::locator(&old_id))
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
        }
        Ok(JoinOutcome::Joined {
            replaced: decode_record(&old_record),
            others,
        })
    }

    async fn depart(&self, id: SessionId) -> Result<Option<Departure>, StoreError> {
        let Some(room) = self.room_of(id).await? else {
            return Ok(None);
        };
        let sid = id.to_string();
        let mut conn = self.conn();
        let left: Option<(String, u64)> = self
            .leave
            .key(keys::members(&room))
            .key(keys::records(&room))
            .arg(&sid)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        let _: () = redis::cmd("DEL")
            .arg(keys::locator(&sid))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(left.and_then(|(record, members)| {
            Some(Departure {
                record: decode_record(&record)?,
                room_empty: members == 0,
            })
        }))
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let Some(room) = self.room_of(id).await? else {
            return Ok(None);
        };
        let record: Option<String> = redis::cmd("HGET")
            .arg(keys::records(&room))
            .arg(id.to_string())
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(record.as_deref().and_then(decode_record))
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
        let record: Option<String> = self
            .set_attributes
            .key(keys::records(&room))
            .arg(id.to_string())
            .arg(json)
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(record.as_deref().and_then(decode_record))
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

    async fn lookup_many(
        &self,
        queries: &[(&RoomId, [&ParticipantId; 2])],
    ) -> Result<Vec<Vec<Option<SessionId>>>, StoreError> {
        // One pipeline (reads: their order does not matter); a cluster
        // routes each room to its own node, so it asks one by one.
        if queries.len() < 2 || self.conn().is_cluster() {
            let mut results = Vec::with_capacity(queries.len());
            for (room, participants) in queries {
                results.push(self.lookup(room, participants).await?);
            }
            return Ok(results);
        }
        let mut pipe = redis::pipe();
        for (room, [a, b]) in queries {
            pipe.cmd("HMGET")
                .arg(keys::members(room.as_str()))
                .arg(a.as_str())
                .arg(b.as_str());
        }
        let replies: Vec<Vec<Option<String>>> =
            pipe.query_async(&mut self.conn()).await.map_err(failed)?;
        Ok(replies
            .into_iter()
            .map(|ids| {
                ids.into_iter()
                    .map(|id| id.as_deref().and_then(SessionId::parse))
                    .collect()
            })
            .collect())
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(set.is_some())
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn members(&self, room: &RoomId) -> Result<Vec<SessionRecord>, StoreError> {
        let records: Vec<String> = redis::cmd("HVALS")
            .arg(keys::records(room.as_str()))
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(records.iter().filter_map(|r| decode_record(r)).collect())
    }
}
