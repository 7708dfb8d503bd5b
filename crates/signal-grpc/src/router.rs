//! Delivery to a session, wherever its connection lives. Every message to a
//! client passes here: it gets the session's next sequence number, is kept
//! in the session's bounded outbound log (what resume replays), and is sent
//! to the edge link the session is attached to.

mod memory;

use async_trait::async_trait;
use switchboard_proto::{ConnId, ErrorCode, SessionId, pb};
use tokio::sync::mpsc;

pub use memory::MemoryRouter;

use crate::store::StoreError;

/// The outbound half of one edge link (one Relay stream).
pub type LinkSender = mpsc::UnboundedSender<pb::SignalEnvelope>;

/// Where a session's messages go: one connection on one edge link.
#[derive(Debug, Clone)]
pub struct Sink {
    pub link: LinkSender,
    pub conn: ConnId,
}

impl Sink {
    pub fn send(&self, event: pb::signal_envelope::Event) {
        // A closed link means the edge is gone; its sessions are being torn
        // down by the link task, so there is no one left to tell.
        let _ = self.link.send(pb::SignalEnvelope {
            conn: self.conn.0,
            event: Some(event),
        });
    }

    pub fn send_close(&self, code: Option<ErrorCode>, reason: &str) {
        self.send(pb::signal_envelope::Event::Close(pb::CloseSession {
            code: code.map(|c| c.as_str().to_owned()).unwrap_or_default(),
            reason: reason.to_owned(),
        }));
    }
}

/// Per-session delivery with sequence numbers.
#[async_trait]
pub trait Router: Send + Sync + 'static {
    /// Creates the session's outbound log and attaches it to `sink`.
    async fn open(&self, session: SessionId, sink: Sink) -> Result<(), StoreError>;

    /// Gives `message` the session's next seq, logs it and delivers it to
    /// the attached connection. `Ok(None)` when the session does not exist.
    async fn deliver(
        &self,
        session: SessionId,
        message: pb::server_message::Message,
    ) -> Result<Option<u64>, StoreError>;

    /// Closes the session's connection (`None` = normal closure) and drops
    /// its log.
    async fn close(
        &self,
        session: SessionId,
        code: Option<ErrorCode>,
        reason: &str,
    ) -> Result<(), StoreError>;

    /// Drops the session's log; its connection is already gone.
    async fn remove(&self, session: SessionId) -> Result<(), StoreError>;
}
