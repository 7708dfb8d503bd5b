//! Command line: one struct per service, every flag with a `SWITCHBOARD_*`
//! environment fallback and a documented default.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

mod edge;
mod mesh;
mod signal;

pub use edge::{EdgeArgs, EdgeCommon};
pub use mesh::MeshArgs;
pub use signal::{HookFailure, SignalArgs, SignalCommon};

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

    #[command(flatten)]
    pub mesh: MeshArgs,

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
    All(Box<AllArgs>),
    /// Mint an access token.
    Token(TokenArgs),
    /// Key material for operators.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Certificates for mutual TLS between services.
    #[command(subcommand)]
    Certs(CertsCommand),
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
            Self::Token(_) | Self::Keys(_) | Self::Certs(_) => "switchboard-cli",
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

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a dev CA (`ca.pem`, `ca.key`; reused when present) and a
    /// certificate and key per peer name (`NAME.pem`, `NAME.key`) into
    /// --out.
    Generate {
        /// Directory to write into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Peer names to make certificates for (a backend takes its own).
        #[arg(long = "name", value_delimiter = ',', default_values_t = crate::certs::default_names())]
        names: Vec<switchboard_proto::mtls::PeerName>,
        /// More DNS names for one peer's certificate, PEER=DNS_NAME,
        /// repeatable (e.g. signal=signal.switchboard.svc for grpcurl).
        #[arg(long = "san")]
        extra_names: Vec<String>,
        /// Lifetime of each service certificate, days.
        #[arg(long, default_value_t = 90)]
        days: u64,
    },
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
