//! TLS termination for the edge (rustls, ring provider). Outside loopback
//! development the edge must either terminate TLS itself or be explicitly
//! told that a TLS-terminating proxy stands in front of it.
//!
//! The certificate is reloaded when its files change (cert-manager renews
//! a Secret, the kubelet swaps the files): [`Reloading`] answers every new
//! handshake with the current certificate, and a task checks the files'
//! modification times every [`RELOAD_EVERY`]. Connections already open
//! keep their session; a new pair that does not load (half-written, key
//! not matching) is logged and the previous one kept.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// The certificate chain and key of PEM files, ready to serve.
fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Read(cert.display().to_string(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read(cert.display().to_string(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Read(
            cert.display().to_string(),
            "no certificate found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Read(key.display().to_string(), e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// The edge's certificate, swapped when its files change.
#[derive(Debug)]
pub struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn count(outcome: &str) {
    let metrics = switchboard_proto::metrics::metrics();
    switchboard_proto::metrics::Metrics::count(&metrics.tls_reloads, "outcome", outcome);
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Reloading {
    /// Loads the pair once more if either file changed since `seen`.
    fn reload_if_changed(&self, seen: &mut (Option<SystemTime>, Option<SystemTime>)) {
        let now = (modified(&self.cert), modified(&self.key));
        if now == *seen {
            return;
        }
        match load(&self.cert, &self.key) {
            Ok(fresh) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                *seen = now;
                count("loaded");
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            // Half-written or mismatched: keep serving the previous pair and
            // try again at the next check (the files may still be moving).
            Err(err) => {
                count("failed");
                tracing::warn!(error = %err, "TLS certificate not reloaded; keeping the previous one");
            }
        }
    }

    /// Checks the files every `every` until `stop` turns true.
    pub async fn watch(self: Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut seen = (modified(&self.cert), modified(&self.key));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.reload_if_changed(&mut seen),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// A TLS acceptor from PEM files (the certificate chain and its private
/// key), and its certificate for [`Reloading::watch`]. ALPN offers only
/// `http/1.1`: WebSocket upgrades need HTTP/1.1.
pub fn acceptor(cert: &Path, key: &Path) -> Result<(TlsAcceptor, Arc<Reloading>), TlsError> {
    let reloading = Arc::new(Reloading {
        current: RwLock::new(load(cert, key)?),
        cert: cert.to_owned(),
        key: key.to_owned(),
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(reloading.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), reloading))
}
