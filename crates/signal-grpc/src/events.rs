//! The room event log behind `WatchRoomEvents`: every room event, in one
//! order, kept for a bounded retention, read from a cursor.
//!
//! - Memory: a ring of the last [`MEMORY_CAPACITY`] events; cursors are
//!   the event numbers.
//! - Redis: one stream, `sb:events` (`XADD … MAXLEN ~` [`REDIS_CAPACITY`]);
//!   cursors are its entry ids, so a watcher continues on any replica.
//!   Whether events after a cursor were trimmed is the stream's
//!   `max-deleted-entry-id` (Redis ≥ 7).
//!
//! A watcher reads what follows its cursor, then waits: for an append on
//! this process (at once) or [`POLL_INTERVAL`] (appends on other
//! replicas).

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use prost::Message as _;
use switchboard_proto::{RoomId, pb};
use tokio::sync::watch;

use crate::store::{RedisConnection, StoreError};

/// Events the memory log keeps.
pub const MEMORY_CAPACITY: usize = 10_000;
/// Events the Redis stream keeps (approximately: `MAXLEN ~`).
pub const REDIS_CAPACITY: usize = 100_000;
/// How often a waiting watcher looks for other replicas' appends.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Events read at once.
pub const READ_BATCH: usize = 256;
const KEY: &str = "sb:events";

/// What follows a cursor.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events after the cursor, in order, each with its cursor set.
    pub events: Vec<pb::RoomEvent>,
    /// Events right after the cursor are no longer kept.
    pub missed: bool,
    /// The cursor to read from next.
    pub next: String,
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends an event of `room` (its cursor and time are set here).
    async fn append(&self, room: &RoomId, event: pb::room_event::Event) -> Result<(), StoreError>;
    /// The cursor of the latest event ("from now").
    async fn now(&self) -> Result<String, StoreError>;
    /// Up to [`READ_BATCH`] events after `cursor`.
    async fn read(&self, cursor: &str) -> Result<Batch, StoreError>;
    /// Resolves after a local append or [`POLL_INTERVAL`].
    async fn changed(&self);
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn event(room: &RoomId, event: pb::room_event::Event) -> pb::RoomEvent {
    pb::RoomEvent {
        cursor: String::new(),
        at_ms: now_ms(),
        room: room.to_string(),
        event: Some(event),
    }
}

/// The memory log.
#[derive(Debug)]
pub struct MemoryEvents {
    ring: Mutex<(u64, VecDeque<pb::RoomEvent>)>,
    appended: watch::Sender<u64>,
}

impl Default for MemoryEvents {
    fn default() -> Self {
        Self {
            ring: Mutex::new((0, VecDeque::new())),
            appended: watch::Sender::new(0),
        }
    }
}

#[async_trait]
impl EventLog for MemoryEvents {
    async fn append(&self, room: &RoomId, e: pb::room_event::Event) -> Result<(), StoreError> {
        let number = {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            ring.0 += 1;
            let number = ring.0;
            let mut event = event(room, e);
            event.cursor = number.to_string();
            ring.1.push_back(event);
            if ring.1.len() > MEMORY_CAPACITY {
                ring.1.pop_front();
            }
            number
        };
        self.appended.send_replace(number);
        Ok(())
    }

    async fn now(&self) -> Result<String, StoreError> {
        Ok(self
            .ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .to_string())
    }

    async fn read(&self, cursor: &str) -> Result<Batch, StoreError> {
        let after: u64 = cursor
            .parse()
            .map_err(|_| StoreError(format!("bad cursor {cursor:?}")))?;
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = ring
            .1
            .front()
            .map_or(ring.0 + 1, |e| e.cursor.parse::<u64>().unwrap_or(0));
        let events: Vec<_> = ring
            .1
            .iter()
            .skip_while(|e| e.cursor.parse::<u64>().unwrap_or(0) <= after)
            .take(READ_BATCH)
            .cloned()
            .collect();
        let next = events
            .last()
            .map_or(cursor.to_owned(), |e| e.cursor.clone());
        Ok(Batch {
            missed: after + 1 < oldest,
            events,
            next,
        })
    }

    async fn changed(&self) {
        let mut rx = self.appended.subscribe();
        let _ = tokio::time::timeout(POLL_INTERVAL, rx.changed()).await;
    }
}

/// The Redis log.
pub struct RedisEvents {
    connection: RedisConnection,
    appended: watch::Sender<u64>,
}

impl RedisEvents {
    pub fn new(connection: RedisConnection) -> Self {
        Self {
            connection,
            appended: watch::Sender::new(0),
        }
    }
}

/// A stream entry id as (ms, seq), for comparisons.
fn entry_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn failed(err: redis::RedisError) -> StoreError {
    StoreError(err.to_string())
}

#[async_trait]
impl EventLog for RedisEvents {
    async fn append(&self, room: &RoomId, e: pb::room_event::Event) -> Result<(), StoreError> {
        let encoded = event(room, e).encode_to_vec();
        let _: String = redis::cmd("XADD")
            .arg(KEY)
            .arg("MAXLEN")
            .arg("~")
            .arg(REDIS_CAPACITY)
            .arg("*")
            .arg("e")
            .arg(encoded)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        self.appended.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn now(&self) -> Result<String, StoreError> {
        let last: Vec<(String, Vec<(String, Vec<u8>)>)> = redis::cmd("XREVRANGE")
            .arg(KEY)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        Ok(last.into_iter().next().map_or("0-0".into(), |(id, _)| id))
    }

    async fn read(&self, cursor: &str) -> Result<Batch, StoreError> {
        let after = entry_id(cursor).ok_or_else(|| StoreError(format!("bad cursor {cursor:?}")))?;
        let mut conn = self.connection.clone();
        // XRANGE with an exclusive start: the entries after the cursor.
        let entries: Vec<(String, Vec<(String, Vec<u8>)>)> = redis::cmd("XRANGE")
            .arg(KEY)
            .arg(format!("({cursor}"))
            .arg("+")
            .arg("COUNT")
            .arg(READ_BATCH)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        // Trimmed past the cursor: what followed it is gone.
        let info: redis::Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(KEY)
            .query_async(&mut conn)
            .await
            .unwrap_or(redis::Value::Nil);
        let deleted = max_deleted(&info).and_then(|id| entry_id(&id));
        let missed = deleted.is_some_and(|d| d > after);
        let mut events = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            let Some((_, bytes)) = fields.into_iter().find(|(f, _)| f == "e") else {
                continue;
            };
            if let Ok(mut event) = pb::RoomEvent::decode(bytes.as_slice()) {
                event.cursor = id;
                events.push(event);
            }
        }
        let next = events
            .last()
            .map_or(cursor.to_owned(), |e| e.cursor.clone());
        Ok(Batch {
            events,
            missed,
            next,
        })
    }

    async fn changed(&self) {
        let mut rx = self.appended.subscribe();
        let _ = tokio::time::timeout(POLL_INTERVAL, rx.changed()).await;
    }
}

/// `max-deleted-entry-id` of an `XINFO STREAM` reply (RESP2: a flat list
/// of names and values).
fn max_deleted(info: &redis::Value) -> Option<String> {
    let redis::Value::Array(items) = info else {
        return None;
    };
    let mut items = items.iter();
    while let Some(name) = items.next() {
        let value = items.next()?;
        if matches!(name, redis::Value::BulkString(n) if n == b"max-deleted-entry-id") {
            return match value {
                redis::Value::BulkString(v) => String::from_utf8(v.clone()).ok(),
                redis::Value::SimpleString(v) => Some(v.clone()),
                _ => None,
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(id: &str) -> pb::room_event::Event {
        pb::room_event::Event::ParticipantJoined(pb::ParticipantJoined {
            participant: Some(pb::Participant {
                id: id.into(),
                ..Default::default()
            }),
        })
    }

    #[tokio::test]
    async fn a_cursor_continues_after_its_event_and_past_the_retention_says_missed() {
        let log = MemoryEvents::default();
        let room = RoomId::new("r").expect("room");
        let start = log.now().await.expect("now");
        for i in 0..3 {
            log.append(&room, joined(&format!("p{i}")))
                .await
                .expect("append");
        }
        let batch = log.read(&start).await.expect("read");
        assert_eq!(batch.events.len(), 3);
        assert!(!batch.missed);
        let again = log.read(&batch.events[0].cursor).await.expect("read");
        assert_eq!(again.events.len(), 2, "after the first: the other two");
        let none = log.read(&batch.next).await.expect("read");
        assert!(none.events.is_empty() && !none.missed);

        for i in 0..MEMORY_CAPACITY {
            log.append(&room, joined(&format!("q{i}")))
                .await
                .expect("append");
        }
        let old = log.read(&start).await.expect("read");
        assert!(old.missed, "the first events are gone");
        assert_eq!(old.events.len(), READ_BATCH);
    }
}
