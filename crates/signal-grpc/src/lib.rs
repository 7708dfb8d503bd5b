//! signal-grpc: rooms, participants, presence and SDP/ICE relay.
//!
//! Edges connect with a few long-lived `Relay` streams ([`link`]); room
//! logic is in [`hub`]; state lives behind the [`store::SessionStore`] and
//! [`router::Router`] seams.
#![forbid(unsafe_code)]

pub mod events;
pub mod hub;
pub mod join_hook;
pub mod keyed_rate;
pub mod link;
pub mod link_queue;
pub mod roles;
mod room_service;
pub mod router;
mod service;
pub mod store;
pub mod turn;
pub mod webhooks;

use std::{future::Future, sync::Arc, time::Duration};

use switchboard_proto::{
    auth_client::{AuthClient, LocalAuth},
    grpc,
    health::HealthReporter,
    local_relay::LocalRelay,
    pb,
    service_credential::{Accept, ServiceCredential},
};
use tokio::sync::watch;

pub use hub::{
    Hub, JoinSettings, MAX_PARTICIPANTS, MAX_ROOMS, MAX_SESSIONS_PER_IDENTITY, RESUME_WINDOW,
};
pub use service::SignalService;
pub use turn::TurnConfig;

/// The gRPC service name reported to `grpc.health.v1`.
pub const SERVICE_NAME: &str = "switchboard.v1.Signal";

/// Signal service configuration (parsed by the binary).
#[derive(Debug, Clone)]
pub struct SignalConfig {
    pub join: JoinSettings,
    /// Where joins and resumes are verified (gRPC URL of auth).
    pub auth_url: String,
    /// The auth service in this process (`switchboard all`), used instead
    /// of `auth_url`.
    pub local_auth: Option<LocalAuth>,
    /// The credentials edges must present on their Relay lanes (API keys).
    pub service_keys: Vec<ServiceCredential>,
    /// Shared state in Redis (several replicas); `None` keeps it in memory.
    pub redis: Option<RedisConfig>,
    /// Room events POSTed to the application (signed webhooks).
    pub webhooks: Option<webhooks::WebhookConfig>,
    /// The application's JoinHook, asked before every join.
    pub join_hook: Option<join_hook::JoinHookConfig>,
    /// Signal's mTLS identity towards auth (an `https://` auth URL).
    pub mtls: Option<Arc<switchboard_proto::mtls::Mtls>>,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            join: JoinSettings::default(),
            auth_url: "http://127.0.0.1:50051".into(),
            local_auth: None,
            service_keys: Vec::new(),
            redis: None,
            webhooks: None,
            join_hook: None,
            mtls: None,
        }
    }
}

/// Where and how long to keep shared state.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// One URL (standalone) or the seed nodes of a cluster.
    pub urls: Vec<String>,
    /// Lifetime of every key, refreshed as sessions are used.
    pub record_ttl: Duration,
}

/// Why the signal service stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Dial(#[from] grpc::DialError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Webhook(#[from] webhooks::EndpointError),
}

/// How often a replica looks for detached sessions past their window.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How often readiness re-checks Redis.
const REDIS_PROBE_INTERVAL: Duration = Duration::from_millis(500);

type State = (
    Arc<dyn store::SessionStore>,
    Arc<dyn router::Router>,
    Option<store::RedisConnection>,
);

/// Store and router for `config`: Redis when configured, else memory.
async fn state(config: &SignalConfig) -> Result<State, RunError> {
    let Some(redis) = &config.redis else {
        return Ok((
            Arc::new(store::MemoryStore::new()),
            Arc::new(router::MemoryRouter::new()),
            None,
        ));
    };
    let connection = store::RedisConnection::connect(&redis.urls).await?;
    let pubsub_url = redis
        .urls
        .first()
        .map(|u| u.trim_start_matches("cluster+"))
        .unwrap_or_default();
    let router = router::RedisRouter::start(
        connection.clone(),
        pubsub_url,
        None,
        redis.record_ttl,
        config.join.resume_window,
    )
    .await?;
    tracing::info!(node = %router.node(), "shared state in redis");
    Ok((
        Arc::new(store::RedisStore::new(connection.clone(), redis.record_ttl)),
        router,
        Some(connection),
    ))
}

/// Serves the Signal API and `grpc.health.v1` on `listener` with in-memory
/// state until `shutdown` resolves. Then: health reports NOT_SERVING, every
/// link tells its clients to reconnect (`shutting_down`) and ends, and the
/// server drains.
pub async fn run(
    listener: impl Into<grpc::Listeners>,
    config: SignalConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    run_with(listener, config, shutdown, |_| {}).await
}

/// As [`run`]; `on_start` receives a [`LocalRelay`] that an edge in this
/// process uses instead of gRPC (`switchboard all`).
pub async fn run_with(
    listener: impl Into<grpc::Listeners>,
    config: SignalConfig,
    shutdown: impl Future<Output = ()> + Send,
    on_start: impl FnOnce(LocalRelay),
) -> Result<(), RunError> {
    let (store, router, redis) = state(&config).await?;
    let auth = match config.local_auth.clone() {
        Some(local) => AuthClient::local(local, None),
        None => AuthClient::new(
            grpc::Dial::new(
                &config.auth_url,
                config.mtls.as_deref(),
                &switchboard_proto::mtls::PeerName::auth(),
            )?,
            None,
        ),
    };
    let events: Arc<dyn events::EventLog> = match &redis {
        Some(connection) => Arc::new(events::RedisEvents::new(connection.clone())),
        None => Arc::new(events::MemoryEvents::default()),
    };
    let hub = Hub::new(store, router.clone(), config.join, auth.clone())
        .shared(redis.is_some())
        .with_events(events.clone())
        .with_join_hook(
            config
                .join_hook
                .as_ref()
                .map(join_hook::JoinHook::new)
                .transpose()?,
        );
    let room_api = room_service::RoomApi::new(hub.clone(), auth);
    let (stop_tx, stop_rx) = watch::channel(false);
    // `""` and `switchboard.v1.Signal`: ready while the store takes writes
    // (memory: always); `liveness`: always (switchboard_proto::health).
    let health = HealthReporter::new(SERVICE_NAME);
    health.set_ready(true);
    {
        // Ends sessions nobody resumed within the window: one task per
        // process (with Redis, any replica ends them, even if the one that
        // detached them is gone).
        let (hub, mut stop) = (hub.clone(), stop_rx.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(SWEEP_INTERVAL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                hub.sweep_expired().await;
            }
        });
    }
    // Webhooks: one dispatcher per endpoint, reading the event log.
    let dispatchers = match &config.webhooks {
        Some(webhooks) => webhooks::start(webhooks, events, redis.clone(), stop_rx.clone())?,
        None => Vec::new(),
    };
    if let Some(redis) = redis {
        // Readiness follows Redis (a canary written and read back), and is
        // off while this replica is fenced; liveness (the process
        // answering) never depends on either.
        let (health, mut stop) = (health.clone(), stop_rx.clone());
        let canary = store::keys::canary(&format!("{:016x}", rand::random::<u64>()));
        tokio::spawn(async move {
            let mut serving = true;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(REDIS_PROBE_INTERVAL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let up = redis.canary(&canary).await && !router.fenced();
                if up != serving {
                    serving = up;
                    tracing::warn!(ready = up, "signal readiness changed");
                    health.set_ready(up);
                }
            }
        });
    }

    let service = SignalService::new(hub, stop_rx);
    on_start(service.local_relay());
    let signal = pb::signal_server::SignalServer::new(service)
        .max_decoding_message_size(link::MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(link::MAX_GRPC_MESSAGE_BYTES);
    // Only an edge with a service credential opens lanes (health stays open
    // for probes).
    let signal = tonic::service::interceptor::InterceptedService::new(
        signal,
        Accept::new(config.service_keys.clone()),
    );
    let health_service = health.server();
    let (reflection_v1, reflection_v1alpha) = grpc::reflection();
    let shutdown = async move {
        shutdown.await;
        health.close();
        let _ = stop_tx.send(true);
    };
    let router = grpc::server_builder()
        .add_service(health_service)
        // Backends: authorized per call by their bearer token (room_service).
        .add_service(pb::room_service_server::RoomServiceServer::new(room_api))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(signal);
    grpc::serve_draining(shutdown, |stop| {
        router.serve_with_incoming_shutdown(grpc::incoming(listener), stop)
    })
    .await?;
    // Dispatchers stop at once (an attempt in flight is dropped; its event
    // is delivered again by whoever continues).
    for dispatcher in dispatchers {
        let _ = dispatcher.await;
    }
    Ok(())
}
