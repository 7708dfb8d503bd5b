//! Moving a session to another room in Redis (RoomService.MoveParticipant):
//! the join script on the destination (refusing, not replacing, a session
//! of the same identity), then the leave script on the room it was in, then
//! its locator. The two rooms may be in different cluster slots, so the
//! move is two atomic steps, not one: in between, the session is a member
//! of both (a relay finds it in either), never of neither.

use switchboard_proto::{RoomId, SessionId};

use super::{
    MoveOutcome, StoreError, keys,
    redis::{RedisStore, decode_record, encode_record, failed},
};

impl RedisStore {
    pub(super) async fn relocate(
        &self,
        id: SessionId,
        to: &RoomId,
        max_participants: usize,
    ) -> Result<MoveOutcome, StoreError> {
        let Some(from) = self.room_of(id).await? else {
            return Ok(MoveOutcome::Gone);
        };
        let sid = id.to_string();
        let record: Option<String> = redis::cmd("HGET")
            .arg(keys::records(&from))
            .arg(&sid)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        let Some(mut record) = record.as_deref().and_then(decode_record) else {
            return Ok(MoveOutcome::Gone);
        };
        record.room = to.clone();
        record.moved = true;
        let ttl = self.record_ttl().as_secs().max(1);
        let dest = to.as_str();
        let reply: redis::Value = self
            .join
            .key(keys::members(dest))
            .key(keys::records(dest))
            .key(keys::room(dest))
            .arg(record.participant.as_str())
            .arg(&sid)
            .arg(ttl)
            .arg(encode_record(&record))
            .arg(max_participants)
            .arg("1")
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        let word = |w: &str| {
            matches!(&reply, redis::Value::BulkString(b) if b == w.as_bytes())
                || matches!(&reply, redis::Value::SimpleString(s) if s == w)
        };
        if word("full") {
            return Ok(MoveOutcome::Full);
        }
        if word("occupied") {
            return Ok(MoveOutcome::Occupied);
        }
        let (_, _, others, first): (String, String, Vec<String>, i64) =
            redis::from_redis_value(reply).map_err(|e| StoreError(e.to_string()))?;
        if first == 1 {
            self.index_room(dest).await?;
        }
        let left: Option<(String, u64)> = self
            .leave
            .key(keys::members(&from))
            .key(keys::records(&from))
            .key(keys::room(&from))
            .arg(&sid)
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        let left_empty = left.as_ref().is_some_and(|(_, members)| *members == 0);
        if left_empty {
            self.unindex_if_gone(&from).await?;
        }
        let _: () = redis::cmd("SET")
            .arg(keys::locator(&sid))
            .arg(dest)
            .arg("EX")
            .arg(ttl)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(MoveOutcome::Moved {
            record,
            others: others.iter().filter_map(|r| decode_record(r)).collect(),
            left_empty,
        })
    }
}
