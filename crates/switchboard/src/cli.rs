//! Command line: one struct per service, every flag with a `SWITCHBOARD_*`
//! environment fallback and a documented default.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "WebRTC signaling platform")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// A TOML file configuring the whole stack: keys are the SWITCHBOARD_*
    /// variable names without the prefix, lowercased; `KEY_file` names a
    /// file holding KEY's value. Flags beat the environment, which beats
    /// the file (docs/operations.md).
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Parse and check the configuration, print what the service would
    /// serve as one JSON line (listen address, HTTP paths, gRPC health
    /// names, files read) and exit, without starting anything or reading
    /// secret files.
    #[arg(long, global = true)]
    pub check_config: bool,

    /// gRPC calls a server (auth, signal) runs in its handlers at once;
    /// more are refused at once with RESOURCE_EXHAUSTED.
    #[arg(long, global = true, env = "SWITCHBOARD_GRPC_MAX_CONCURRENT_CALLS", default_value_t = switchboard_proto::grpc::MAX_CONCURRENT_CALLS)]
    pub grpc_max_concurrent_calls: usize,

    /// Failed calls to auth in a row (no answer in time, no connection)
    /// that open the breaker in front of it (edge and signal).
    #[arg(long, global = true, env = "SWITCHBOARD_AUTH_BREAKER_FAILURES", default_value_t = switchboard_proto::auth_client::BREAKER_FAILURES)]
    pub auth_breaker_failures: u32,

    /// How long the breaker in front of auth stays open (ms) before one
    /// call probes it.
    #[arg(long, global = true, env = "SWITCHBOARD_AUTH_BREAKER_OPEN_MS", default_value_t = switchboard_proto::auth_client::BREAKER_OPEN_FOR.as_millis() as u64)]
    pub auth_breaker_open_ms: u64,

    /// Log lines one call site may write per second (bursts of ten times
    /// that); the rest are dropped and counted. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_LOG_LINES_PER_SECOND",
        default_value_t = 20
    )]
    pub log_lines_per_second: u32,

    /// Export traces to this OTLP/gRPC collector (`https://…`, or
    /// `http://` to loopback). Off unless given.
    #[arg(long, global = true, env = "SWITCHBOARD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Share of joins and signals whose trace starts here (0–1). A join
    /// carrying a browser's sampled `traceparent` is always traced.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_TRACE_SAMPLE_RATIO",
        default_value_t = 0.01
    )]
    pub trace_sample_ratio: f64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AddressInLogs {
    Network,
    Full,
    Off,
}

impl From<AddressInLogs> for switchboard_edge::AddressInLogs {
    fn from(value: AddressInLogs) -> Self {
        match value {
            AddressInLogs::Network => Self::Network,
            AddressInLogs::Full => Self::Full,
            AddressInLogs::Off => Self::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Browser gateway: HTTP, WebSocket, the built client.
    Edge(EdgeArgs),
    /// Token service (gRPC).
    Auth(AuthArgs),
    /// Rooms and relay (gRPC).
    Signal(SignalArgs),
    /// Liveness/readiness aggregator (HTTP).
    Health(HealthArgs),
    /// Every service in one process, each on its own port, talking gRPC
    /// over loopback. Dev mode: loopback origins allowed, dev token endpoint
    /// on, an ephemeral signing secret unless one is given.
    All(Box<AllArgs>),
    /// Mint an access token.
    Token(TokenArgs),
    /// Key material for operators.
    #[command(subcommand)]
    Keys(KeysCommand),
}

impl Command {
    /// The `service.name` of this process's traces.
    pub fn service_name(&self) -> &'static str {
        match self {
            Self::Edge(_) => "switchboard-edge",
            Self::Auth(_) => "switchboard-auth",
            Self::Signal(_) => "switchboard-signal",
            Self::Health(_) => "switchboard-health",
            Self::All(_) => "switchboard",
            Self::Token(_) | Self::Keys(_) => "switchboard-cli",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new private signing key (JWK) for `--signing-key`.
    Generate {
        /// EdDSA (Ed25519) or ES256 (P-256).
        #[arg(long, default_value = "EdDSA")]
        alg: String,
        /// Key id (`kid`); random when omitted.
        #[arg(long, default_value = "")]
        kid: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "SWITCHBOARD_EDGE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Serve this process's Prometheus metrics (`/metrics`) and
    /// `/health/live` on this address (an admin port: keep it off the
    /// public network).
    #[arg(long, env = "SWITCHBOARD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// gRPC URLs of the signal replicas (comma-separated; each gets its own lanes).
    #[arg(
        long = "signal-url",
        env = "SWITCHBOARD_SIGNAL_URLS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50052"
    )]
    pub signal_urls: Vec<String>,
    /// Redis where the edges publish their connection counts, to rebalance
    /// after a scale-out (standalone URL; off without it).
    #[arg(
        long,
        env = "SWITCHBOARD_REDIS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis: Vec<String>,
    /// Rebalance when this edge holds more than the fleet average by this
    /// fraction (0.2 = 20 %); 0 turns rebalancing off.
    #[arg(long, env = "SWITCHBOARD_REBALANCE_THRESHOLD", default_value_t = 0.2)]
    pub rebalance_threshold: f64,
    /// Clients asked to reconnect elsewhere per second at most while
    /// rebalancing.
    #[arg(long, env = "SWITCHBOARD_REBALANCE_PER_SECOND", default_value_t = 20)]
    pub rebalance_per_second: u32,
    #[command(flatten)]
    pub common: EdgeCommon,
}

/// Edge settings shared by `edge` and `all`.
#[derive(Debug, Clone, Args)]
pub struct EdgeCommon {
    /// Auth service gRPC URL.
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub auth_url: String,
    /// The edge's credential towards auth and signal: one of their API key
    /// pairs, KEY:SECRET (`all` makes one up).
    #[arg(long, env = "SWITCHBOARD_SERVICE_KEY", hide_env_values = true)]
    pub service_key: Option<switchboard_edge::ServiceCredential>,
    /// Origins allowed to open a WebSocket (exact, e.g. https://app.example.com).
    #[arg(
        long = "allowed-origin",
        env = "SWITCHBOARD_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Accept WebSocket handshakes without an Origin header (non-browser clients).
    #[arg(long, env = "SWITCHBOARD_ALLOW_MISSING_ORIGIN")]
    pub allow_missing_origin: bool,
    /// Directory of the built client (client/out), served at /.
    #[arg(long, env = "SWITCHBOARD_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// Most open connections per edge process.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most WebSocket sessions per edge process; beyond it an upgrade is
    /// refused with 503 + Retry-After (default: 90 % of --max-connections).
    #[arg(long, env = "SWITCHBOARD_MAX_SESSIONS")]
    pub max_sessions: Option<usize>,
    /// Most open WebSockets per client address (an IPv6 client's /64);
    /// more are refused with 503 and Retry-After.
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP",
        default_value_t = 500
    )]
    pub max_connections_per_ip: usize,
    /// New WebSockets per second per client address; faster is refused
    /// with 429.
    #[arg(
        long,
        env = "SWITCHBOARD_NEW_CONNECTIONS_PER_IP_PER_SECOND",
        default_value_t = 20
    )]
    pub new_connections_per_ip_per_second: u32,
    /// New WebSockets per client address allowed in a burst above that rate.
    #[arg(
        long,
        env = "SWITCHBOARD_NEW_CONNECTIONS_PER_IP_BURST",
        default_value_t = 100
    )]
    pub new_connections_per_ip_burst: u32,
    /// Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For
    /// names the client address. None by default: the TCP peer is the client.
    #[arg(
        long = "trusted-proxy",
        env = "SWITCHBOARD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<switchboard_edge::Cidr>,
    /// How a client's address appears in the log: `network` (IPv4 /24,
    /// IPv6 /48: where a flood comes from, not who calls), `full`, `off`.
    #[arg(long, env = "SWITCHBOARD_LOG_CLIENT_ADDRESS", value_enum, default_value_t = AddressInLogs::Network)]
    pub log_client_address: AddressInLogs,
    /// Seconds a client has to send a whole HTTP request head (and the
    /// longest an idle keep-alive connection is kept).
    #[arg(long, env = "SWITCHBOARD_HEADER_READ_SECONDS", default_value_t = 10)]
    pub header_read_seconds: u64,
    /// Relay streams from this edge to signal.
    #[arg(long, env = "SWITCHBOARD_SIGNAL_LANES", default_value_t = 2)]
    pub lanes: usize,
    /// Seconds shutdown waits for connections to close.
    #[arg(long, env = "SWITCHBOARD_DRAIN_SECONDS", default_value_t = 10)]
    pub drain_seconds: u64,
    /// Seconds over which a draining edge spreads its clients' reconnects
    /// (each is closed with 1012 at a random moment within it); below
    /// --drain-seconds. Default: 5, or half of --drain-seconds if less.
    #[arg(long, env = "SWITCHBOARD_DRAIN_SPREAD_SECONDS")]
    pub drain_spread_seconds: Option<f64>,
    /// Sustained client messages per second per connection.
    #[arg(long, env = "SWITCHBOARD_MESSAGES_PER_SECOND", default_value_t = switchboard_proto::limits::MESSAGES_PER_SECOND)]
    pub messages_per_second: u32,
    /// Client messages allowed in a burst above the sustained rate.
    #[arg(long, env = "SWITCHBOARD_MESSAGE_BURST", default_value_t = switchboard_proto::limits::MESSAGE_BURST)]
    pub message_burst: u32,
    /// Seconds a new WebSocket has to send Join or Resume.
    #[arg(long, env = "SWITCHBOARD_AUTH_DEADLINE_SECONDS", default_value_t = switchboard_proto::limits::AUTH_DEADLINE.as_secs())]
    pub auth_deadline_seconds: u64,
    /// Seconds between the edge's WebSocket pings (and the Ping interval
    /// clients are told).
    #[arg(long, env = "SWITCHBOARD_PING_INTERVAL_SECONDS", default_value_t = switchboard_proto::limits::PING_INTERVAL.as_secs())]
    pub ping_interval_seconds: u64,
    /// Seconds a joined connection may stay silent before it is closed.
    #[arg(long, env = "SWITCHBOARD_KEEPALIVE_TIMEOUT_SECONDS", default_value_t = switchboard_proto::limits::KEEPALIVE_TIMEOUT.as_secs())]
    pub keepalive_timeout_seconds: u64,
    /// Seconds a client's socket may take to accept one frame before the
    /// client is closed as a slow consumer.
    #[arg(long, env = "SWITCHBOARD_WRITE_TIMEOUT_SECONDS", default_value_t = switchboard_edge::WRITE_TIMEOUT.as_secs())]
    pub write_timeout_seconds: u64,
    /// Bytes queued for one client before it is closed as a slow consumer
    /// (at least twice the largest message).
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE_BYTES", default_value_t = switchboard_edge::OUTBOUND_BYTES)]
    pub outbound_queue_bytes: usize,
    /// TLS certificate chain (PEM) the edge serves HTTPS/WSS with.
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How often the certificate files are checked for a change (seconds);
    /// a renewed pair is served to new connections, open ones keep theirs.
    #[arg(long, env = "SWITCHBOARD_TLS_RELOAD_SECONDS", default_value_t = 5)]
    pub tls_reload_seconds: u64,
    /// Serve plain HTTP on a non-loopback address. Only behind a proxy that
    /// terminates TLS.
    #[arg(long, env = "SWITCHBOARD_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,
    /// Serve this process's Prometheus metrics (`/metrics`) and
    /// `/health/live` on this address (an admin port: keep it off the
    /// public network).
    #[arg(long, env = "SWITCHBOARD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub tokens: TokenPolicyArgs,
    /// Share revocations with other auth replicas through this Redis
    /// (standalone URL).
    #[arg(
        long = "redis",
        env = "SWITCHBOARD_REDIS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis: Vec<String>,
    /// Dev mode: IssueToken needs no credential; an ephemeral signing key is
    /// generated when none is given. Loopback only, unless
    /// --dangerously-expose-dev-mode.
    #[arg(long, env = "SWITCHBOARD_DEV")]
    pub dev: bool,
    /// Allow dev mode on a non-loopback address: anyone who reaches it can
    /// mint tokens for any identity. Throwaway demos only.
    #[arg(long, env = "SWITCHBOARD_DANGEROUSLY_EXPOSE_DEV_MODE")]
    pub dangerously_expose_dev_mode: bool,
}

/// Token lifetimes, shared by `auth` and `all`.
#[derive(Debug, Clone, Args)]
pub struct TokenPolicyArgs {
    /// Lifetime of issued access tokens, seconds.
    #[arg(long, env = "SWITCHBOARD_TOKEN_TTL", default_value_t = 3600)]
    pub token_ttl: u64,
    /// Lifetime of access tokens made by refresh, seconds.
    #[arg(long, env = "SWITCHBOARD_REFRESH_TTL", default_value_t = 3600)]
    pub refresh_ttl: u64,
    /// No refresh extends a session past its first token's issue + this, seconds.
    #[arg(long, env = "SWITCHBOARD_MAX_SESSION", default_value_t = 12 * 3600)]
    pub max_session: u64,
}

/// Token keys, shared by `auth`, `all` and `token`.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Private JWK file of the key that signs new tokens (`switchboard keys generate`).
    #[arg(long, env = "SWITCHBOARD_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// JWK files of older keys whose tokens still verify (key rotation), repeatable.
    #[arg(
        long = "verification-key",
        env = "SWITCHBOARD_VERIFICATION_KEYS",
        value_delimiter = ','
    )]
    pub verification_keys: Vec<PathBuf>,
    /// Backend API key pairs KEY:SECRET (secret at least 32 bytes), repeatable.
    #[arg(
        long = "api-key",
        env = "SWITCHBOARD_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Token issuer (`iss`) of tokens this service signs.
    #[arg(long, env = "SWITCHBOARD_JWT_ISSUER", default_value = "switchboard")]
    pub issuer: String,
    /// Token audience (`aud`).
    #[arg(long, env = "SWITCHBOARD_JWT_AUDIENCE", default_value = "switchboard")]
    pub audience: String,
}

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
    /// (docs/api.md "Join hooks").
    #[arg(long, env = "SWITCHBOARD_JOIN_HOOK_URL")]
    pub join_hook_url: Option<String>,
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

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "SWITCHBOARD_HEALTH_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,
    /// A service to follow, as NAME=URL[#GRPC_SERVICE], repeatable
    /// (at least one). Targets sharing a NAME are replicas: that group is
    /// ready while one of them serves.
    #[arg(
        long = "target",
        env = "SWITCHBOARD_HEALTH_TARGETS",
        value_delimiter = ','
    )]
    pub targets: Vec<switchboard_health::Target>,
    /// A Redis to probe (PING), reported as the group `redis`.
    #[arg(long, env = "SWITCHBOARD_HEALTH_REDIS", hide_env_values = true)]
    pub redis: Option<String>,
    /// Milliseconds each check or connection attempt may take.
    #[arg(
        long,
        env = "SWITCHBOARD_HEALTH_TARGET_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub target_timeout_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    #[arg(
        long,
        env = "SWITCHBOARD_EDGE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub edge_listen: SocketAddr,
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub auth_listen: SocketAddr,
    #[arg(
        long,
        env = "SWITCHBOARD_SIGNAL_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub signal_listen: SocketAddr,
    #[arg(
        long,
        env = "SWITCHBOARD_HEALTH_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub health_listen: SocketAddr,
    /// Allow this dev-mode stack on a non-loopback address: anyone who
    /// reaches it can mint tokens for any identity. Throwaway demos only.
    #[arg(long, env = "SWITCHBOARD_DANGEROUSLY_EXPOSE_DEV_MODE")]
    pub dangerously_expose_dev_mode: bool,
    /// The edge reaches signal and auth, and signal reaches auth, over gRPC
    /// on loopback as separate processes do, instead of in process (to
    /// measure or test those hops).
    #[arg(long, env = "SWITCHBOARD_GRPC_LINK")]
    pub grpc_link: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub edge: EdgeCommon,
    #[command(flatten)]
    pub signal: SignalCommon,
    #[command(flatten)]
    pub tokens: TokenPolicyArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Participant identity (`sub`).
    #[arg(long)]
    pub identity: String,
    /// Room the token lets its holder join: a name, `prefix*`, or `*`.
    #[arg(long, default_value = "")]
    pub room: String,
    /// Display name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Lifetime, seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Withhold the publish grant (the holder may answer but not offer).
    #[arg(long)]
    pub no_publish: bool,
    /// Grant every admin right (create, list, close rooms; kick).
    #[arg(long)]
    pub admin: bool,
    /// Mint offline as a backend: HS256 with this API key as `iss`.
    #[arg(long, env = "SWITCHBOARD_API_KEY")]
    pub api_key: Option<String>,
    /// The API key's secret.
    #[arg(long, env = "SWITCHBOARD_API_SECRET", hide_env_values = true)]
    pub api_secret: Option<String>,
    /// Mint offline with this private JWK (as the auth service would).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// Token issuer for --signing-key.
    #[arg(long, env = "SWITCHBOARD_JWT_ISSUER", default_value = "switchboard")]
    pub issuer: String,
    /// Token audience.
    #[arg(long, env = "SWITCHBOARD_JWT_AUDIENCE", default_value = "switchboard")]
    pub audience: String,
    /// Ask the auth service at --auth-url (with the API credential when
    /// given) instead of minting offline.
    #[arg(long)]
    pub remote: bool,
    /// Otherwise: ask this auth service (with the API credential, or in dev mode).
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub auth_url: String,
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
