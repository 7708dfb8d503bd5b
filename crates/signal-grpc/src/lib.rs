//! signal-grpc: rooms, participants, presence and SDP/ICE relay.
//!
//! Edges connect with a few long-lived `Relay` streams ([`link`]); room
//! logic is in [`hub`]; state lives behind the [`store::SessionStore`] and
//! [`router::Router`] seams.
#![forbid(unsafe_code)]

pub mod hub;
pub mod link;
pub mod roles;
pub mod router;
mod service;
pub mod store;
pub mod turn;

use std::{future::Future, sync::Arc};

use switchboard_proto::{grpc, pb};
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;

pub use hub::{Hub, JoinSettings, RESUME_WINDOW};
pub use service::SignalService;
pub use turn::TurnConfig;

/// The gRPC service name reported to `grpc.health.v1`.
pub const SERVICE_NAME: &str = "switchboard.v1.Signal";

/// Signal service configuration (parsed by the binary).
#[derive(Debug, Clone)]
pub struct SignalConfig {
    pub join: JoinSettings,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            join: JoinSettings {
                resume_window: hub::RESUME_WINDOW,
                ..Default::default()
            },
        }
    }
}

/// Serves the Signal API and `grpc.health.v1` on `listener` with in-memory
/// state until `shutdown` resolves. Then: health reports NOT_SERVING, every
/// link tells its clients to reconnect (`shutting_down`) and ends, and the
/// server drains.
pub async fn run(
    listener: TcpListener,
    config: SignalConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let hub = Hub::new(
        Arc::new(store::MemoryStore::new()),
        Arc::new(router::MemoryRouter::new()),
        config.join,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::signal_server::SignalServer<SignalService>>()
        .await;

    let signal = pb::signal_server::SignalServer::new(SignalService::new(hub, stop_rx))
        .max_decoding_message_size(link::MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(link::MAX_GRPC_MESSAGE_BYTES);
    let shutdown = async move {
        shutdown.await;
        health
            .set_not_serving::<pb::signal_server::SignalServer<SignalService>>()
            .await;
        let _ = stop_tx.send(true);
    };
    grpc::server_builder()
        .add_service(health_service)
        .add_service(signal)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
