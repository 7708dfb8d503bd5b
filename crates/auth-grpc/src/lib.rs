//! auth-grpc: issues and verifies Switchboard access tokens over gRPC.
#![forbid(unsafe_code)]

mod service;
pub mod tokens;

use std::{future::Future, time::Duration};

use switchboard_proto::{grpc, pb};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use service::AuthService;
pub use tokens::{Claims, Grant, TokenKeys};

/// The gRPC service name reported to `grpc.health.v1`.
pub const SERVICE_NAME: &str = "switchboard.v1.Auth";

/// Auth service configuration (parsed by the binary).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub keys: TokenKeys,
    /// Lifetime of issued tokens when the caller asks for none.
    pub default_ttl: Duration,
    /// Dev mode: `IssueToken` needs no credential.
    pub dev: bool,
}

/// Unary calls that take longer than this are cancelled.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the auth API and `grpc.health.v1` on `listener` until `shutdown`
/// resolves, then drains in-flight calls.
pub async fn run(
    listener: TcpListener,
    config: AuthConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::auth_server::AuthServer<AuthService>>()
        .await;
    let service = AuthService::new(config.keys, config.default_ttl, config.dev);
    grpc::server_builder()
        // Verification is CPU-only; a call still running after this is stuck.
        .timeout(REQUEST_TIMEOUT)
        .add_service(health_service)
        .add_service(pb::auth_server::AuthServer::new(service))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
