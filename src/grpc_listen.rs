//! The sockets a gRPC server (auth, signal) accepts on, and what each
//! connection may do ([`Access`]): the main port, plaintext (loopback, or
//! explicitly accepted) or mutual TLS; and optionally a plaintext port
//! that serves only `grpc.health.v1`, for Kubernetes' gRPC probes, which
//! cannot present a certificate.
//!
//! Connections are capped ([`MAX_CONNECTIONS`], shared by both ports; one
//! over is closed at accept, the kernel's backlog is not a bound). TLS
//! handshakes run in their own tasks, each bounded by
//! [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds up
//! another's accept.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};

use crate::mtls::{Mtls, PeerName};

/// Connections one server holds at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 4096;
/// Longest a TLS handshake may take before its connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Accepted connections waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// The main port's mutual TLS: the identity and the peers let in.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub mtls: Arc<Mtls>,
    /// Names a peer's certificate must be valid for (one of).
    pub allowed: Arc<[PeerName]>,
}

/// The sockets of one gRPC server.
#[derive(Debug)]
pub struct Listeners {
    /// Every service (mTLS when `tls` is set).
    pub grpc: TcpListener,
    pub tls: Option<ServerTls>,
    /// Plaintext, `grpc.health.v1` only.
    pub health: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    /// One plaintext port (loopback, or plaintext accepted by the operator).
    fn from(grpc: TcpListener) -> Self {
        Self {
            grpc,
            tls: None,
            health: None,
        }
    }
}

/// What the calls on one connection may do (checked per call by
/// [`crate::peer_check`]).
#[derive(Debug, Clone)]
pub enum Access {
    /// The main port without TLS: everything.
    Plaintext,
    /// The health port: `grpc.health.v1` only.
    HealthOnly,
    /// A peer whose certificate names an allowed peer.
    Peer(PeerName),
    /// A certificate of the CA that names no allowed peer.
    Unlisted(Arc<[PeerName]>),
}

/// A connection's address and access, in each request's extensions.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<std::net::SocketAddr>,
    pub access: Access,
}

/// An accepted connection holding one of the server's connection slots.
#[derive(Debug)]
pub struct Conn {
    io: Io,
    info: ConnInfo,
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    /// The TCP stream under any TLS.
    pub fn tcp(&self) -> &TcpStream {
        match &self.io {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }
}

/// The connections of `listeners`, accepted by tasks that end when the
/// stream is dropped (the server stopped).
pub fn incoming(
    listeners: impl Into<Listeners>,
) -> impl futures_util::Stream<Item = io::Result<Conn>> + Send + 'static {
    let Listeners { grpc, tls, health } = listeners.into();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
    let main = match tls {
        Some(tls) => Port::Tls(tls),
        None => Port::Plain(Access::Plaintext),
    };
    tokio::spawn(accept(grpc, main, slots.clone(), tx.clone()));
    if let Some(health) = health {
        tokio::spawn(accept(health, Port::Plain(Access::HealthOnly), slots, tx));
    }
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

#[derive(Debug, Clone)]
enum Port {
    Plain(Access),
    Tls(ServerTls),
}

/// Accepts on `listener` until the server drops its stream (`tx` closed).
async fn accept(
    listener: TcpListener,
    port: Port,
    slots: Arc<Semaphore>,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            // EMFILE and friends: tell the server, and let descriptors free
            // up before the next accept instead of spinning on the error.
            Err(err) => {
                if tx.send(Err(err)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("gRPC connection refused: at the connection cap");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let remote = Some(remote);
        match &port {
            Port::Plain(access) => {
                let conn = Conn {
                    io: Io::Plain(stream),
                    info: ConnInfo {
                        remote,
                        access: access.clone(),
                    },
                    _permit: permit,
                };
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
            }
            // The handshake's task holds the slot; it ends by the timeout
            // at the latest.
            Port::Tls(tls) => {
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.mtls.acceptor().accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => {
                            tracing::info!(error = %err, "gRPC TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::info!("gRPC TLS handshake timed out");
                            return;
                        }
                    };
                    let access = access_of(&stream, &tls.allowed);
                    let conn = Conn {
                        io: Io::Tls(Box::new(stream)),
                        info: ConnInfo { remote, access },
                        _permit: permit,
                    };
                    let _ = tx.send(Ok(conn)).await;
                });
            }
        }
    }
}

/// Which allowed peer the handshake's client certificate names.
fn access_of(
    stream: &tokio_rustls::server::TlsStream<TcpStream>,
    allowed: &Arc<[PeerName]>,
) -> Access {
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first());
    match leaf.and_then(|leaf| crate::mtls::peer_name(leaf, allowed)) {
        Some(name) => Access::Peer(name.clone()),
        None => Access::Unlisted(allowed.clone()),
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// tonic sets `TCP_NODELAY` only on listeners it binds itself; ours
    /// must set it on every accepted connection (else Nagle meets delayed
    /// ACKs on each small gRPC write: ≈ 40 ms stalls).
    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut incoming = Box::pin(incoming(listener));
        let _client = TcpStream::connect(addr).await.expect("connect");
        let accepted = incoming.next().await.expect("one").expect("accepted");
        assert!(accepted.tcp().nodelay().expect("nodelay"));
    }
}
