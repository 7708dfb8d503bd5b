//! TLS termination for the edge (rustls, ring provider). Outside loopback
//! development the edge must either terminate TLS itself or be explicitly
//! told that a TLS-terminating proxy stands in front of it.
//!
//! The certificate is reloaded when its files change
//! ([`switchboard_proto::tls_files::Reloading`]): open sessions keep theirs.

use std::{path::Path, sync::Arc};

pub use switchboard_proto::tls_files::{RELOAD_EVERY, Reloading, TlsError};
use tokio_rustls::TlsAcceptor;

/// ALPN: HTTP/2 for the client's files, health and JWKS; HTTP/1.1 for the
/// WebSocket. RFC 8441 (WebSocket over an HTTP/2 stream) is not offered:
/// the edge admits and caps connections per TCP connection, and a browser
/// would multiplex every tab's WebSocket onto one (docs/security.md §4.2).
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A TLS acceptor from PEM files (the certificate chain and its private
/// key), and its certificate for [`Reloading::watch`]. TLS 1.3 preferred,
/// 1.2 with rustls's suites (ECDHE and AEAD only); ALPN as [`ALPN`].
pub fn acceptor(cert: &Path, key: &Path) -> Result<(TlsAcceptor, Arc<Reloading>), TlsError> {
    let reloading = Reloading::load(cert, key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(reloading.clone());
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok((TlsAcceptor::from(Arc::new(config)), reloading))
}
