//! Rooms' own settings in Redis, and the index of rooms that exist
//! (`sb:rooms`, listed by name). A room's settings share its slot, so the
//! join and leave scripts apply them atomically (its maximum, its empty
//! timeout). The index is another slot: a room enters it with its first
//! member or its creation, and leaves it when found neither occupied nor
//! created — then it is checked again, so a join racing the removal puts
//! it back (the join's own `ZADD` follows its script).

use std::collections::HashMap;

use switchboard_proto::RoomId;

use super::{
    CreateOutcome, RoomInfo, RoomSettings, StoreError, keys,
    redis::{RedisStore, failed},
};

/// Creates a room: KEYS = settings, members. ARGV = record ttl, empty
/// timeout, then the settings' field/value pairs. Returns 'exists' or the
/// member count.
pub(super) const CREATE_ROOM: &str = r#"
if redis.call('HGET', KEYS[1], 'created') == '1' then return 'exists' end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local members = redis.call('HLEN', KEYS[2])
if members == 0 then
  redis.call('EXPIRE', KEYS[1], math.max(tonumber(ARGV[2]), 1))
else
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]))
end
return members
"#;

/// Sets metadata: KEYS = settings, members. ARGV = metadata, record ttl.
/// Returns 0 if the room neither is created nor has members. Settings made
/// here (metadata only) live as long as the members' keys.
const SET_METADATA: &str = r#"
local created = redis.call('HGET', KEYS[1], 'created') == '1'
if not created and redis.call('HLEN', KEYS[2]) == 0 then return 0 end
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], 'metadata', ARGV[1])
if fresh then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"#;

/// Index entries checked at once when the index is full.
const SWEEP_BATCH: usize = 500;

impl RedisStore {
    pub(super) async fn create(
        &self,
        room: &RoomId,
        settings: RoomSettings,
        max_rooms: usize,
    ) -> Result<CreateOutcome, StoreError> {
        if self.indexed().await? >= max_rooms {
            self.sweep().await?;
            if self.indexed().await? >= max_rooms {
                return Ok(CreateOutcome::TooMany);
            }
        }
        let name = room.as_str();
        let mut script = self.create_room.key(keys::room(name));
        script
            .key(keys::members(name))
            .arg(self.record_ttl().as_secs().max(1))
            .arg(settings.empty_timeout.as_secs());
        for (field, value) in settings.to_fields() {
            script.arg(field).arg(value);
        }
        let reply: redis::Value = script
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        if matches!(&reply, redis::Value::BulkString(b) if b == b"exists")
            || matches!(&reply, redis::Value::SimpleString(s) if s == "exists")
        {
            return Ok(CreateOutcome::Exists);
        }
        self.index_room(name).await?;
        Ok(CreateOutcome::Created(self.room_info(name).await?))
    }

    pub(super) async fn room_info(&self, room: &str) -> Result<RoomInfo, StoreError> {
        let name = RoomId::new(room).map_err(|e| StoreError(format!("room name: {e}")))?;
        let (fields, members): (HashMap<String, String>, u32) = redis::pipe()
            .cmd("HGETALL")
            .arg(keys::room(room))
            .cmd("HLEN")
            .arg(keys::members(room))
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(RoomInfo {
            name,
            members,
            settings: RoomSettings::from_fields(&fields),
        })
    }

    pub(super) async fn metadata(
        &self,
        room: &RoomId,
        metadata: &str,
    ) -> Result<Option<RoomInfo>, StoreError> {
        let name = room.as_str();
        let set: i64 = redis::Script::new(SET_METADATA)
            .key(keys::room(name))
            .key(keys::members(name))
            .arg(metadata)
            .arg(self.record_ttl().as_secs().max(1))
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        if set == 0 {
            return Ok(None);
        }
        Ok(Some(self.room_info(name).await?))
    }

    pub(super) async fn list(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<RoomInfo>, StoreError> {
        let lower: Vec<u8> = if !after.is_empty() && after >= prefix {
            [b"(", after.as_bytes()].concat()
        } else {
            [b"[", prefix.as_bytes()].concat()
        };
        // Past every name with the prefix: names are UTF-8, which never
        // holds a 0xFF byte.
        let upper: Vec<u8> = if prefix.is_empty() {
            b"+".to_vec()
        } else {
            [b"(", prefix.as_bytes(), &[0xFF]].concat()
        };
        let names: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(keys::ROOMS)
            .arg(lower)
            .arg(upper)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        let mut rooms = Vec::with_capacity(names.len());
        for name in names {
            let info = self.room_info(&name).await?;
            if info.exists() {
                rooms.push(info);
            } else {
                self.unindex_if_gone(&name).await?;
            }
        }
        Ok(rooms)
    }

    async fn indexed(&self) -> Result<usize, StoreError> {
        redis::cmd("ZCARD")
            .arg(keys::ROOMS)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)
    }

    /// Drops every index entry of a room that no longer exists (created
    /// rooms that timed out leave theirs behind).
    async fn sweep(&self) -> Result<(), StoreError> {
        let mut after = String::new();
        loop {
            let lower = if after.is_empty() {
                "-".to_owned()
            } else {
                format!("({after}")
            };
            let names: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(keys::ROOMS)
                .arg(lower)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(SWEEP_BATCH)
                .query_async(&mut self.conn())
                .await
                .map_err(failed)?;
            let Some(last) = names.last().cloned() else {
                return Ok(());
            };
            for name in &names {
                self.unindex_if_gone(name).await?;
            }
            after = last;
        }
    }

    pub(super) async fn index_room(&self, room: &str) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("ZADD")
            .arg(keys::ROOMS)
            .arg(0)
            .arg(room)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// Removes `room` from the index unless it exists, then looks again:
    /// a join that raced the removal is put back.
    pub(super) async fn unindex_if_gone(&self, room: &str) -> Result<(), StoreError> {
        if self.room_info(room).await?.exists() {
            return Ok(());
        }
        let _: i64 = redis::cmd("ZREM")
            .arg(keys::ROOMS)
            .arg(room)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        if self.room_info(room).await?.exists() {
            self.index_room(room).await?;
        }
        Ok(())
    }
}
