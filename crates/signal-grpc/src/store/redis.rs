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
use super::{
    CreateOutcome, Departure, IdentityClaim, JoinOutcome, MoveOutcome, RecordPatch, RoomInfo,
    RoomSettings, SessionRecord, SessionStore, StoreError, keys,
};

/// Joins: KEYS = members, records, room settings. ARGV = participant,
/// session id, ttl, record JSON, max participants, '1' to refuse (not
/// replace) a session of the same identity. Returns 'full', 'occupied', or {old
/// session id or '', old record JSON or '', {record JSON of every other
/// member}, 1 if the room was empty}: the snapshot is taken atomically with
/// the join. A room's own maximum (settings `max`) applies if lower; its
/// settings live as long as its members, plus its empty timeout.
pub(super) const JOIN: &str = r#"
local max = tonumber(ARGV[5])
local own = tonumber(redis.call('HGET', KEYS[3], 'max') or '0') or 0
if own > 0 and own < max then max = own end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and ARGV[6] == '1' then return 'occupied' end
local count = redis.call('HLEN', KEYS[1])
if not old and count >= max then return 'full' end
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
if redis.call('EXISTS', KEYS[3]) == 1 then
  local timeout = tonumber(redis.call('HGET', KEYS[3], 'empty_timeout') or '0') or 0
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]) + timeout)
end
local first = 0
if count == 0 then first = 1 end
return {old or '', old_record, others, first}
"#;

/// Leaves: KEYS = members, records, room settings. ARGV = session id.
/// Returns {record JSON, members left}, or false. The membership goes
/// only if the session still holds it. An emptied room's settings count
/// down its empty timeout if it was created, else they go.
pub(super) const LEAVE: &str = r#"
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
local participant = cjson.decode(record).participant
if redis.call('HGET', KEYS[1], participant) == ARGV[1] then
  redis.call('HDEL', KEYS[1], participant)
end
local left = redis.call('HLEN', KEYS[1])
if left == 0 then
  if redis.call('HGET', KEYS[3], 'created') == '1' then
    local timeout = tonumber(redis.call('HGET', KEYS[3], 'empty_timeout') or '1') or 1
    redis.call('EXPIRE', KEYS[3], math.max(timeout, 1))
  else
    redis.call('DEL', KEYS[3])
  end
end
return {record, left}
"#;

/// Changes a record: KEYS = records. ARGV = session id, then field/value
/// pairs. Returns the new record JSON, or false.
const UPDATE: &str = r#"
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return false end
local fields = cjson.decode(record)
for i = 2, #ARGV, 2 do fields[ARGV[i]] = ARGV[i + 1] end
record = cjson.encode(fields)
redis.call('HSET', KEYS[1], ARGV[1], record)
return record
"#;

/// Sessions and rooms in Redis.
pub struct RedisStore {
    connection: RedisConnection,
    /// Lifetime of every key (refreshed on join); leave deletes them.
    record_ttl: Duration,
    pub(super) join: Script,
    pub(super) leave: Script,
    update: Script,
    pub(super) create_room: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("record_ttl", &self.record_ttl)
            .finish_non_exhaustive()
    }
}

pub(super) fn failed(err: redis::RedisError) -> StoreError {
    StoreError(err.to_string())
}

/// A record as stored: every field a string (Lua's JSON keeps numbers as
/// doubles), attributes as their own JSON.
pub(super) fn encode_record(record: &SessionRecord) -> String {
    let attributes = serde_json::to_string(&record.attributes).unwrap_or_else(|_| "{}".into());
    json!({
        "id": record.id.to_string(),
        "room": record.room.as_str(),
        "participant": record.participant.as_str(),
        "name": record.name,
        "attributes": attributes,
        "joined_at_ms": record.joined_at_ms.to_string(),
        "publish": u8::from(record.publish).to_string(),
        "moved": u8::from(record.moved).to_string(),
    })
    .to_string()
}

pub(super) fn decode_record(stored: &str) -> Option<SessionRecord> {
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
        // Records written before permissions were stored could publish.
        publish: fields.get("publish").is_none_or(|p| p == "1"),
        moved: fields.get("moved").is_some_and(|m| m == "1"),
    })
}

impl RedisStore {
    pub fn new(connection: RedisConnection, record_ttl: Duration) -> Self {
        Self {
            connection,
            record_ttl,
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            update: Script::new(UPDATE),
            create_room: Script::new(super::redis_rooms::CREATE_ROOM),
        }
    }

    pub(super) fn record_ttl(&self) -> Duration {
        self.record_ttl
    }

    pub(super) fn conn(&self) -> RedisConnection {
        self.connection.clone()
    }

    pub(super) async fn room_of(&self, id: SessionId) -> Result<Option<String>, StoreError> {
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
            .key(keys::room(room))
            .arg(record.participant.as_str())
            .arg(&sid)
            .arg(ttl)
            .arg(encode_record(&record))
            .arg(max_participants)
            .arg("0")
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        if matches!(&reply, Value::BulkString(b) if b == b"full")
            || matches!(&reply, Value::SimpleString(s) if s == "full")
        {
            return Ok(JoinOutcome::Full);
        }
        let (old_id, old_record, others, first): (String, String, Vec<String>, i64) =
            redis::from_redis_value(reply).map_err(|e| StoreError(e.to_string()))?;
        if first == 1 {
            self.index_room(room).await?;
        }
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
            .key(keys::room(&room))
            .arg(&sid)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        let _: () = redis::cmd("DEL")
            .arg(keys::locator(&sid))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        if left.as_ref().is_some_and(|(_, members)| *members == 0) {
            self.unindex_if_gone(&room).await?;
        }
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

    async fn update(
        &self,
        id: SessionId,
        patch: &RecordPatch,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(room) = self.room_of(id).await? else {
            return Ok(None);
        };
        let mut script = self.update.key(keys::records(&room));
        script.arg(id.to_string());
        if let Some(name) = &patch.name {
            script.arg("name").arg(name);
        }
        if let Some(attributes) = &patch.attributes {
            let json = serde_json::to_string(attributes).unwrap_or_else(|_| "{}".into());
            script.arg("attributes").arg(json);
        }
        if let Some(publish) = patch.publish {
            script.arg("publish").arg(u8::from(publish).to_string());
        }
        let record: Option<String> = script
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(record.as_deref().and_then(decode_record))
    }

    async fn move_session(
        &self,
        id: SessionId,
        to: &RoomId,
        max_participants: usize,
    ) -> Result<MoveOutcome, StoreError> {
        self.relocate(id, to, max_participants).await
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

    async fn create_room(
        &self,
        room: &RoomId,
        settings: RoomSettings,
        max_rooms: usize,
    ) -> Result<CreateOutcome, StoreError> {
        self.create(room, settings, max_rooms).await
    }

    async fn claim_identity(
        &self,
        identity: &ParticipantId,
        session: SessionId,
        max: usize,
        now_ms: u64,
    ) -> Result<IdentityClaim, StoreError> {
        self.claim(identity, session, max, now_ms).await
    }

    async fn release_identity(
        &self,
        identity: &ParticipantId,
        session: SessionId,
    ) -> Result<(), StoreError> {
        self.release(identity, session).await
    }

    async fn room(&self, room: &RoomId) -> Result<RoomInfo, StoreError> {
        self.room_info(room.as_str()).await
    }

    async fn set_room_metadata(
        &self,
        room: &RoomId,
        metadata: &str,
    ) -> Result<Option<RoomInfo>, StoreError> {
        self.metadata(room, metadata).await
    }

    async fn list_rooms(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<RoomInfo>, StoreError> {
        self.list(prefix, after, limit).await
    }

    async fn delete_room(&self, room: &RoomId) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(keys::room(room.as_str()))
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        self.unindex_if_gone(room.as_str()).await
    }
}
