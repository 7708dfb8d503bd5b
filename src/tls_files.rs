//! Certificates and keys from PEM files, reloaded when the files change.
//!
//! cert-manager renews a Secret and the kubelet swaps the files: a
//! [`Reloading`] answers every new handshake with the pair it loaded last,
//! and [`Reloading::watch`] checks the files' modification times on a
//! timer. Connections already open keep their session; a new pair that
//! does not load (half-written, key not matching) is counted and logged,
//! and the previous one kept. The same pair serves a server
//! ([`ResolvesServerCert`]) and a client presenting it ([`ResolvesClientCert`]).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    client::ResolvesClientCert,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::sync::watch;

/// How often certificate files are checked for a change by default.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// Every certificate in a PEM file (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = || path.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read(shown(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read(shown(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Read(shown(), "no certificate found".into()));
    }
    Ok(certs)
}

/// The certificate chain and key of PEM files, ready to present.
fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Read(key.display().to_string(), e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// A certificate and key, swapped when their files change.
#[derive(Debug)]
pub struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for Reloading {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn count(outcome: &str) {
    let metrics = crate::metrics::metrics();
    crate::metrics::Metrics::count(&metrics.tls_reloads, "outcome", outcome);
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Reloading {
    /// The pair in `cert` and `key` (PEM), loaded now.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: RwLock::new(load(cert, key)?),
            cert: cert.to_owned(),
            key: key.to_owned(),
        }))
    }

    /// The pair loaded last.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

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
            // Half-written or mismatched: keep the previous pair and try
            // again at the next check (the files may still be moving).
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
