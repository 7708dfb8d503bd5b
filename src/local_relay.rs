//! The Relay link without gRPC. When the edge and signal run in one process
//! (`switchboard all`), the edge's lanes hand their batches to signal's link
//! logic directly: the same batches, in the same order, through the same
//! bounded queues, without protobuf encoding, HTTP/2 framing and two
//! loopback TCP hops per message (≈ half of a relayed message's CPU in
//! that mode, BENCHMARKS.md). Nothing crosses a process boundary, so no
//! credential is asked: the caller holds the signal service itself.

use std::{fmt, pin::Pin, sync::Arc};

use futures_util::Stream;
use tonic::Status;

use crate::pb;

/// A stream of batches, as a Relay stream carries them.
pub type Batches<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

type Open =
    dyn Fn(Batches<pb::EdgeBatch>) -> Result<Batches<pb::SignalBatch>, Status> + Send + Sync;

/// Opens Relay links to a signal service in this process.
#[derive(Clone)]
pub struct LocalRelay {
    open: Arc<Open>,
}

impl LocalRelay {
    /// `open` serves one link: it takes what the edge sends and returns
    /// what signal sends back (as `Signal.Relay` does).
    pub fn new(
        open: impl Fn(Batches<pb::EdgeBatch>) -> Result<Batches<pb::SignalBatch>, Status>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            open: Arc::new(open),
        }
    }

    /// Opens one link; fails as the RPC would (e.g. signal shutting down).
    pub fn open(
        &self,
        inbound: Batches<pb::EdgeBatch>,
    ) -> Result<Batches<pb::SignalBatch>, Status> {
        (self.open)(inbound)
    }
}

impl fmt::Debug for LocalRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalRelay")
    }
}
