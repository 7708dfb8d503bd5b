//! The in-memory [`Router`]: sessions and their logs in this process.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use switchboard_proto::{ErrorCode, SessionId, pb};

use super::{Router, Sink};
use crate::store::StoreError;

/// Messages kept per session for resume.
pub const LOG_CAPACITY: usize = 512;

#[derive(Debug)]
struct Outbox {
    next_seq: u64,
    log: VecDeque<pb::ServerMessage>,
    sink: Sink,
}

#[derive(Debug, Default)]
pub struct MemoryRouter {
    outboxes: Mutex<HashMap<SessionId, Outbox>>,
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
    async fn open(&self, session: SessionId, sink: Sink) -> Result<(), StoreError> {
        self.lock().insert(
            session,
            Outbox {
                next_seq: 1,
                log: VecDeque::new(),
                sink,
            },
        );
        Ok(())
    }

    async fn deliver(
        &self,
        session: SessionId,
        message: pb::server_message::Message,
    ) -> Result<Option<u64>, StoreError> {
        let mut outboxes = self.lock();
        let Some(outbox) = outboxes.get_mut(&session) else {
            return Ok(None);
        };
        let seq = outbox.next_seq;
        outbox.next_seq += 1;
        let message = pb::ServerMessage {
            seq,
            message: Some(message),
        };
        if outbox.log.len() == LOG_CAPACITY {
            outbox.log.pop_front();
        }
        outbox.log.push_back(message.clone());
        // Sent under the lock: two senders racing to one session cannot
        // reorder seqs on the link.
        outbox
            .sink
            .send(pb::signal_envelope::Event::Message(message));
        Ok(Some(seq))
    }

    async fn close(
        &self,
        session: SessionId,
        code: Option<ErrorCode>,
        reason: &str,
    ) -> Result<(), StoreError> {
        if let Some(outbox) = self.lock().remove(&session) {
            outbox.sink.send_close(code, reason);
        }
        Ok(())
    }

    async fn remove(&self, session: SessionId) -> Result<(), StoreError> {
        self.lock().remove(&session);
        Ok(())
    }
}
