//! TLS termination for the edge (rustls, ring provider). Outside loopback
//! development the edge must either terminate TLS itself or be explicitly
//! told that a TLS-terminating proxy stands in front of it.
//!
//! The certificate is reloaded when its files change
//! ([`switchboard_proto::tls_files::Reloading`]): open sessions keep theirs.

use std::{path::Path, sync::Arc};

pub use switchboard_proto::tls_files::{RELOAD_EVERY, Reloading, TlsError};
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor from PEM files (the certificate chain and its private
/// key), and its certificate for [`Reloading::watch`]. ALPN offers only
/// `http/1.1`: WebSocket upgrades need HTTP/1.1.
pub fn acceptor(cert: &Path, key: &Path) -> Result<(TlsAcceptor, Arc<Reloading>), TlsError> {
    let reloading = Reloading::load(cert, key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(reloading.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), reloading))
}
