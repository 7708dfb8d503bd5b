//! The `switchboard.v1.Signal` gRPC service: accepts edge links.

use std::pin::Pin;

use futures_util::Stream;
use switchboard_proto::pb;
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
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<pb::SignalBatch, Status>> + Send>>;

#[tonic::async_trait]
impl pb::signal_server::Signal for SignalService {
    type RelayStream = BatchStream;

    async fn relay(
        &self,
        request: Request<Streaming<pb::EdgeBatch>>,
    ) -> Result<Response<Self::RelayStream>, Status> {
        if *self.shutdown.borrow() {
            return Err(Status::unavailable("shutting_down"));
        }
        let (tx, rx) = link_queue(LINK_QUEUE_BYTES);
        tokio::spawn(link::serve(
            self.hub.clone(),
            request.into_inner(),
            tx,
            self.shutdown.clone(),
        ));
        tracing::info!("edge link opened");
        Ok(Response::new(Box::pin(link::batches(rx))))
    }
}
