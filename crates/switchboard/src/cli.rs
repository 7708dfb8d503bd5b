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

    #[command(subcommand)]
    pub command: Command,
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
    All(AllArgs),
    /// Mint an access token.
    Token(TokenArgs),
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
    /// Signal service gRPC URL.
    #[arg(
        long,
        env = "SWITCHBOARD_SIGNAL_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub signal_url: String,
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
    /// Relay streams from this edge to signal.
    #[arg(long, env = "SWITCHBOARD_SIGNAL_LANES", default_value_t = 2)]
    pub lanes: usize,
    /// Seconds shutdown waits for connections to close.
    #[arg(long, env = "SWITCHBOARD_DRAIN_SECONDS", default_value_t = 10)]
    pub drain_seconds: u64,
    /// Sustained client messages per second per connection.
    #[arg(long, env = "SWITCHBOARD_MESSAGES_PER_SECOND", default_value_t = switchboard_proto::limits::MESSAGES_PER_SECOND)]
    pub messages_per_second: u32,
    /// Client messages allowed in a burst above the sustained rate.
    #[arg(long, env = "SWITCHBOARD_MESSAGE_BURST", default_value_t = switchboard_proto::limits::MESSAGE_BURST)]
    pub message_burst: u32,
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
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Lifetime of issued tokens, seconds.
    #[arg(long, env = "SWITCHBOARD_TOKEN_TTL", default_value_t = 3600)]
    pub token_ttl: u64,
    /// Dev mode: IssueToken needs no credential.
    #[arg(long, env = "SWITCHBOARD_DEV")]
    pub dev: bool,
}

/// Token signing settings shared by `auth`, `all` and `token`.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// HS256 signing secret (at least 32 bytes). Without it, `all` and
    /// `auth --dev` generate an ephemeral one.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Token issuer (`iss`).
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
    /// A service to follow, as NAME=URL[#GRPC_SERVICE], repeatable.
    #[arg(
        long = "target",
        env = "SWITCHBOARD_HEALTH_TARGETS",
        value_delimiter = ','
    )]
    pub targets: Vec<String>,
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
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub edge: EdgeCommon,
    #[command(flatten)]
    pub signal: SignalCommon,
    /// Lifetime of issued tokens, seconds.
    #[arg(long, env = "SWITCHBOARD_TOKEN_TTL", default_value_t = 3600)]
    pub token_ttl: u64,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Room the token lets its holder join.
    #[arg(long)]
    pub room: String,
    /// Participant identity (`sub`).
    #[arg(long)]
    pub identity: String,
    /// Display name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Lifetime, seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Without a secret: ask this auth service (dev mode) instead.
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub auth_url: String,
}
