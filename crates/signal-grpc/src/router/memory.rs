//! The in-memory [`Router`]: sessions, their logs and attachments in this
//! process.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use prost::Message as _;
use subtle::ConstantTimeEq;
use switchboard_proto::{ErrorCode, SessionId, pb};

use super::{
    Delivery, Expiry, Lost, Origin, ResumeRefused, Resumed, Router, Sink, new_resume_token,
};
use crate::store::StoreError;

/// Most messages kept per session for resume.
pub const LOG_CAPACITY: usize = 512;
/// Most bytes (encoded) kept per session for resume; the newest message is
/// kept whatever its size.
pub const LOG_BYTES: usize = 256 * 1024;

#[derive(Debug)]
struct Outbox {
    next_seq: u64,
    /// Boxed: most sessions hold one or two messages (Joined, presence),
    /// and a deque's slots are allocated four at a time.
    log: VecDeque<Box<pb::ServerMessage>>,
    /// Encoded bytes in `log`.
    log_bytes: usize,
    sink: Option<Sink>,
    resume_token: String,
    /// Bumped on every attach and detach.
    generation: u64,
    /// Highest client seq delivered per origin session (exactly once).
    accepted: HashMap<SessionId, u64>,
    /// Deliveries before the session started (Joined not yet logged).
    held: Option<Vec<pb::server_message::Message>>,
}

impl Outbox {
    fn drop_oldest(&mut self) {
        if let Some(old) = self.log.pop_front() {
            self.log_bytes -= old.encoded_len();
        }
    }

    /// Numbers, logs and sends one message.
    fn append(&mut self, message: pb::server_message::Message) -> u64 {
        self.append_live(message.clone(), message)
    }

    /// Numbers one message, logs `stored` and sends `live`.
    fn append_live(
        &mut self,
        stored: pb::server_message::Message,
        live: pb::server_message::Message,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let stored = pb::ServerMessage {
            seq,
            message: Some(stored),
        };
        let message = pb::ServerMessage {
            seq,
            message: Some(live),
        };
        self.log_bytes += stored.encoded_len();
        self.log.push_back(Box::new(stored));
        while self.log.len() > 1 && (self.log.len() > LOG_CAPACITY || self.log_bytes > LOG_BYTES) {
            self.drop_oldest();
        }
        // Sent under the router's lock: two senders racing to one session
        // cannot reorder seqs on the link.
        if let Some(sink) = &self.sink {
            sink.send(pb::signal_envelope::Event::Message(message));
        }
        seq
    }
}

#[derive(Debug, Default)]
pub struct MemoryRouter {
    outboxes: Mutex<HashMap<SessionId, Outbox>>,
    /// Detached sessions by (deadline ms, session) → detach generation:
    /// the process's one expiry wheel, turned by the hub's sweeper.
    expiries: Mutex<BTreeMap<(u64, SessionId), (u64, Lost)>>,
}

impl MemoryRouter {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Outbox>> {
        self.outboxes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Router for MemoryRouter {
    async fn open(
        &self,
        session: SessionId,
        sink: Sink,
        resume_token: String,
    ) -> Result<(), StoreError> {
        let outbox = Outbox {
            next_seq: 1,
            log: VecDeque::new(),
            log_bytes: 0,
            sink: Some(sink),
            resume_token,
            generation: 0,
            accepted: HashMap::new(),
            held: Some(Vec::new()),
        };
        self.lock().insert(session, outbox);
        Ok(())
    }

    async fn deliver(
        &self,
        session: SessionId,
        message: pb::server_message::Message,
        origin: Option<Origin>,
    ) -> Result<Option<Delivery>, StoreError> {
        let mut outboxes = self.lock();
        let Some(outbox) = outboxes.get_mut(&session) else {
            return Ok(None);
        };
        if let Some(origin) = origin {
            let last = outbox.accepted.entry(origin.session).or_default();
            if origin.seq <= *last {
                return Ok(Some(Delivery::Duplicate));
            }
            *last = origin.seq;
        }
        if let Some(held) = &mut outbox.held {
            held.push(message);
            return Ok(Some(Delivery::Held));
        }
        Ok(Some(Delivery::Logged(outbox.append(message))))
    }

    async fn trim(&self, session: SessionId, seq: u64) -> Result<(), StoreError> {
        if let Some(outbox) = self.lock().get_mut(&session) {
            while outbox.log.front().is_some_and(|m| m.seq <= seq) {
                outbox.drop_oldest();
            }
        }
        Ok(())
    }

    async fn start(
        &self,
        session: SessionId,
        first: pb::server_message::Message,
    ) -> Result<(), StoreError> {
        let mut outboxes = self.lock();
        let Some(outbox) = outboxes.get_mut(&session) else {
            return Ok(());
        };
        let held = outbox.held.take().unwrap_or_default();
        outbox.append_live(super::for_log(&first), first);
        for message in held {
            outbox.append(message);
        }
        Ok(())
    }

    async fn detach(&self, session: SessionId, sink: &Sink) -> Result<Option<u64>, StoreError> {
        let mut outboxes = self.lock();
        let Some(outbox) = outboxes.get_mut(&session) else {
            return Ok(None);
        };
        if !outbox.sink.as_ref().is_some_and(|s| s.same(sink)) {
            return Ok(None);
        }
        outbox.sink = None;
        outbox.generation += 1;
        Ok(Some(outbox.generation))
    }

    async fn schedule_expiry(
        &self,
        session: SessionId,
        generation: u64,
        deadline_ms: u64,
        reason: Lost,
    ) -> Result<(), StoreError> {
        self.expiries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((deadline_ms, session), (generation, reason));
        Ok(())
    }

    async fn due_expiries(&self, now_ms: u64) -> Result<Vec<Expiry>, StoreError> {
        let mut expiries = self.expiries.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        while let Some(entry) = expiries.first_entry().filter(|e| e.key().0 <= now_ms) {
            let ((_, session), (generation, reason)) = entry.remove_entry();
            due.push(Expiry {
                session,
                generation,
                reason,
            });
        }
        Ok(due)
    }

    async fn reap_dead_nodes(&self, _deadline_ms: u64) -> Result<usize, StoreError> {
        Ok(0)
    }

    async fn detached_since(
        &self,
        session: SessionId,
        generation: u64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .get(&session)
            .is_some_and(|o| o.sink.is_none() && o.generation == generation))
    }

    async fn resume(
        &self,
        session: SessionId,
        resume_token: &str,
        last_seq: u64,
        sink: Sink,
        mut first: pb::Resumed,
    ) -> Result<Result<Resumed, ResumeRefused>, StoreError> {
        let mut outboxes = self.lock();
        let Some(outbox) = outboxes.get_mut(&session) else {
            return Ok(Err(ResumeRefused::Unknown));
        };
        if resume_token.is_empty()
            || !bool::from(
                outbox
                    .resume_token
                    .as_bytes()
                    .ct_eq(resume_token.as_bytes()),
            )
        {
            return Ok(Err(ResumeRefused::BadToken));
        }
        if last_seq >= outbox.next_seq {
            return Ok(Err(ResumeRefused::FutureSeq));
        }
        // The token is spent whatever happens next.
        outbox.resume_token = new_resume_token();
        if let Some(old) = outbox.sink.take() {
            old.send_close(
                Some(ErrorCode::SessionReplaced),
                "session resumed on another connection",
            );
        }
        let oldest = outbox.log.front().map_or(outbox.next_seq, |m| m.seq);
        let complete = oldest <= last_seq + 1;
        first.resume_token = outbox.resume_token.clone();
        first.complete = complete;
        sink.send(pb::signal_envelope::Event::Message(pb::ServerMessage {
            seq: 0,
            message: Some(pb::server_message::Message::Resumed(first)),
        }));
        let mut replayed = 0;
        for message in outbox.log.iter().filter(|m| m.seq > last_seq) {
            sink.send(pb::signal_envelope::Event::Message(
                message.as_ref().clone(),
            ));
            replayed += 1;
        }
        outbox.sink = Some(sink);
        outbox.generation += 1;
        Ok(Ok(Resumed {
            resume_token: outbox.resume_token.clone(),
            complete,
            replayed,
        }))
    }

    async fn close(
        &self,
        session: SessionId,
        code: Option<ErrorCode>,
        reason: &str,
    ) -> Result<(), StoreError> {
        if let Some(sink) = self.lock().remove(&session).and_then(|o| o.sink) {
            sink.send_close(code, reason);
        }
        Ok(())
    }
}
