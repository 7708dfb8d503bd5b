//! Mutual TLS between Switchboard's services (`--mtls-ca`, `--mtls-cert`,
//! `--mtls-key`): every service presents a certificate signed by one CA,
//! and each side checks the other's *name* — not its address.
//!
//! A peer's name is a DNS name in its certificate (`switchboard certs
//! generate` writes `auth`, `signal`, `edge`, `health`, or a backend's own
//! name, into the certificate's subject alternative names). A server
//! accepts any certificate of its CA at the handshake and then answers
//! each call of a peer whose certificate names none of its allow-list
//! (`--mtls-allow`) with `PERMISSION_DENIED` naming that list
//! ([`crate::peer_check`]); a client dialling `auth` accepts only a
//! server certificate valid for `auth`, whatever address it dialled (pod
//! addresses, port-forwards). TLS 1.3 only: both ends are ours.
//!
//! The pair is reloaded when its files change ([`Reloading`]); the CA is
//! read at start (a new CA is a rollout).

use std::{
    fmt,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    str::FromStr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, ServerName},
    server::WebPkiClientVerifier,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use webpki;

use crate::tls_files::{Reloading, TlsError, certificates};

/// The files of a service's mTLS identity.
#[derive(Debug, Clone)]
pub struct MtlsFiles {
    /// The CA every peer's certificate must chain to (PEM).
    pub ca: PathBuf,
    /// This service's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A peer's name in the mesh: a DNS name (letters, digits, `-`, `.`; up to
/// 253 bytes) that its certificate must be valid for.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerName(Arc<str>);

impl PeerName {
    /// The auth service.
    pub fn auth() -> Self {
        Self("auth".into())
    }
    /// The signal service.
    pub fn signal() -> Self {
        Self("signal".into())
    }
    /// The name as written in certificates.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn server_name(&self) -> ServerName<'static> {
        ServerName::try_from(self.0.to_string()).expect("checked when parsed")
    }
}

impl fmt::Debug for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a peer name was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a peer name: letters, digits, '-' and '.', a DNS name")]
pub struct BadPeerName(String);

impl FromStr for PeerName {
    type Err = BadPeerName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fine = !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && matches!(ServerName::try_from(s), Ok(ServerName::DnsName(_)));
        if fine {
            Ok(Self(s.to_ascii_lowercase().into()))
        } else {
            Err(BadPeerName(s.to_owned()))
        }
    }
}

/// A service's mTLS identity and the CA it trusts: the server and client
/// TLS configurations built from them.
#[derive(Debug)]
pub struct Mtls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    certificate: Arc<Reloading>,
}

impl Mtls {
    /// Loads the CA and the pair; refuses a pair its own CA did not sign
    /// (a misconfiguration every peer would refuse later, one by one).
    pub fn load(files: &MtlsFiles) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in certificates(&files.ca)? {
            roots
                .add(cert)
                .map_err(|e| TlsError::Read(files.ca.display().to_string(), e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let certificate = Reloading::load(&files.cert, &files.key)?;
        signed_by(&certificate.current().cert, &roots, &files.cert)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(certificate.clone());
        server.alpn_protocols = vec![b"h2".to_vec()];
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(certificate.clone());
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            certificate,
        }))
    }

    /// Accepts handshakes of peers presenting a certificate of the CA.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server.clone())
    }

    /// Reloads the pair when its files change, until `stop` turns true.
    pub fn watch(
        &self,
        every: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.certificate.clone().watch(every, stop)
    }

    /// A connector for tonic that dials over TCP and accepts only a server
    /// whose certificate is valid for `peer`.
    pub fn connector(&self, peer: &PeerName, connect_timeout: Duration) -> GrpcTlsConnector {
        GrpcTlsConnector {
            tls: TlsConnector::from(self.client.clone()),
            peer: peer.server_name(),
            connect_timeout,
        }
    }
}

/// A connector to an application's gRPC server over TLS (no client
/// certificate): its certificate must chain to the PEM roots in `roots`
/// and be valid for `host`, the URL's host (web PKI rules).
pub fn server_tls_connector(
    roots: &Path,
    host: &str,
    connect_timeout: Duration,
) -> Result<GrpcTlsConnector, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(roots)? {
        store
            .add(cert)
            .map_err(|e| TlsError::Read(roots.display().to_string(), e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let peer = ServerName::try_from(host.to_owned())
        .map_err(|e| TlsError::Config(format!("{host}: {e}")))?;
    Ok(GrpcTlsConnector {
        tls: TlsConnector::from(Arc::new(config)),
        peer,
        connect_timeout,
    })
}

/// Whether `chain`'s leaf was issued by a CA in `roots`: checked with the
/// client verifier rustls uses for peers.
fn signed_by(
    chain: &[CertificateDer<'static>],
    roots: &Arc<RootCertStore>,
    path: &Path,
) -> Result<(), TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| TlsError::Read(path.display().to_string(), "empty chain".into()))?;
    verifier
        .verify_client_cert(leaf, rest, rustls::pki_types::UnixTime::now())
        .map(|_| ())
        .map_err(|e| {
            TlsError::Config(format!(
                "{} is not a client certificate of --mtls-ca: {e}",
                path.display()
            ))
        })
}

/// The first name of `allowed` that the peer's leaf certificate is valid
/// for (its CA was checked in the handshake).
pub fn peer_name<'a>(leaf: &CertificateDer<'_>, allowed: &'a [PeerName]) -> Option<&'a PeerName> {
    let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
    allowed.iter().find(|name| {
        cert.verify_is_valid_for_subject_name(&name.server_name())
            .is_ok()
    })
}

/// Dials a gRPC server over TLS for tonic: a Switchboard service over
/// mutual TLS ([`Mtls::connector`]) or an application's server
/// ([`server_tls_connector`]).
#[derive(Clone)]
pub struct GrpcTlsConnector {
    tls: TlsConnector,
    peer: ServerName<'static>,
    connect_timeout: Duration,
}

impl GrpcTlsConnector {
    /// Bounds the TCP connect and the handshake, each.
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout;
    }
}

impl fmt::Debug for GrpcTlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcTlsConnector")
            .field("peer", &self.peer)
            .finish()
    }
}

type Connecting = Pin<
    Box<
        dyn Future<
                Output = Result<
                    hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
                    std::io::Error,
                >,
            > + Send,
    >,
>;

impl tower::Service<http::Uri> for GrpcTlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let (tls, peer, timeout) = (self.tls.clone(), self.peer.clone(), self.connect_timeout);
        Box::pin(async move {
            let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "no host or port");
            let host = uri
                .host()
                .ok_or_else(bad)?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            // The URL was https:// (rewritten for tonic): 443 unless given.
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            tcp.set_nodelay(true)?;
            let stream = tokio::time::timeout(timeout, tls.connect(peer, tcp))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_are_dns_names() {
        for ok in ["auth", "edge", "billing-backend", "signal.switchboard.svc"] {
            assert_eq!(ok.parse::<PeerName>().expect(ok).as_str(), ok);
        }
        for bad in ["", "a b", "auth:50051", "*.x", "10.0.0.1", "a/b", "é"] {
            assert!(bad.parse::<PeerName>().is_err(), "{bad}");
        }
    }
}
