//! The `switchboard.v1.Signal` gRPC service: accepts edge links.

use futures_util::StreamExt as _;
use switchboard_proto::{
    local_relay::{Batches, LocalRelay},
    pb,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    hub::Hub,
    link,
    link_queue::{LINK_QUEUE_BYTES, link_queue},
};

#[derive(Clone)]
pub struct SignalService {
    hub: Hub,
    shutdown: watch::Receiver<bool>,
}

impl SignalService {
    pub fn new(hub: Hub, shutdown: watch::Receiver<bool>) -> Self {
        Self { hub, shutdown }
    }

    /// Serves one edge link: `inbound` is what the edge sends; the result
    /// is what goes back to it.
    fn open_link(
        &self,
        inbound: Batches<pb::EdgeBatch>,
    ) -> Result<Batches<pb::SignalBatch>, Status> {
        if *self.shutdown.borrow() {
            return Err(Status::unavailable("shutting_down"));
        }
        let (tx, rx) = link_queue(LINK_QUEUE_BYTES);
        tokio::spawn(link::serve(
            self.hub.clone(),
            inbound,
            tx,
            self.shutdown.clone(),
        ));
        tracing::info!("edge link opened");
        Ok(Box::pin(link::batches(rx)))
    }

    /// Links for an edge in this process (`switchboard all`), served as
    /// the gRPC ones are.
    pub fn local_relay(&self) -> LocalRelay {
        let service = self.clone();
        LocalRelay::new(move |inbound| service.open_link(inbound))
    }
}

#[tonic::async_trait]
impl pb::signal_server::Signal for SignalService {
    type RelayStream = Batches<pb::SignalBatch>;

    async fn relay(
        &self,
        request: Request<Streaming<pb::EdgeBatch>>,
    ) -> Result<Response<Self::RelayStream>, Status> {
        // Over gRPC a small batch is padded: h2 at the edge would close a
        // connection buffering too many small DATA frames (grpc::padding).
        let batches = self.open_link(Box::pin(request.into_inner()))?;
        let padded = batches
            .map(|batch| batch.map(|b| switchboard_proto::grpc::padded_signal_batch(b.envelopes)));
        Ok(Response::new(Box::pin(padded)))
    }
}
