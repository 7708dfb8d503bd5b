//! gRPC transport settings every Switchboard server shares, so that each
//! service's `run` only adds its own layers.

use std::time::Duration;

use tonic::transport::Server;

use crate::grpc_metrics::CallGuardLayer;

/// HTTP/2 resets a client may leave pending before the connection is
/// dropped (rapid-reset defence, CVE-2023-44487).
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 32;
/// Keepalive pings on idle gRPC connections, so a dead peer is noticed.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent requests per connection; beyond it calls queue (and unary
/// calls time out), so one caller cannot take every worker.
pub const CONCURRENCY_PER_CONNECTION: usize = 256;
/// Streams one HTTP/2 connection may hold open (SETTINGS_MAX_CONCURRENT_
/// STREAMS). tonic's default is no limit at all, which overrides hyper's.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;
/// Streams the server may reset for a peer's protocol errors before it
/// drops the connection (the RUSTSEC-2024-0003 class).
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;
/// Largest header list a peer may send (SETTINGS_MAX_HEADER_LIST_SIZE):
/// bounds a CONTINUATION flood.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Calls one server runs in their handlers at once, over all its
/// connections; more are refused at once with RESOURCE_EXHAUSTED.
pub const MAX_CONCURRENT_CALLS: usize = 1024;
/// Largest HTTP/2 frame either side accepts (SETTINGS_MAX_FRAME_SIZE). A
/// Relay batch is tens to hundreds of KiB: at the 16 KiB default each one
/// is cut into many DATA frames, each framed, copied and flow-controlled on
/// its own. 1 MiB is what DESIGN.md's prototype measured best with.
pub const MAX_FRAME_BYTES: u32 = 1024 * 1024;

/// h2 counts each received DATA frame smaller than this against a
/// connection budget while the application has not read it (h2 0.4.20:
/// `data_frame_budget`, half the connection window, not settable through
/// tonic), and closes the connection with GOAWAY `ENHANCE_YOUR_CALM` when
/// it runs out. A Relay lane at a low rate sends one small batch per
/// message; a replica that falls behind for a second or two would buffer
/// thousands and lose the connection with every session on it.
pub const SMALL_DATA_FRAME: usize = 256;
/// gRPC's length prefix, in the same DATA frame as the message.
const GRPC_PREFIX: usize = 5;

/// Zeros for a batch field (number ≤ 15, one tag byte) that make a message
/// of `encoded_len` bytes at least [`SMALL_DATA_FRAME`] on the wire with
/// its gRPC prefix; empty for a message already that large.
pub fn padding(encoded_len: usize) -> Vec<u8> {
    let wanted = SMALL_DATA_FRAME - GRPC_PREFIX;
    if encoded_len >= wanted {
        return Vec::new();
    }
    // Tag and length (≤ 2 bytes) come on top: at most 2 bytes over.
    vec![0; wanted - encoded_len - 1]
}

/// An edge batch as it goes on the wire, padded (see [`padding`]).
pub fn padded_edge_batch(envelopes: Vec<crate::pb::EdgeEnvelope>) -> crate::pb::EdgeBatch {
    use prost::Message as _;
    let mut batch = crate::pb::EdgeBatch {
        envelopes,
        padding: Vec::new(),
    };
    batch.padding = padding(batch.encoded_len());
    batch
}

/// A signal batch as it goes on the wire, padded (see [`padding`]).
pub fn padded_signal_batch(envelopes: Vec<crate::pb::SignalEnvelope>) -> crate::pb::SignalBatch {
    use prost::Message as _;
    let mut batch = crate::pb::SignalBatch {
        envelopes,
        padding: Vec::new(),
    };
    batch.padding = padding(batch.encoded_len());
    batch
}

/// gRPC server reflection (v1 and v1alpha) over every schema in `proto/`,
/// `grpc.health.v1` included: `grpcurl list` works without proto files.
/// The schema is public (the browser protocol is documented); what a
/// caller may do is checked by each service, not hidden.
pub fn reflection() -> (
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
) {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the compiled descriptor set is valid");
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the compiled descriptor set is valid");
    (v1, v1alpha)
}

/// A server builder with the shared transport defaults.
pub fn server_builder() -> Builder {
    Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
        .http2_max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
        .max_frame_size(Some(MAX_FRAME_BYTES))
        // A connection at its own limit is shed too, not queued.
        .load_shed(true)
        // Counted and timed, shed past the server-wide limit
        // (grpc_metrics::CallGuardLayer).
        .layer(CallGuardLayer::new(
            crate::tuning::get().max_concurrent_calls.max(1),
        ))
}

/// The server [`server_builder`] makes.
pub type Builder = Server<tower::layer::util::Stack<CallGuardLayer, tower::layer::util::Identity>>;

pub use crate::grpc_listen::{
    Access, Conn, ConnInfo, HANDSHAKE_TIMEOUT, Listeners, MAX_CONNECTIONS, ServerTls, incoming,
};

/// Longest a connection to another service may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A client endpoint between services: connected lazily by its users,
/// `TCP_NODELAY`, a bounded connect, and HTTP/2 keepalive so a peer that
/// stops answering (frozen, or a lost network) is noticed within seconds.
pub fn endpoint(url: &str) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .max_frame_size(MAX_FRAME_BYTES))
}

/// Why a gRPC peer cannot be dialled as configured.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("{0}: {1}")]
    Url(String, tonic::transport::Error),
    #[error(
        "{0}: https:// needs this service's mTLS identity (--mtls-ca, --mtls-cert, --mtls-key)"
    )]
    NoIdentity(String),
    #[error("{0}: plain http only to loopback; use https")]
    PlaintextOffLoopback(String),
    #[error("{0}: {1}")]
    Tls(String, crate::tls_files::TlsError),
}

/// A gRPC peer and how to reach it: plaintext for `http://`, mutual TLS
/// for `https://`, accepting only a server whose certificate names `peer`
/// (crate::mtls).
#[derive(Debug, Clone)]
pub struct Dial {
    endpoint: tonic::transport::Endpoint,
    tls: Option<crate::mtls::GrpcTlsConnector>,
}

impl Dial {
    /// `url` with the shared client settings ([`endpoint`]).
    pub fn new(
        url: &str,
        mtls: Option<&crate::mtls::Mtls>,
        peer: &crate::mtls::PeerName,
    ) -> Result<Self, DialError> {
        match url.strip_prefix("https://") {
            Some(rest) => {
                let mtls = mtls.ok_or_else(|| DialError::NoIdentity(url.to_owned()))?;
                Ok(Self {
                    endpoint: tls_endpoint(url, rest)?,
                    tls: Some(mtls.connector(peer, CONNECT_TIMEOUT)),
                })
            }
            None => Ok(Self {
                endpoint: endpoint(url).map_err(|e| DialError::Url(url.to_owned(), e))?,
                tls: None,
            }),
        }
    }

    /// An application's server (not a Switchboard service): `https://`
    /// verified against the PEM roots in `roots` for the URL's host, no
    /// client certificate; plain `http://` only to loopback.
    pub fn application(url: &str, roots: &std::path::Path) -> Result<Self, DialError> {
        match url.strip_prefix("https://") {
            Some(rest) => {
                let endpoint = tls_endpoint(url, rest)?;
                let host = endpoint.uri().host().unwrap_or_default().to_owned();
                let tls = crate::mtls::server_tls_connector(roots, &host, CONNECT_TIMEOUT)
                    .map_err(|e| DialError::Tls(url.to_owned(), e))?;
                Ok(Self {
                    endpoint,
                    tls: Some(tls),
                })
            }
            None => {
                let endpoint = endpoint(url).map_err(|e| DialError::Url(url.to_owned(), e))?;
                if !is_loopback_host(endpoint.uri().host().unwrap_or_default()) {
                    return Err(DialError::PlaintextOffLoopback(url.to_owned()));
                }
                Ok(Self {
                    endpoint,
                    tls: None,
                })
            }
        }
    }

    /// Connections (and TLS handshakes) bounded by `timeout` instead.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.endpoint = self.endpoint.connect_timeout(timeout);
        if let Some(tls) = &mut self.tls {
            tls.set_connect_timeout(timeout);
        }
        self
    }

    /// A channel that connects on first use and reconnects after a failure.
    pub fn connect_lazy(&self) -> tonic::transport::Channel {
        match &self.tls {
            None => self.endpoint.connect_lazy(),
            Some(tls) => self.endpoint.connect_with_connector_lazy(tls.clone()),
        }
    }

    /// A channel connected now.
    pub async fn connect(&self) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        match &self.tls {
            None => self.endpoint.connect().await,
            Some(tls) => self.endpoint.connect_with_connector(tls.clone()).await,
        }
    }
}

/// The endpoint of `https://{rest}` as tonic must see it: plain http, the
/// TLS being the connector's (tonic's own TLS, which another crate's
/// feature may turn on, would refuse an https URL it does not handle).
fn tls_endpoint(url: &str, rest: &str) -> Result<tonic::transport::Endpoint, DialError> {
    endpoint(&format!("http://{rest}")).map_err(|e| DialError::Url(url.to_owned(), e))
}

/// Whether plaintext to or from `host` stays on this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How long a stopping server waits for its streams to end by themselves
/// (Relay lanes and revocation streams end on the stop signal; health
/// `Watch` streams never do) before it closes what is left.
pub const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a server built by `serve` (given the stop signal to pass to
/// `serve_with_incoming_shutdown`) until `shutdown` resolves, then lets it
/// drain for at most [`DRAIN_DEADLINE`]: a stream that outlives it (a
/// health watcher, a peer that never lets go) cannot keep the process
/// from exiting.
pub async fn serve_draining<'a, F>(
    shutdown: impl std::future::Future<Output = ()> + Send + 'a,
    serve: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>) -> F,
) -> Result<(), tonic::transport::Error>
where
    F: std::future::Future<Output = Result<(), tonic::transport::Error>>,
{
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    let server = serve(Box::pin(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    }));
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async {
            if stopping.await.is_ok() {
                tokio::time::sleep(DRAIN_DEADLINE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!("drain deadline passed; closing the streams still open");
            Ok(())
        }
    }
}

#[cfg(test)]
mod padding_tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn small_batches_are_padded_to_a_large_frame_and_large_ones_left_alone() {
        for envelopes in 0..40 {
            let batch = padded_edge_batch(
                (0..envelopes)
                    .map(|conn| crate::pb::EdgeEnvelope { conn, event: None })
                    .collect(),
            );
            let on_wire = batch.encoded_len() + GRPC_PREFIX;
            assert!(on_wire >= SMALL_DATA_FRAME, "{envelopes}: {on_wire}");
            assert!(
                batch.padding.is_empty() || on_wire <= SMALL_DATA_FRAME + 2,
                "{envelopes}: padded to {on_wire}"
            );
        }
    }
}

#[cfg(test)]
mod dial_tests {
    use super::*;

    #[test]
    fn an_application_is_dialled_over_tls_or_on_loopback() {
        let roots = std::path::Path::new("/nonexistent/roots.pem");
        assert!(Dial::application("http://127.0.0.1:50070", roots).is_ok());
        assert!(Dial::application("http://localhost:50070", roots).is_ok());
        assert!(matches!(
            Dial::application("http://hooks.example.com:50070", roots),
            Err(DialError::PlaintextOffLoopback(_))
        ));
        // https reads its roots: a missing bundle is named at start.
        let Err(DialError::Tls(_, err)) = Dial::application("https://hooks.example.com", roots)
        else {
            panic!("the roots file is read");
        };
        assert!(err.to_string().contains("/nonexistent/roots.pem"), "{err}");
    }
}
