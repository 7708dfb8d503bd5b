//! The edge's flags (`edge`, and the edge's part of `all`).

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, ValueEnum};

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
    /// Development: make a self-signed certificate at start (localhost,
    /// loopback and the listen address) and serve HTTPS/WSS with it; its
    /// fingerprints are printed. Browsers warn about it: never production.
    #[arg(long, env = "SWITCHBOARD_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// How often the certificate files are checked for a change (seconds);
    /// a renewed pair is served to new connections, open ones keep theirs.
    #[arg(long, env = "SWITCHBOARD_TLS_RELOAD_SECONDS", default_value_t = 5)]
    pub tls_reload_seconds: u64,
    /// Serve plain HTTP on a non-loopback address. Only behind a proxy that
    /// terminates TLS.
    #[arg(long, env = "SWITCHBOARD_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
}
