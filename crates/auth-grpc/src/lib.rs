//! auth-grpc: issues, verifies, refreshes and revokes Switchboard access
//! tokens over gRPC. See docs/auth.md.
#![forbid(unsafe_code)]

pub mod claims;
pub mod keyring;
pub mod keys;
pub mod revocations;
mod service;

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use switchboard_proto::{grpc, health::HealthReporter, pb};

pub use claims::{Claims, TokenType};
pub use keyring::{ApiKey, Keyring, KeyringConfig, TokenRequest};
pub use keys::{Jwk, KeyAlg};
pub use service::{API_KEY_METADATA, API_SECRET_METADATA, AuthService};

/// The gRPC service name reported to `grpc.health.v1`.
pub const SERVICE_NAME: &str = "switchboard.v1.Auth";

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Auth service configuration (parsed by the binary).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub keys: Keyring,
    /// Lifetime of issued access tokens when the caller asks for none.
    pub default_ttl: Duration,
    /// Lifetime of access tokens made by refresh.
    pub refresh_ttl: Duration,
    /// Dev mode: `IssueToken` needs no credential.
    pub dev: bool,
    /// Share revocations with other auth replicas through this Redis.
    pub redis: Option<String>,
}

/// Why the auth service stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Revocations(#[from] revocations::RevocationStoreError),
}

/// Unary calls that take longer than this are cancelled (not the
/// revocation stream, which lives as long as its edge).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the auth API and `grpc.health.v1` on `listener` until `shutdown`
/// resolves, then drains in-flight calls.
pub async fn run(
    listener: impl Into<grpc::Listeners>,
    config: AuthConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    run_with(listener, config, shutdown, |_| {}).await
}

/// As [`run`]; `on_start` receives the service for callers in this process
/// (`switchboard all`), which reach it without HTTP/2 or TCP.
pub async fn run_with(
    listener: impl Into<grpc::Listeners>,
    config: AuthConfig,
    shutdown: impl Future<Output = ()> + Send,
    on_start: impl FnOnce(switchboard_proto::auth_client::LocalAuth),
) -> Result<(), RunError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(url) = &config.redis {
        let origin = format!("auth-{}", switchboard_proto::SessionId::random());
        config
            .keys
            .revocations()
            .share(url, origin, stop_rx.clone())
            .await?;
        tracing::info!("revocations shared through redis");
    }
    // `""` and `switchboard.v1.Auth`: ready once the keys are loaded (the
    // keyring exists) and, with Redis, the revocations (`share` returned
    // after its first load). A Redis outage later does not make auth
    // unready: verification reads the in-memory list, which is reloaded on
    // resubscribe; taking every auth replica out with Redis would stop
    // every join instead of delaying a revocation. `liveness`: always.
    let health = HealthReporter::new(SERVICE_NAME);
    health.set_ready(true);
    let service = AuthService::new(
        config.keys,
        config.default_ttl,
        config.refresh_ttl,
        config.dev,
        stop_rx,
    );
    let health_service = health.server();
    let (reflection_v1, reflection_v1alpha) = grpc::reflection();
    let shutdown = async move {
        shutdown.await;
        health.close();
        // Ends the revocation streams, so the drain can finish, and the
        // Redis follower.
        let _ = stop_tx.send(true);
    };
    let router = grpc::server_builder()
        // Bounds unary calls; a streaming response is returned at once and
        // is not cut by it.
        .timeout(REQUEST_TIMEOUT)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::auth_server::AuthServer::new(service.clone()));
    on_start(switchboard_proto::auth_client::LocalAuth::new(
        pb::auth_server::AuthServer::new(service),
    ));
    grpc::serve_draining(shutdown, |stop| {
        router.serve_with_incoming_shutdown(grpc::incoming(listener), stop)
    })
    .await?;
    Ok(())
}
