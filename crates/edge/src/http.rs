//! The edge's HTTP surface: the WebSocket endpoint, liveness and
//! readiness, the dev token endpoint, and the built client.

use std::{convert::Infallible, path::PathBuf, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use switchboard_proto::{ErrorCode, SignalError, limits::MAX_MESSAGE_BYTES, pb};
use tokio::sync::watch;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tracing::Instrument;

use crate::{
    admission::{self, Admission, Refusal},
    connection::{self, ConnectionContext},
    origin::OriginPolicy,
    static_files,
};

pub type Body = Full<Bytes>;

/// Bytes tungstenite reads from the socket at a time, allocated for every
/// connection's life (a larger frame grows it). Its 128 KiB default would
/// cost gigabytes across 100k idle connections; 8 KiB → 4 KiB saved
/// ≈ 2.6 KiB per idle session at no measurable CPU cost (2 KiB: 1 KiB more
/// for ≈ 3 % more CPU at saturation). BENCHMARKS.md.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes a burst of frames is gathered into before tungstenite writes to
/// the socket: the writer feeds what is queued and flushes once
/// (`connection::writer`), so a burst costs one syscall, not one per frame.
const WRITE_BUFFER: usize = 64 * 1024;
/// Bytes buffered for writing before a send waits for the socket.
const MAX_WRITE_BUFFER: usize = 256 * 1024;
/// The client's Content-Security-Policy: its own origin only; media and
/// images from capture (`blob:`, `mediastream:`); WebSockets to the edge
/// (`connect-src 'self'` covers `ws(s)://` to the same host in current
/// browsers; older ones need the scheme named).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
     connect-src 'self' ws: wss:; worker-src 'self'; manifest-src 'self'; font-src 'self' data:; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Largest dev token request body.
const MAX_DEV_BODY: usize = 4 * 1024;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct HttpContext {
    /// Shared by every connection (one pointer each, not a copy).
    pub conn: Arc<ConnectionContext>,
    pub origins: OriginPolicy,
    pub static_dir: Option<PathBuf>,
    pub dev: bool,
    pub shutdown: watch::Receiver<bool>,
    /// Held (through this context) by every connection task; the drain is
    /// over when the last clone is gone.
    pub done: tokio::sync::mpsc::Sender<()>,
    /// See [`crate::EdgeConfig::header_read_timeout`].
    pub header_read_timeout: std::time::Duration,
    /// Per-address WebSocket admission.
    pub admission: Admission,
    /// See [`crate::EdgeConfig::max_sessions`].
    pub max_sessions: usize,
    /// Auth's public keys, as last fetched.
    pub jwks: crate::jwks_cache::JwksCache,
    /// See [`crate::EdgeConfig::log_client_address`].
    pub log_client_address: crate::AddressInLogs,
}

pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
        .accept_unmasked_frames(false)
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error as an HTTP response: status from the error table, body with the
/// stable code; never internals.
pub fn error_response(err: &SignalError) -> Response<Body> {
    let status =
        StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(
        status,
        serde_json::json!({ "code": err.code.as_str(), "message": err.message }),
    );
    // For the metrics of whoever answers with it (not sent).
    response.extensions_mut().insert(err.code);
    response
}

/// Marks a refusal at the edge's session cap (for its metric).
#[derive(Debug, Clone, Copy)]
struct SessionCap;

/// Counts an upgrade by outcome: `accepted`, `session_cap`, or the
/// refusal's code.
fn count_upgrade(response: &Response<Body>) {
    let outcome = if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        "accepted"
    } else if response.extensions().get::<SessionCap>().is_some() {
        "session_cap"
    } else {
        response
            .extensions()
            .get::<ErrorCode>()
            .map_or("internal", |code| code.as_str())
    };
    let metrics = switchboard_proto::metrics::metrics();
    switchboard_proto::metrics::Metrics::count(&metrics.upgrades, "outcome", outcome);
}

/// The connection's slot under `--max-connections`: held by the HTTP
/// connection and, once upgraded, by its WebSocket, so it is released when
/// the socket closes, not when hyper hands the socket over.
pub type Slot = Arc<tokio::sync::OwnedSemaphorePermit>;

/// What the handler knows of the TCP connection a request came on.
#[derive(Debug, Clone)]
pub struct Peer {
    pub slot: Slot,
    pub addr: std::net::SocketAddr,
}

pub async fn handle(
    ctx: Arc<HttpContext>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let response = match (req.method(), path.as_str()) {
        (&Method::GET, "/ws") => {
            let response = upgrade(ctx, peer, req, Served::Signaling).await;
            count_upgrade(&response);
            response
        }
        #[cfg(feature = "conformance-echo")]
        (&Method::GET, crate::conformance::PATH) => upgrade(ctx, peer, req, Served::Echo).await,
        (&Method::GET, "/health/live") => {
            json(StatusCode::OK, serde_json::json!({ "status": "live" }))
        }
        (&Method::GET, "/health/ready") => ready(&ctx),
        (&Method::POST, "/v1/dev/token") if ctx.dev => dev_token(&ctx, req).await,
        (&Method::GET, "/.well-known/jwks.json") => match ctx.jwks.get(&ctx.conn.auth).await {
            Ok(jwks) => {
                let mut response = Response::new(Full::new(Bytes::from(jwks)));
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/jwk-set+json"),
                );
                headers.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=60"),
                );
                response
            }
            Err(err) => error_response(&err),
        },
        (&Method::GET | &Method::HEAD, _) => static_file(&ctx, &path).await,
        _ => error_response(&SignalError::new(ErrorCode::NotFound, "no such endpoint")),
    };
    Ok(response)
}

/// What a draining edge answers on a connection opened after the drain
/// began: still live (liveness never fails for a drain: the pod is ending
/// on purpose), not ready, and no new WebSocket: 503 `shutting_down` with
/// `Retry-After`, at once, so a client or load balancer goes elsewhere
/// instead of waiting on a connection nobody will serve.
pub async fn draining(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.method() == Method::GET && req.uri().path() == "/health/live" {
        return Ok(json(
            StatusCode::OK,
            serde_json::json!({ "status": "live" }),
        ));
    }
    let mut response = if req.uri().path() == "/health/ready" {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "not ready", "draining": true }),
        )
    } else {
        error_response(&SignalError::new(
            ErrorCode::ShuttingDown,
            "edge is shutting down",
        ))
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Ok(response)
}

/// Ready when the edge can serve a join: a lane to signal is up, auth is
/// reachable, and the edge is not draining. Liveness depends on neither.
fn ready(ctx: &HttpContext) -> Response<Body> {
    let state = |up: bool| if up { "serving" } else { "down" };
    let (signal, auth) = (ctx.conn.link.is_serving(), ctx.conn.auth.is_up());
    let draining = *ctx.shutdown.borrow();
    let ready = signal && auth && !draining;
    json(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        serde_json::json!({
            "status": if ready { "ready" } else { "not ready" },
            "signal": state(signal),
            "auth": state(auth),
            "draining": draining,
            "connections": ctx.conn.link.connections(),
        }),
    )
}

async fn static_file(ctx: &HttpContext, path: &str) -> Response<Body> {
    let not_found = || error_response(&SignalError::new(ErrorCode::NotFound, "not found"));
    let Some(root) = &ctx.static_dir else {
        return not_found();
    };
    let Some((file, mime)) = static_files::resolve(root, path).await else {
        return not_found();
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(Bytes::from(bytes)));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            // The client keeps its tokens in sessionStorage: no script
            // but its own (Next's inline bootstrap needs 'unsafe-inline';
            // no eval, no foreign origin), no framing, nothing sent to
            // another site.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            if ctx.origins.serves_https {
                headers.insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=31536000"),
                );
            }
            // The service worker must always be revalidated.
            if path.ends_with("sw.js") {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            }
            response
        }
        Err(_) => not_found(),
    }
}

#[derive(serde::Deserialize)]
struct DevTokenRequest {
    identity: String,
    room: String,
    #[serde(default)]
    name: String,
}

async fn dev_token(ctx: &HttpContext, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_DEV_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error_response(&SignalError::new(
                ErrorCode::MessageTooLarge,
                "body too large",
            ));
        }
    };
    let Ok(request) = serde_json::from_slice::<DevTokenRequest>(&body) else {
        return error_response(&SignalError::new(
            ErrorCode::BadRequest,
            "expected {\"identity\":..., \"room\":..., \"name\":...}",
        ));
    };
    let issue = pb::IssueTokenRequest {
        identity: request.identity,
        name: request.name,
        grants: Some(pb::Grants {
            room: request.room,
            publish: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    match ctx.conn.auth.issue(issue).await {
        Ok(token) => json(
            StatusCode::OK,
            serde_json::json!({ "token": token.token, "expiresAt": token.expires_at }),
        ),
        Err(err) => error_response(&err),
    }
}

/// At most `max` bytes of `value` (cut on a char boundary), for logging
/// what a client sent.
fn truncated(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// A refused admission as an HTTP response: 503 at the cap, 429 too fast,
/// both with `Retry-After`.
fn refused(refusal: Refusal) -> Response<Body> {
    let (err, retry_after) = match refusal {
        Refusal::AtCap => (
            SignalError::new(
                ErrorCode::Unavailable,
                "too many connections from this address",
            ),
            "5",
        ),
        Refusal::TooFast => (
            SignalError::new(
                ErrorCode::RateLimited,
                "connections opened too fast from this address",
            ),
            "1",
        ),
    };
    let mut response = error_response(&err);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
    response
}

/// What an upgraded connection serves.
#[derive(Debug, Clone, Copy)]
enum Served {
    /// The signaling protocol (`/ws`).
    Signaling,
    /// Every message back (`conformance`; never in a deployed binary).
    #[cfg(feature = "conformance-echo")]
    Echo,
}

async fn upgrade(
    ctx: Arc<HttpContext>,
    peer: Peer,
    mut req: Request<Incoming>,
    served: Served,
) -> Response<Body> {
    let headers = req.headers();
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let is_upgrade = header_str(header::UPGRADE)
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && header_str(header::CONNECTION).is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return error_response(&SignalError::new(
            ErrorCode::BadRequest,
            "not a websocket handshake",
        ));
    };
    if !is_upgrade || header_str(header::SEC_WEBSOCKET_VERSION) != Some("13") {
        return error_response(&SignalError::new(
            ErrorCode::BadRequest,
            "not a websocket handshake",
        ));
    }
    let origin = header_str(header::ORIGIN);
    if !ctx.origins.allows(origin, header_str(header::HOST)) {
        // Attacker-controlled: logged cut short.
        tracing::info!(
            origin = truncated(origin.unwrap_or("<none>"), 128),
            "websocket origin refused"
        );
        return error_response(&SignalError::new(
            ErrorCode::OriginNotAllowed,
            "origin not allowed",
        ));
    }
    if *ctx.shutdown.borrow() {
        return error_response(&SignalError::new(
            ErrorCode::ShuttingDown,
            "edge is shutting down",
        ));
    }
    // The node's own cap, before any per-address or token work: a full
    // edge sends the client elsewhere at once. (Approximate by the
    // handshakes in flight: a session counts once its socket is served.)
    if ctx.conn.link.connections() >= ctx.max_sessions {
        let mut response = error_response(&SignalError::new(
            ErrorCode::Unavailable,
            "this edge holds its maximum of sessions; reconnect to be placed on another",
        ));
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response.extensions_mut().insert(SessionCap);
        return response;
    }
    let client = admission::client_ip(
        peer.addr.ip(),
        req.headers(),
        ctx.admission.trusted_proxies(),
    );
    let admitted = match ctx.admission.admit(client) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            tracing::debug!(?refusal, "websocket refused by per-address admission");
            return refused(refusal);
        }
    };
    // Non-browser clients may authenticate in the handshake itself.
    let preauth = match header_str(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let token = value.strip_prefix("Bearer ").unwrap_or("");
            match ctx.conn.auth.verify(token).await {
                Ok(claims) => Some(connection::preauth(token.to_owned(), claims)),
                Err(err) => return error_response(&err),
            }
        }
    };

    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let conn_ctx = ctx.conn.clone();
    let shutdown = ctx.shutdown.clone();
    let drain_guard = ctx.done.clone();
    // The connection's log lines carry where it comes from, and once it
    // has one, its session, room and (if traced) the join's trace id.
    let span = tracing::info_span!(
        "conn",
        client = %ctx.log_client_address.show(client),
        session = tracing::field::Empty,
        room = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    tokio::spawn(
        async move {
            let (_drain_guard, _slot, _admitted) = (drain_guard, peer.slot, admitted);
            match on_upgrade.await {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(websocket_config()),
                    )
                    .await;
                    match served {
                        Served::Signaling => {
                            connection::serve(ws, conn_ctx, preauth, shutdown).await
                        }
                        #[cfg(feature = "conformance-echo")]
                        Served::Echo => crate::conformance::echo(ws).await,
                    }
                }
                Err(err) => tracing::debug!(error = %err, "websocket upgrade failed"),
            }
        }
        .instrument(span),
    );

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}
