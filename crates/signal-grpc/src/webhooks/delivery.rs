//! One webhook endpoint's HTTP client: a POST of a signed JSON body over
//! HTTP/1.1, on a kept-alive connection (TLS with rustls for `https://`;
//! plain `http://` only to loopback). Any answer but 2xx, a timeout or a
//! broken connection is a failed attempt; the caller retries.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The roots `https://` endpoints are checked against unless another file
/// is given (Debian's bundle).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why an endpoint cannot be used at all (configuration).
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("webhook url {0:?}: {1}")]
    Url(String, String),
    #[error("webhook CA file {0}: {1}")]
    Roots(String, String),
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("answered {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Where one endpoint is, and how to reach it.
#[derive(Clone)]
pub struct Endpoint {
    url: String,
    host: String,
    port: u16,
    path: String,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).finish()
    }
}

impl Endpoint {
    /// Parses `url`: `https://` anywhere (checked against the roots in
    /// `ca_file`, else [`SYSTEM_ROOTS`]), `http://` only to loopback.
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Self, EndpointError> {
        let bad = |why: &str| EndpointError::Url(url.to_owned(), why.to_owned());
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?.to_owned();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if switchboard_proto::grpc::is_loopback_host(&host) => false,
            Some("http") => return Err(bad("plain http only to loopback; use https")),
            _ => return Err(bad("scheme must be https (or http to loopback)")),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let tls = https.then(|| connector(ca_file)).transpose()?;
        Ok(Self {
            url: url.to_owned(),
            host,
            port,
            path,
            tls,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

fn connector(ca_file: Option<&Path>) -> Result<TlsConnector, EndpointError> {
    let path = ca_file.unwrap_or(Path::new(SYSTEM_ROOTS));
    let shown = path.display().to_string();
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| EndpointError::Roots(shown.clone(), e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| EndpointError::Roots(shown.clone(), e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| EndpointError::Roots(shown.clone(), e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EndpointError::Roots(shown.clone(), e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Posts to one endpoint, keeping its connection between posts.
#[derive(Debug)]
pub struct Poster {
    endpoint: Endpoint,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Poster {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            sender: None,
        }
    }

    pub fn url(&self) -> &str {
        self.endpoint.url()
    }

    /// One attempt: POST `body` with `headers`, within `timeout`.
    pub async fn post(
        &mut self,
        body: Bytes,
        headers: &[(&'static str, String)],
        timeout: Duration,
    ) -> Result<(), AttemptError> {
        let attempt = self.attempt(body, headers);
        let result = tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or(Err(AttemptError::Timeout(timeout)));
        if result.is_err() {
            // A failed connection is not trusted again.
            self.sender = None;
        }
        result
    }

    async fn attempt(
        &mut self,
        body: Bytes,
        headers: &[(&'static str, String)],
    ) -> Result<(), AttemptError> {
        let sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        let mut sender = sender;
        sender.ready().await?;
        let mut request = Request::post(self.endpoint.path.as_str())
            .header(http::header::HOST, self.authority())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "switchboard-webhooks");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| AttemptError::Status(0))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        // The body is not read (a receiver says yes or no with its status);
        // dropping it with a connection that cannot be reused is fine.
        self.sender = Some(sender);
        if status.is_success() {
            Ok(())
        } else {
            Err(AttemptError::Status(status.as_u16()))
        }
    }

    fn authority(&self) -> String {
        match (self.endpoint.tls.is_some(), self.endpoint.port) {
            (true, 443) | (false, 80) => self.endpoint.host.clone(),
            (_, port) => format!("{}:{port}", self.endpoint.host),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, AttemptError> {
        let host = self.endpoint.host.trim_matches(['[', ']']);
        let tcp = TcpStream::connect((host, self.endpoint.port))
            .await
            .map_err(AttemptError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.endpoint.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                    AttemptError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                let stream = tls.connect(name, tcp).await.map_err(AttemptError::Tls)?;
                handshake(stream).await
            }
        }
    }
}

/// An HTTP/1.1 client connection on `io`; its driver task ends when the
/// connection does (the sender dropped, or the peer closed).
async fn handshake<I>(io: I) -> Result<SendRequest<Full<Bytes>>, AttemptError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "webhook connection ended");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_only() {
        for ok in [
            "http://127.0.0.1:8080/hooks",
            "http://localhost/x",
            "http://[::1]:9/",
        ] {
            assert!(Endpoint::parse(ok, None).is_ok(), "{ok}");
        }
        for refused in [
            "http://hooks.example.com/x",
            "http://10.0.0.1/x",
            "ftp://127.0.0.1/",
            "nonsense",
        ] {
            assert!(Endpoint::parse(refused, None).is_err(), "{refused}");
        }
        let endpoint = Endpoint::parse("http://127.0.0.1:8080/hooks?x=1", None).expect("url");
        assert_eq!(
            (endpoint.port, endpoint.path.as_str()),
            (8080, "/hooks?x=1")
        );
    }
}
