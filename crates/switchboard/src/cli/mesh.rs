//! Flags of the links between services (checked together by crate::mesh:
//! clap's `requires` would not see the config file's keys): mutual TLS (docs/security.md §4),
//! the plaintext health port, and plaintext off loopback.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use switchboard_proto::mtls::PeerName;

/// How this process's gRPC links are secured (every service).
#[derive(Debug, Clone, Args)]
pub struct MeshArgs {
    /// The CA that signs every service's certificate (PEM): turns on mutual
    /// TLS. `switchboard certs generate` makes a dev CA and certificates.
    #[arg(long, global = true, env = "SWITCHBOARD_MTLS_CA")]
    pub mtls_ca: Option<PathBuf>,
    /// This service's certificate (PEM), presented as server and as client;
    /// reloaded when the file changes.
    #[arg(long, global = true, env = "SWITCHBOARD_MTLS_CERT")]
    pub mtls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, global = true, env = "SWITCHBOARD_MTLS_KEY")]
    pub mtls_key: Option<PathBuf>,
    /// Peers whose calls this server (auth, signal) answers: names their
    /// certificates must carry. Default: auth lets in edge, signal and
    /// health; signal lets in edge and health. Add each backend's name.
    #[arg(
        long = "mtls-allow",
        global = true,
        env = "SWITCHBOARD_MTLS_ALLOW",
        value_delimiter = ','
    )]
    pub mtls_allow: Vec<PeerName>,
    /// With mutual TLS: also serve `grpc.health.v1` alone, in plaintext, on
    /// this address (Kubernetes' gRPC probes present no certificate).
    #[arg(long, global = true, env = "SWITCHBOARD_GRPC_HEALTH_LISTEN")]
    pub grpc_health_listen: Option<SocketAddr>,
    /// Accept plaintext gRPC off loopback (listening, or dialling an
    /// http:// URL): only inside a network you trust as much as the
    /// process. Without it, a non-loopback gRPC port or URL needs mTLS.
    #[arg(long, global = true, env = "SWITCHBOARD_GRPC_PLAINTEXT")]
    pub grpc_plaintext: bool,
}
