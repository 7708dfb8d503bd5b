//! The connections of this edge, by connection id: where the signal link
//! delivers what signal sends back. Sharded so that deliveries for different
//! connections rarely contend.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use prost::Message as _;
use switchboard_proto::{ConnId, ErrorCode, pb};
use tokio::sync::{mpsc, watch};

/// Messages queued for one connection's writer.
#[derive(Debug)]
pub enum Outbound {
    /// Boxed: the queue's slots stay pointer-sized, which matters with tens
    /// of thousands of mostly idle connections.
    Message(Box<pb::ServerMessage>),
    /// Close with this error (`None` = normal closure) after what is queued.
    Close(Option<ErrorCode>, String),
}

impl Outbound {
    /// What the item counts against the connection's byte bound: its
    /// encoded size (the JSON form is larger by a small factor).
    pub fn bytes(&self) -> usize {
        match self {
            Self::Message(message) => message.encoded_len(),
            Self::Close(_, reason) => reason.len(),
        }
    }
}

/// An immediate close, jumping the queue (slow consumer, shutdown, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub code: ErrorCode,
    pub reason: String,
}

/// Who a joined connection is, for revocation.
#[derive(Debug)]
pub struct ConnAuth {
    pub subject: String,
    /// First issue time of the token chain (refresh keeps it).
    pub auth_time: u64,
    /// Every token id the connection has held (the first and each refresh).
    token_ids: Mutex<Vec<String>>,
}

impl ConnAuth {
    /// `token_ids`: the token's own id and its chain's id.
    pub fn new(subject: String, auth_time: u64, token_ids: Vec<String>) -> Self {
        Self {
            subject,
            auth_time,
            token_ids: Mutex::new(token_ids),
        }
    }

    pub fn add_token(&self, token_id: String) {
        self.token_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(token_id);
    }

    pub fn holds_any(&self, token_ids: &std::collections::HashSet<String>) -> bool {
        self.token_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|t| token_ids.contains(t))
    }

    pub fn holds(&self, token_id: &str) -> bool {
        self.token_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|t| t == token_id)
    }
}

/// How the rest of the edge reaches one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub outbound: mpsc::Sender<Outbound>,
    pub kill: watch::Sender<Option<Kill>>,
    /// Set once the connection has joined.
    pub auth: Arc<OnceLock<ConnAuth>>,
    /// The signal lane the connection's session lives on.
    pub lane: usize,
    /// Bytes queued for the writer (added at push, taken at dequeue).
    pub queued: Arc<AtomicUsize>,
    /// Most bytes the queue may hold.
    pub max_queued: usize,
}

impl ConnHandle {
    pub fn new(
        outbound: mpsc::Sender<Outbound>,
        kill: watch::Sender<Option<Kill>>,
        max_queued: usize,
    ) -> Self {
        Self {
            outbound,
            kill,
            auth: Arc::default(),
            lane: 0,
            queued: Arc::default(),
            max_queued,
        }
    }

    /// Queues for the writer; a queue full in messages or bytes means the
    /// client does not read fast enough, and only it is closed.
    pub fn push(&self, item: Outbound) {
        let bytes = item.bytes();
        let queued = self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if queued > self.max_queued {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            self.kill(ErrorCode::SlowConsumer, "outbound queue full");
            return;
        }
        if let Err(err) = self.outbound.try_send(item) {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            if let mpsc::error::TrySendError::Full(_) = err {
                self.kill(ErrorCode::SlowConsumer, "outbound queue full");
            }
        }
    }

    /// The writer took `item` off the queue.
    pub fn dequeued(&self, item: &Outbound) {
        self.queued.fetch_sub(item.bytes(), Ordering::Relaxed);
    }

    pub fn kill(&self, code: ErrorCode, reason: &str) {
        let killed = self.kill.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(Kill {
                code,
                reason: reason.to_owned(),
            });
            true
        });
        if killed && code == ErrorCode::SlowConsumer {
            switchboard_proto::metrics::metrics()
                .slow_consumer_closes
                .inc();
        }
    }
}

const SHARDS: usize = 16;

#[derive(Debug)]
pub struct Connections {
    shards: Vec<Mutex<HashMap<ConnId, ConnHandle>>>,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Connections {
    fn shard(&self, conn: ConnId) -> MutexGuard<'_, HashMap<ConnId, ConnHandle>> {
        self.shards[(conn.0 as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, conn: ConnId, handle: ConnHandle) {
        self.shard(conn).insert(conn, handle);
    }

    pub fn remove(&self, conn: ConnId) {
        self.shard(conn).remove(&conn);
    }

    pub fn get(&self, conn: ConnId) -> Option<ConnHandle> {
        self.shard(conn).get(&conn).cloned()
    }

    /// Every connection for which `pick` is true.
    pub fn matching(&self, pick: impl Fn(ConnId) -> bool) -> Vec<ConnHandle> {
        self.shards
            .iter()
            .flat_map(|s| {
                let shard = s.lock().unwrap_or_else(|p| p.into_inner());
                shard
                    .iter()
                    .filter(|(c, _)| pick(**c))
                    .map(|(_, h)| h.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Bytes queued for writers over every connection.
    pub fn queued_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(|p| p.into_inner());
                shard
                    .values()
                    .map(|h| h.queued.load(Ordering::Relaxed))
                    .sum::<usize>()
            })
            .sum()
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }
}
