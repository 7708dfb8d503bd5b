//! edge: the browser-facing gateway. Terminates HTTP and WebSocket, checks
//! Origin and tokens (through auth), and translates every browser message
//! into envelopes on the multiplexed signal link. It holds no room logic.
#![forbid(unsafe_code)]

pub mod admission;
#[cfg(feature = "conformance-echo")]
pub mod conformance;
mod connection;
mod conns;
mod http;
mod jwks_cache;
mod log_address;
pub use log_address::AddressInLogs;
pub mod origin;
mod rebalance;
mod relay_probe;
mod revocation_watch;
mod revocations;
mod session_token;
mod signal_link;
mod static_files;
mod tls;

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard_proto::{grpc::Dial, mtls::PeerName};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, watch},
};

pub use admission::{Admission, AdmissionConfig, Cidr};
pub use connection::{ConnectionLimits, OUTBOUND_BYTES, RateLimit, WRITE_TIMEOUT};
pub use origin::OriginPolicy;
pub use rebalance::RebalanceConfig;
pub use signal_link::{SignalLink, Upstream};
pub use switchboard_proto::{
    auth_client::{AuthClient, LocalAuth},
    local_relay::LocalRelay,
    service_credential::ServiceCredential,
};

use crate::{connection::ConnectionContext, http::HttpContext};

/// Edge configuration (parsed by the binary).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// gRPC addresses of the signal replicas, e.g. `http://127.0.0.1:50052`.
    pub signal_urls: Vec<String>,
    /// A signal service in this process (`switchboard all`): its lanes
    /// carry batches without gRPC. Used besides `signal_urls`.
    pub local_signal: Option<LocalRelay>,
    /// gRPC address of the auth service.
    pub auth_url: String,
    /// The auth service in this process (`switchboard all`), used instead
    /// of `auth_url`.
    pub local_auth: Option<LocalAuth>,
    /// What the edge presents to auth and signal (one of their API keys).
    /// Without it auth refuses the revocation stream (the edge is never
    /// ready) and signal refuses every lane.
    pub service_credential: Option<ServiceCredential>,
    pub origins: OriginPolicy,
    /// Directory of the built client, served at `/`.
    pub static_dir: Option<PathBuf>,
    /// Dev mode: the dev token endpoint is on.
    pub dev: bool,
    /// Open connections (HTTP and WebSocket) at most; more are refused at
    /// accept.
    pub max_connections: usize,
    /// WebSocket sessions this edge holds at most; beyond it an upgrade is
    /// refused with 503 + Retry-After (reconnect: a load balancer places
    /// the client elsewhere), so the edge does not degrade everyone. `None`:
    /// nine tenths of `max_connections` (room to answer the refusals).
    pub max_sessions: Option<usize>,
    /// Relay streams to each signal replica.
    pub lanes: usize,
    /// How long shutdown waits for connections to close (their closes are
    /// spread over `connection.drain_spread`, which must be shorter).
    pub drain_deadline: Duration,
    /// Publish the connection count and rebalance through Redis.
    pub rebalance: Option<RebalanceConfig>,
    /// A request whose headers have not all arrived this long after the
    /// connection opened (or after the previous response, on keep-alive) is
    /// dropped: slow-loris and idle keep-alive connections hold no slot.
    pub header_read_timeout: Duration,
    /// Per-connection message rate, timers and queue bound.
    pub connection: ConnectionLimits,
    /// Per-client-address WebSocket cap and rate, and trusted proxies.
    pub admission: AdmissionConfig,
    /// TLS certificate chain and private key (PEM files); `None` serves
    /// plain HTTP (loopback development, or behind a TLS-terminating proxy).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How often the certificate files are checked for a change (a new
    /// pair is served to new connections; open ones keep theirs).
    pub tls_reload_every: Duration,
    /// How a client's address appears in the log.
    pub log_client_address: AddressInLogs,
    /// This edge's mTLS identity towards auth and signal (`https://` URLs).
    pub mtls: Option<Arc<switchboard_proto::mtls::Mtls>>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            signal_urls: vec!["http://127.0.0.1:50052".into()],
            local_signal: None,
            auth_url: "http://127.0.0.1:50051".into(),
            local_auth: None,
            service_credential: None,
            origins: OriginPolicy::default(),
            static_dir: None,
            dev: false,
            max_connections: 10_000,
            max_sessions: None,
            lanes: 2,
            drain_deadline: Duration::from_secs(10),
            rebalance: None,
            header_read_timeout: HEADER_READ_TIMEOUT,
            connection: ConnectionLimits::default(),
            admission: AdmissionConfig::default(),
            tls: None,
            tls_reload_every: tls::RELOAD_EVERY,
            log_client_address: AddressInLogs::default(),
            mtls: None,
        }
    }
}

/// Errors that stop the edge from starting.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("invalid upstream address {0}")]
    Upstream(#[from] switchboard_proto::grpc::DialError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Default [`EdgeConfig::header_read_timeout`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS handshake slower than this is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `url` of the service named `peer` (its certificate must name it).
fn dial(config: &EdgeConfig, url: &str, peer: &PeerName) -> Result<Dial, EdgeError> {
    Ok(Dial::new(url, config.mtls.as_deref(), peer)?)
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HTTP/2 connection's requests in flight, and when the last one ended.
#[derive(Clone)]
struct Activity(Arc<std::sync::Mutex<(usize, tokio::time::Instant)>>);

impl Default for Activity {
    fn default() -> Self {
        Self(Arc::new(std::sync::Mutex::new((
            0,
            tokio::time::Instant::now(),
        ))))
    }
}

impl Activity {
    fn state(&self) -> std::sync::MutexGuard<'_, (usize, tokio::time::Instant)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request begins; it ends when the guard is dropped (answered or
    /// cancelled).
    fn start(&self) -> InFlight {
        self.state().0 += 1;
        InFlight(self.clone())
    }

    /// How long no request has been in flight, if none is.
    fn idle_for(&self) -> Option<Duration> {
        let (active, since) = *self.state();
        (active == 0).then(|| since.elapsed())
    }
}

struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        *state = (state.0.saturating_sub(1), tokio::time::Instant::now());
    }
}

/// Serves HTTP/2 on one TLS connection that negotiated it (ALPN `h2`:
/// files, health, JWKS; no WebSocket) until it ends or the edge stops.
async fn serve_h2<IO>(
    io: TokioIo<IO>,
    ctx: Arc<HttpContext>,
    peer: http::Peer,
    stop: &mut watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Requests in flight and the last moment there were none: an HTTP/2
    // connection without a request for the header timeout is closed like
    // an idle HTTP/1.1 keep-alive (its pings would keep it open forever,
    // holding a connection slot).
    let activity = Activity::default();
    let service = service_fn({
        let (ctx, activity) = (ctx.clone(), activity.clone());
        move |req| {
            let in_flight = activity.start();
            let response = http::handle(ctx.clone(), peer.clone(), req);
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        }
    });
    let idle_after = ctx.header_read_timeout;
    let mut check = tokio::time::interval((idle_after / 4).max(Duration::from_millis(50)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        // The shared HTTP/2 bounds (switchboard_proto::grpc): streams,
        // header list, rapid reset, and a keepalive for dead peers.
        .max_concurrent_streams(switchboard_proto::grpc::MAX_CONCURRENT_STREAMS)
        .max_header_list_size(switchboard_proto::grpc::MAX_HEADER_LIST_BYTES)
        .max_pending_accept_reset_streams(switchboard_proto::grpc::MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(switchboard_proto::grpc::MAX_LOCAL_ERROR_RESET_STREAMS)
        .keep_alive_interval(switchboard_proto::grpc::HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(switchboard_proto::grpc::HTTP2_KEEPALIVE_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = stopped(stop) => break,
            _ = check.tick() => {
                if activity.idle_for().is_some_and(|idle| idle >= idle_after) {
                    break;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Serves HTTP/1.1 (with WebSocket upgrades) on one connection until it
/// ends or the edge stops (then gracefully).
async fn serve_http<IO>(
    io: TokioIo<IO>,
    ctx: Arc<HttpContext>,
    peer: http::Peer,
    stop: &mut watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn({
        let ctx = ctx.clone();
        move |req| http::handle(ctx.clone(), peer.clone(), req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // Without a timer hyper silently drops its header-read timeout.
        .timer(hyper_util::rt::TokioTimer::new())
        // Slow-loris, and idle keep-alive: the head must arrive in time.
        .header_read_timeout(ctx.header_read_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopped(stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Serves one connection of a draining edge: one request, answered by
/// [`http::draining`], then closed.
async fn refuse_draining<IO>(io: TokioIo<IO>, header_read_timeout: Duration)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(false)
        .serve_connection(io, service_fn(http::draining))
        .await;
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What a started edge shows of itself: its signal link (readiness,
/// connection counts) and its admission (refusal counts).
#[derive(Debug, Clone)]
pub struct EdgeHandle {
    pub link: SignalLink,
    pub admission: Admission,
}

/// Serves the edge on `listener` until `shutdown` resolves. Shutdown order:
/// stop accepting, tell every WebSocket to reconnect (1012), wait for
/// connections to close (at most `drain_deadline`), then close the signal
/// link. `on_start` receives the edge's handle once started.
pub async fn run(
    listener: TcpListener,
    config: EdgeConfig,
    shutdown: impl Future<Output = ()> + Send,
    on_start: impl FnOnce(EdgeHandle),
) -> Result<(), EdgeError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (link_stop_tx, link_stop_rx) = watch::channel(false);
    let mut upstreams = config
        .signal_urls
        .iter()
        .map(|u| dial(&config, u, &PeerName::signal()).map(|e| Upstream::Grpc(Box::new(e))))
        .collect::<Result<Vec<_>, _>>()?;
    upstreams.extend(config.local_signal.clone().map(Upstream::Local));
    let link = SignalLink::start(
        upstreams,
        config.lanes,
        config.service_credential.clone(),
        link_stop_rx.clone(),
    );
    let auth = match config.local_auth.clone() {
        Some(local) => AuthClient::local(local, config.service_credential.clone()),
        None => AuthClient::new(
            dial(&config, &config.auth_url, &PeerName::auth())?,
            config.service_credential.clone(),
        ),
    };
    // Every task serving a connection holds a clone of `done_tx` (inside the
    // context): when all are dropped, the drain is complete.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut origins = config.origins;
    // Same-origin is the scheme this edge serves.
    origins.serves_https = config.tls.is_some();
    let revocations = revocations::RecentRevocations::default();
    let ctx = Arc::new(HttpContext {
        conn: Arc::new(ConnectionContext {
            link: link.clone(),
            auth,
            limits: config.connection,
            revocations: revocations.clone(),
        }),
        origins,
        static_dir: config.static_dir,
        dev: config.dev,
        shutdown: stop_rx.clone(),
        done: done_tx,
        header_read_timeout: config.header_read_timeout,
        max_sessions: config
            .max_sessions
            .unwrap_or(config.max_connections.saturating_mul(9) / 10)
            .max(1),
        admission: Admission::new(config.admission),
        jwks: jwks_cache::JwksCache::default(),
        log_client_address: config.log_client_address,
    });
    on_start(EdgeHandle {
        link: link.clone(),
        admission: ctx.admission.clone(),
    });
    tokio::spawn(revocation_watch::run(
        ctx.conn.auth.clone(),
        link.clone(),
        revocations,
        link_stop_rx.clone(),
    ));
    if let Some(rebalance) = config.rebalance.clone() {
        // Ends when the drain starts (and takes this edge out of the fleet).
        tokio::spawn(rebalance::run(rebalance, link.clone(), stop_rx.clone()));
    }
    let tls = match &config.tls {
        Some((cert, key)) => {
            let (acceptor, certificate) = tls::acceptor(cert, key)?;
            // Ends when the drain starts.
            tokio::spawn(certificate.watch(config.tls_reload_every, stop_rx.clone()));
            Some(acceptor)
        }
        None => None,
    };
    let slots = Arc::new(Semaphore::new(config.max_connections));

    tokio::pin!(shutdown);
    loop {
        let (socket, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Refuse early, before any parsing, when full.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(socket);
            continue;
        };
        // Shared with the WebSocket the connection may become.
        let peer = http::Peer {
            slot: Arc::new(slot),
            addr,
        };
        let _ = socket.set_nodelay(true);
        let ctx = ctx.clone();
        let mut stop = stop_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_http(TokioIo::new(socket), ctx, peer, &mut stop).await,
                Some(acceptor) => {
                    // A client that never finishes the handshake must not
                    // hold a slot.
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await
                    {
                        Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                            serve_h2(TokioIo::new(stream), ctx, peer, &mut stop).await
                        }
                        Ok(Ok(stream)) => {
                            serve_http(TokioIo::new(stream), ctx, peer, &mut stop).await
                        }
                        Ok(Err(err)) => tracing::debug!(error = %err, "tls handshake failed"),
                        Err(_) => tracing::debug!("tls handshake timed out"),
                    }
                }
            }
        });
    }

    // The drain: readiness goes 503 and every WebSocket gets its
    // reconnect at a random moment within the drain spread (the writer
    // does it); the listener stays open and answers every new connection
    // 503 `shutting_down` at once (`http::draining`) until the last
    // connection is gone or the deadline passes.
    tracing::info!(connections = link.connections(), "edge draining");
    let _ = stop_tx.send(true);
    drop(ctx);
    let deadline = tokio::time::sleep(config.drain_deadline);
    tokio::pin!(deadline);
    // Owned here: dropped (aborted) when the drain ends.
    let mut refusals = tokio::task::JoinSet::new();
    let drained = loop {
        tokio::select! {
            _ = done_rx.recv() => break true,
            () = &mut deadline => break false,
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                let tls = tls.clone();
                let header_read_timeout = config.header_read_timeout;
                refusals.spawn(async move {
                    let _slot = slot;
                    match tls {
                        None => refuse_draining(TokioIo::new(socket), header_read_timeout).await,
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket));
                            match handshake.await {
                                Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                                    // One answer per request, then the connection ends.
                                    let conn = hyper::server::conn::http2::Builder::new(
                                        hyper_util::rt::TokioExecutor::new(),
                                    )
                                    .serve_connection(TokioIo::new(stream), service_fn(http::draining));
                                    let _ = tokio::time::timeout(header_read_timeout, conn).await;
                                }
                                Ok(Ok(stream)) => {
                                    refuse_draining(TokioIo::new(stream), header_read_timeout).await;
                                }
                                _ => {}
                            }
                        }
                    }
                });
            }
            Some(_) = refusals.join_next(), if !refusals.is_empty() => {}
        }
    };
    if !drained {
        tracing::warn!(remaining = link.connections(), "drain deadline passed");
    }
    let _ = link_stop_tx.send(true);
    Ok(())
}
