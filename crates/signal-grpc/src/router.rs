//! Delivery to a session, wherever its connection lives. Every message to a
//! client passes here: it gets the session's next sequence number, is kept
//! in the session's bounded outbound log (what resume replays), and is sent
//! to the edge link the session is attached to.

mod memory;
mod redis;
mod redis_node;
mod redis_scripts;

use async_trait::async_trait;
use switchboard_proto::{ConnId, ErrorCode, LeaveReason, SessionId, SignalError, pb};

pub use self::redis::RedisRouter;
pub use memory::{LOG_BYTES, LOG_CAPACITY, MemoryRouter};
pub use redis_node::NODE_TTL;

use crate::store::StoreError;

/// What a session's log keeps of a message: no secrets. Joined loses its
/// resume token and TURN credentials (a replay of a Joined is history, not a
/// credential: the live copy had them).
pub(crate) fn for_log(message: &pb::server_message::Message) -> pb::server_message::Message {
    let mut stored = message.clone();
    if let pb::server_message::Message::Joined(joined) = &mut stored {
        joined.resume_token.clear();
        for server in &mut joined.ice_servers {
            server.username.clear();
            server.credential.clear();
        }
    }
    stored
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new resume token: 128 random bits, hex.
pub fn new_resume_token() -> String {
    SessionId::random().to_string()
}

pub use crate::link_queue::LinkSender;
use crate::link_queue::Refused;

/// Where a session's messages go: one connection on one edge link.
#[derive(Debug, Clone)]
pub struct Sink {
    pub link: LinkSender,
    pub conn: ConnId,
}

impl Sink {
    pub fn send(&self, event: pb::signal_envelope::Event) {
        let envelope = pb::SignalEnvelope {
            conn: self.conn.0,
            event: Some(event),
        };
        match self.link.send(envelope) {
            // A closed link means the edge is gone; its sessions are being
            // torn down by the link task, so there is no one left to tell.
            Ok(()) | Err(Refused::Closed) => {}
            // The link's byte bound: this connection is closed (its session
            // resumable, the message is in its log), not the whole link.
            Err(Refused::Full) => {
                tracing::warn!(conn = %self.conn, "link queue full; closing a slow consumer");
                let close = pb::SignalEnvelope {
                    conn: self.conn.0,
                    event: Some(pb::signal_envelope::Event::Close(pb::CloseConnection {
                        code: ErrorCode::SlowConsumer as i32,
                        message: "signal link queue full; resume to continue".to_owned(),
                    })),
                };
                let _ = self.link.send(close);
            }
        }
    }

    /// Whether both name the same connection on the same link.
    pub fn same(&self, other: &Sink) -> bool {
        self.conn == other.conn && self.link.same_channel(&other.link)
    }

    /// An error outside any session log (seq 0): for requests that have no
    /// session, or when the log cannot be written.
    pub fn send_error(&self, request_id: u32, err: &SignalError) {
        self.send(pb::signal_envelope::Event::Message(pb::ServerMessage {
            seq: 0,
            message: Some(pb::server_message::Message::Error(err.to_proto(request_id))),
        }));
    }

    /// Answers a refused join or resume, then closes the connection.
    pub fn refuse(&self, request_id: u32, err: &SignalError) {
        self.send_error(request_id, err);
        self.send_close(Some(err.code), &err.message);
    }

    pub fn send_close(&self, code: Option<ErrorCode>, reason: &str) {
        self.send(pb::signal_envelope::Event::Close(pb::CloseConnection {
            code: code.map_or(0, |c| c as i32),
            message: reason.to_owned(),
        }));
    }
}

/// Where a message comes from, for exactly-once delivery: the sending
/// session and the client seq of the message that caused it. A receiver's
/// log takes at most one message per (origin session, client seq): a
/// client that sends again what was already accepted (after a resume)
/// causes no duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub session: SessionId,
    /// `ClientMessage.seq`, > 0.
    pub seq: u64,
}

/// What a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Logged (and sent, if attached) with this seq.
    Logged(u64),
    /// Held until the session starts ([`Router::start`]), then logged.
    Held,
    /// Already delivered for this origin: dropped.
    Duplicate,
}

/// Why a detached session ends if nobody resumes it: what the room hears
/// (`ParticipantLeft.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Its connection went away.
    Disconnected,
    /// Its connection was closed for keepalive timeout.
    Timeout,
}

impl Lost {
    /// What the room hears.
    pub fn leave_reason(self) -> LeaveReason {
        match self {
            Self::Disconnected => LeaveReason::Disconnected,
            Self::Timeout => LeaveReason::Timeout,
        }
    }

    /// The reason the edge gave for a lost connection.
    pub fn from_reason(reason: LeaveReason) -> Self {
        if reason == LeaveReason::Timeout {
            Self::Timeout
        } else {
            Self::Disconnected
        }
    }
}

/// A detached session whose resume window passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub session: SessionId,
    /// The detach generation it was scheduled at (a resume since bumps it).
    pub generation: u64,
    pub reason: Lost,
}

/// Why a resume was refused. The client sees `not_found` for all but
/// `FutureSeq` (`bad_request`), so sessions cannot be probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeRefused {
    /// No such session (never existed, ended, or the resume window passed).
    Unknown,
    /// The resume token is not the session's current one (replayed, stolen
    /// or stale).
    BadToken,
    /// `last_seq` is ahead of anything the session was sent.
    FutureSeq,
}

/// A successful resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The next resume token (the presented one is spent).
    pub resume_token: String,
    /// Whether every message after `last_seq` was still in the log.
    pub complete: bool,
    /// Messages replayed.
    pub replayed: usize,
}

/// Per-session delivery with sequence numbers.
#[async_trait]
pub trait Router: Send + Sync + 'static {
    /// Creates the session's outbound log, attached to `sink`, with its
    /// first resume token. Until [`Router::start`], deliveries are held
    /// (not yet numbered).
    async fn open(
        &self,
        session: SessionId,
        sink: Sink,
        resume_token: String,
    ) -> Result<(), StoreError>;

    /// Gives `message` the session's next seq, logs it and delivers it to
    /// the attached connection, if any (a detached session only logs).
    /// With an `origin`, a message already delivered for that origin is
    /// dropped ([`Delivery::Duplicate`]), atomically with the log write.
    /// `Ok(None)` when the session does not exist.
    async fn deliver(
        &self,
        session: SessionId,
        message: pb::server_message::Message,
        origin: Option<Origin>,
    ) -> Result<Option<Delivery>, StoreError>;

    /// [`Router::deliver`] for each item, in order, as one operation where
    /// the store allows (one round trip for a batch of relays).
    async fn deliver_many(
        &self,
        items: Vec<(SessionId, pb::server_message::Message, Option<Origin>)>,
    ) -> Vec<Result<Option<Delivery>, StoreError>> {
        let mut results = Vec::with_capacity(items.len());
        for (session, message, origin) in items {
            results.push(self.deliver(session, message, origin).await);
        }
        results
    }

    /// The client processed every message through `seq`: the log drops
    /// them (a resume from `seq` or later needs none of them).
    async fn trim(&self, session: SessionId, seq: u64) -> Result<(), StoreError>;

    /// Logs `first` (Joined) as the session's seq 1, then everything held
    /// for it since `open`, in arrival order. The connection gets `first`
    /// whole; the log keeps it without secrets ([`for_log`]).
    async fn start(
        &self,
        session: SessionId,
        first: pb::server_message::Message,
    ) -> Result<(), StoreError>;

    /// Detaches the session from `sink` (its connection went away), keeping
    /// the log for resume. Returns the detach generation, or `None` if the
    /// session is not attached to `sink` (it already moved on).
    async fn detach(&self, session: SessionId, sink: &Sink) -> Result<Option<u64>, StoreError>;

    /// Records that the session, detached at `generation`, ends at
    /// `deadline_ms` (Unix ms) unless resumed, where any replica can find
    /// it (in memory: the process's expiry wheel, turned by the sweeper).
    async fn schedule_expiry(
        &self,
        session: SessionId,
        generation: u64,
        deadline_ms: u64,
        reason: Lost,
    ) -> Result<(), StoreError>;

    /// Claims the sessions whose expiry is due at `now_ms` (each claimed by
    /// one caller only).
    async fn due_expiries(&self, now_ms: u64) -> Result<Vec<Expiry>, StoreError>;

    /// Finds replicas that stopped heartbeating, detaches the sessions they
    /// held and schedules those to end at `deadline_ms` unless resumed.
    /// Returns how many sessions were detached. Memory: nothing to do.
    async fn reap_dead_nodes(&self, deadline_ms: u64) -> Result<usize, StoreError>;

    /// Whether the session is still detached since `generation`.
    async fn detached_since(&self, session: SessionId, generation: u64)
    -> Result<bool, StoreError>;

    /// Attaches the session to `sink` if `resume_token` is its current
    /// token: sends `first` (seq 0) then every logged message after
    /// `last_seq`, in order, before anything new. A connection still
    /// attached is closed (`session_replaced`).
    async fn resume(
        &self,
        session: SessionId,
        resume_token: &str,
        last_seq: u64,
        sink: Sink,
        first: pb::Resumed,
    ) -> Result<Result<Resumed, ResumeRefused>, StoreError>;

    /// Whether this replica is fenced (it found itself reaped after a
    /// stall and is re-registering): it should not be sent traffic.
    fn fenced(&self) -> bool {
        false
    }

    /// Closes the session's connection (`None` = normal closure) and drops
    /// its log.
    async fn close(
        &self,
        session: SessionId,
        code: Option<ErrorCode>,
        reason: &str,
    ) -> Result<(), StoreError>;
}
