//! The queue from signal to one edge link, bounded in bytes.
//!
//! Senders push synchronously (deliveries happen under the router's locks,
//! so nothing may wait there). The queue counts the encoded bytes it holds;
//! a message that would take it past its bound is not queued: its
//! connection is closed instead as a slow consumer (`slow_consumer`,
//! retryable: the message is in the session's log, the client resumes and
//! gets it). Only that connection pays, not the whole link. Closes use a
//! small headroom above the bound, so the one that tells a client why is
//! never the one dropped; past the headroom too, nothing more is queued.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use prost::Message as _;
use switchboard_proto::pb;
use tokio::sync::mpsc;

/// Default bound of one link's queue: what an edge that stopped reading
/// may cost this replica.
pub const LINK_QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// Room above the bound for closes.
const CLOSE_HEADROOM: usize = 1024 * 1024;

/// Why an envelope was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The link is gone (the edge left); nobody to tell.
    Closed,
    /// Over the byte bound.
    Full,
}

/// The sending half (cheap to clone).
#[derive(Debug, Clone)]
pub struct LinkSender {
    tx: mpsc::UnboundedSender<(pb::SignalEnvelope, usize)>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The receiving half: what the link's outbound stream drains.
#[derive(Debug)]
pub struct LinkReceiver {
    rx: mpsc::UnboundedReceiver<(pb::SignalEnvelope, usize)>,
    queued: Arc<AtomicUsize>,
}

/// A queue holding at most `limit` bytes of messages.
pub fn link_queue(limit: usize) -> (LinkSender, LinkReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        LinkSender {
            tx,
            queued: queued.clone(),
            limit,
        },
        LinkReceiver { rx, queued },
    )
}

impl LinkSender {
    /// Queues `envelope` if it fits (closes may use the headroom).
    pub fn send(&self, envelope: pb::SignalEnvelope) -> Result<(), Refused> {
        let size = envelope.encoded_len();
        let limit = match envelope.event {
            Some(pb::signal_envelope::Event::Close(_)) => self.limit + CLOSE_HEADROOM,
            _ => self.limit,
        };
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + size <= limit).then_some(queued + size)
            });
        if reserved.is_err() {
            return Err(Refused::Full);
        }
        self.tx.send((envelope, size)).map_err(|_| {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            Refused::Closed
        })
    }

    /// Whether both feed the same link.
    pub fn same_channel(&self, other: &LinkSender) -> bool {
        self.tx.same_channel(&other.tx)
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl LinkReceiver {
    /// The next envelope and its encoded size.
    pub async fn recv(&mut self) -> Option<(pb::SignalEnvelope, usize)> {
        let item = self.rx.recv().await?;
        self.queued.fetch_sub(item.1, Ordering::AcqRel);
        Some(item)
    }

    /// The next envelope if one is queued.
    pub fn try_recv(&mut self) -> Option<(pb::SignalEnvelope, usize)> {
        let item = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(item.1, Ordering::AcqRel);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> pb::SignalEnvelope {
        pb::SignalEnvelope {
            conn: 1,
            event: Some(pb::signal_envelope::Event::Message(pb::ServerMessage {
                seq: 1,
                message: Some(pb::server_message::Message::Error(pb::Error {
                    message: "x".repeat(bytes),
                    ..Default::default()
                })),
            })),
        }
    }

    fn close() -> pb::SignalEnvelope {
        pb::SignalEnvelope {
            conn: 1,
            event: Some(pb::signal_envelope::Event::Close(
                pb::CloseConnection::default(),
            )),
        }
    }

    #[tokio::test]
    async fn holds_at_most_its_bound_in_messages_and_frees_what_is_drained() {
        let (tx, mut rx) = link_queue(10_000);
        let one = message(1_000).encoded_len();
        let mut queued = 0;
        while tx.send(message(1_000)).is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 10_000 / one);
        assert!(tx.queued_bytes() <= 10_000);
        // A close still fits (headroom); then the drained bytes are free.
        assert_eq!(tx.send(close()), Ok(()));
        assert!(rx.recv().await.is_some());
        assert_eq!(tx.send(message(1_000)), Ok(()));
        drop(rx);
        assert_eq!(tx.send(close()), Err(Refused::Closed));
    }
}
