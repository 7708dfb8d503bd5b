//! Signal's flags (`signal`, and signal's part of `all`).

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct SignalArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "SWITCHBOARD_SIGNAL_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub listen: SocketAddr,
    /// Serve this process's Prometheus metrics (`/metrics`) and
    /// `/health/live` on this address (an admin port: keep it off the
    /// public network).
    #[arg(long, env = "SWITCHBOARD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Auth service gRPC URL: every join and resume is verified there.
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub auth_url: String,
    /// API key pairs KEY:SECRET an edge may present to open Relay lanes
    /// (the same list as auth's), repeatable.
    #[arg(
        long = "api-key",
        env = "SWITCHBOARD_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<switchboard_edge::ServiceCredential>,
    #[command(flatten)]
    pub common: SignalCommon,
}

/// Signal settings shared by `signal` and `all`.
#[derive(Debug, Clone, Args)]
pub struct SignalCommon {
    /// ICE server URL for clients (stun:/turn:), repeatable.
    #[arg(
        long = "ice-server",
        env = "SWITCHBOARD_ICE_SERVERS",
        value_delimiter = ','
    )]
    pub ice_servers: Vec<String>,
    /// TURN server URL that gets ephemeral credentials (with --turn-secret), repeatable.
    #[arg(
        long = "turn-url",
        env = "SWITCHBOARD_TURN_URLS",
        value_delimiter = ','
    )]
    pub turn_urls: Vec<String>,
    /// Shared secret of the TURN servers (coturn `static-auth-secret`).
    #[arg(
        long,
        env = "SWITCHBOARD_TURN_SECRET",
        hide_env_values = true,
        requires = "turn_urls",
        value_parser = turn_secret
    )]
    pub turn_secret: Option<String>,
    /// Seconds a session whose connection was lost waits for a resume (0 = no resume).
    #[arg(long, env = "SWITCHBOARD_RESUME_WINDOW", default_value_t = 60)]
    pub resume_window: u64,
    /// Most participants per room; a join beyond it is refused (room_full).
    #[arg(long, env = "SWITCHBOARD_MAX_PARTICIPANTS", default_value_t = switchboard_signal::MAX_PARTICIPANTS)]
    pub max_participants: usize,
    /// Sessions one identity may hold at once, in as many rooms, across
    /// replicas (0: no limit); a join past it is refused too_many_sessions.
    #[arg(long, env = "SWITCHBOARD_MAX_SESSIONS_PER_IDENTITY", default_value_t = switchboard_signal::MAX_SESSIONS_PER_IDENTITY)]
    pub max_sessions_per_identity: usize,
    /// Most rooms that exist at once (occupied or created); RoomService
    /// CreateRoom beyond it is refused (RESOURCE_EXHAUSTED).
    #[arg(long, env = "SWITCHBOARD_MAX_ROOMS", default_value_t = switchboard_signal::MAX_ROOMS)]
    pub max_rooms: usize,
    /// Joins per second one identity may make (per signal replica); a
    /// join refused for the client's own reason costs more.
    #[arg(long, env = "SWITCHBOARD_JOINS_PER_IDENTITY_PER_SECOND", default_value_t = switchboard_signal::keyed_rate::JOINS_PER_SECOND)]
    pub joins_per_identity_per_second: u32,
    /// Joins one identity may make in a burst above that rate.
    #[arg(long, env = "SWITCHBOARD_JOIN_BURST_PER_IDENTITY", default_value_t = switchboard_signal::keyed_rate::JOIN_BURST)]
    pub join_burst_per_identity: u32,
    /// RoomService SendData calls per second into one room (per replica).
    #[arg(long, env = "SWITCHBOARD_DATA_PER_ROOM_PER_SECOND", default_value_t = switchboard_signal::keyed_rate::DATA_PER_SECOND)]
    pub data_per_room_per_second: u32,
    /// SendData calls into one room allowed in a burst above that rate.
    #[arg(long, env = "SWITCHBOARD_DATA_BURST_PER_ROOM", default_value_t = switchboard_signal::keyed_rate::DATA_BURST)]
    pub data_burst_per_room: u32,
    /// Signals and presence updates per second into one room (per
    /// replica); past it the sender is told each one was dropped.
    #[arg(long, env = "SWITCHBOARD_MESSAGES_PER_ROOM_PER_SECOND", default_value_t = switchboard_signal::keyed_rate::MESSAGES_PER_ROOM_PER_SECOND)]
    pub messages_per_room_per_second: u32,
    /// Messages into one room allowed in a burst above that rate.
    #[arg(long, env = "SWITCHBOARD_MESSAGE_BURST_PER_ROOM", default_value_t = switchboard_signal::keyed_rate::MESSAGE_BURST_PER_ROOM)]
    pub message_burst_per_room: u32,
    /// Keep rooms and sessions in Redis so several signal replicas share
    /// them: one URL (standalone) or several seed nodes (cluster).
    #[arg(
        long = "redis",
        env = "SWITCHBOARD_REDIS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis: Vec<String>,
    /// Endpoints that receive every room event as a signed POST
    /// (docs/api.md "Webhooks"): https, or http to loopback; repeatable.
    #[arg(
        long = "webhook-url",
        env = "SWITCHBOARD_WEBHOOK_URLS",
        value_delimiter = ',',
        requires = "webhook_api_key"
    )]
    pub webhook_urls: Vec<String>,
    /// The API key pair KEY:SECRET whose secret signs webhooks (the key id
    /// is sent in Switchboard-Key).
    #[arg(
        long,
        env = "SWITCHBOARD_WEBHOOK_API_KEY",
        hide_env_values = true,
        requires = "webhook_urls"
    )]
    pub webhook_api_key: Option<switchboard_edge::ServiceCredential>,
    /// CA bundle (PEM) for https webhook endpoints (default: the system's).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    /// gRPC URL of the application's JoinHook, asked before every join
    /// (docs/api.md "Join hooks"): `https://`, or `http://` to loopback.
    #[arg(long, env = "SWITCHBOARD_JOIN_HOOK_URL")]
    pub join_hook_url: Option<String>,
    /// CA bundle (PEM) for an https join hook (default: the system's).
    #[arg(long, env = "SWITCHBOARD_JOIN_HOOK_CA_FILE")]
    pub join_hook_ca_file: Option<PathBuf>,
    /// The API key pair KEY:SECRET signal presents to the join hook.
    #[arg(
        long,
        env = "SWITCHBOARD_JOIN_HOOK_API_KEY",
        hide_env_values = true,
        requires = "join_hook_url"
    )]
    pub join_hook_api_key: Option<switchboard_edge::ServiceCredential>,
    /// Deadline of one join hook call, milliseconds.
    #[arg(long, env = "SWITCHBOARD_JOIN_HOOK_TIMEOUT_MS", default_value_t = 2000)]
    pub join_hook_timeout_ms: u64,
    /// Joins while the hook cannot answer: `closed` refuses them
    /// (unavailable, retryable), `open` lets them through as the token says.
    #[arg(long, env = "SWITCHBOARD_JOIN_HOOK_FAILURE", value_enum, default_value_t = HookFailure::Closed)]
    pub join_hook_failure: HookFailure,
    /// Lifetime of Switchboard's Redis keys, seconds (refreshed while used).
    #[arg(long, env = "SWITCHBOARD_REDIS_KEY_TTL", default_value_t = 24 * 3600)]
    pub redis_key_ttl: u64,
    /// The join hook's breaker: failed calls in a row that open it.
    #[arg(long, env = "SWITCHBOARD_JOIN_HOOK_BREAKER_FAILURES", default_value_t = switchboard_signal::join_hook::BREAKER_FAILURES)]
    pub join_hook_breaker_failures: u32,
    /// How long the join hook's breaker stays open (ms).
    #[arg(long, env = "SWITCHBOARD_JOIN_HOOK_BREAKER_OPEN_MS", default_value_t = switchboard_signal::join_hook::BREAKER_OPEN_FOR.as_millis() as u64)]
    pub join_hook_breaker_open_ms: u64,
    /// The first wait after a failed webhook post (ms); it doubles up to
    /// --webhook-retry-max-ms (each wait half fixed, half random).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_RETRY_MIN_MS", default_value_t = switchboard_signal::webhooks::RETRY_MIN.as_millis() as u64)]
    pub webhook_retry_min_ms: u64,
    /// The longest wait between webhook attempts (ms).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_RETRY_MAX_MS", default_value_t = switchboard_signal::webhooks::RETRY_MAX.as_millis() as u64)]
    pub webhook_retry_max_ms: u64,
}

/// `--join-hook-failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookFailure {
    Closed,
    Open,
}

/// `--turn-secret`: it mints every TURN credential, so it is as long as
/// any other configured secret.
fn turn_secret(raw: &str) -> Result<String, String> {
    switchboard_proto::service_credential::long_enough("--turn-secret", raw)?;
    Ok(raw.to_owned())
}
