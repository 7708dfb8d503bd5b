//! health: the aggregator operators and Kubernetes probes ask.
//!
//! - `GET /health/live`: 200 while this process serves HTTP. It never
//!   depends on another process, so an outage elsewhere cannot get every
//!   pod restarted at once.
//! - `GET /health/ready`: 200 when every group of dependencies has at
//!   least one serving member, else 503; either way a JSON report of each
//!   member: status, check latency, when its status last changed, why it is
//!   unreachable. A group is the targets given one name (the replicas of a
//!   service: one of two signal replicas down leaves `signal` serving),
//!   plus `redis` when a Redis URL is given.
//!
//! gRPC targets are followed with `grpc.health.v1` Watch and checked every
//! second (`watcher`); Redis is pinged every second (`redis_probe`). Every
//! call is bounded by the target timeout. A configuration without targets,
//! or with one that does not parse, is refused at start.
#![forbid(unsafe_code)]

mod redis_probe;
mod state;
mod watcher;

use std::{collections::BTreeMap, convert::Infallible, future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

pub use redis_probe::RedisUrlError;
pub use watcher::{CHECK_INTERVAL, Target, TargetError};

use crate::state::{Probe, display_url, group_serving};

/// Default [`HealthConfig::timeout`].
pub const TARGET_TIMEOUT: Duration = Duration::from_secs(1);

/// Health aggregator configuration.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// gRPC services to follow (at least one).
    pub targets: Vec<Target>,
    /// A Redis to probe, as the group `redis`.
    pub redis: Option<String>,
    /// Bound of every check and connection attempt.
    pub timeout: Duration,
    /// The aggregator's mTLS identity (`https://` targets).
    pub mtls: Option<std::sync::Arc<switchboard_proto::mtls::Mtls>>,
}

/// Why the aggregator refused to start.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("no health targets: give at least one --target NAME=URL[#SERVICE]")]
    NoTargets,
    #[error("health target group \"redis\" is reserved for --redis")]
    ReservedName,
    #[error(transparent)]
    Redis(#[from] RedisUrlError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Dial(#[from] switchboard_proto::grpc::DialError),
}

/// One followed dependency.
struct Member {
    group: String,
    url: String,
    probe: watch::Receiver<Probe>,
}

/// The report of `/health/ready`: (ready, JSON).
fn report(members: &[Member]) -> (bool, serde_json::Value) {
    let mut groups: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
    for member in members {
        groups.entry(&member.group).or_default().push(member);
    }
    let mut ready = true;
    let mut json = serde_json::Map::new();
    for (name, members) in groups {
        let probes: Vec<Probe> = members.iter().map(|m| m.probe.borrow().clone()).collect();
        let serving = group_serving(&probes);
        ready &= serving;
        let detail: Vec<_> = members
            .iter()
            .zip(&probes)
            .map(|(m, p)| p.to_json(&m.url))
            .collect();
        json.insert(
            name.to_owned(),
            serde_json::json!({
                "status": if serving { "serving" } else { "not_serving" },
                "members": detail,
            }),
        );
    }
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "rule": "ready when every group has a serving member",
        "dependencies": json,
    });
    (ready, body)
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn metrics() -> Response<Full<Bytes>> {
    let text = switchboard_proto::metrics::metrics().render();
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(switchboard_proto::metrics::CONTENT_TYPE),
    );
    response
}

/// `members`: what `/health/ready` reports (`None` on a metrics-only
/// admin port, which has no readiness of its own).
async fn handle(
    members: Option<Arc<Vec<Member>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (req.method(), req.uri().path(), members) {
        (&Method::GET, "/health/live", _) => {
            json(StatusCode::OK, &serde_json::json!({ "status": "live" }))
        }
        // This process's metrics (every service of a `switchboard all`).
        (&Method::GET, "/metrics", _) => metrics(),
        (&Method::GET, "/health/ready", Some(members)) => {
            let (ready, body) = report(&members);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(status, &body)
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "code": "not_found", "message": "no such endpoint" }),
        ),
    };
    Ok(response)
}

/// Checks `config` without starting anything: what `run` would refuse.
pub fn validate(config: &HealthConfig) -> Result<(), HealthError> {
    if config.targets.is_empty() {
        return Err(HealthError::NoTargets);
    }
    if config.targets.iter().any(|t| t.name == "redis") {
        return Err(HealthError::ReservedName);
    }
    if let Some(url) = &config.redis {
        redis_probe::client(url)?;
    }
    // An https:// target without an identity is the caller's to refuse
    // (`--check-config` reads no key).
    for target in config
        .targets
        .iter()
        .filter(|t| config.mtls.is_some() || !t.url.starts_with("https://"))
    {
        let peer = target
            .name
            .parse()
            .unwrap_or_else(|_| switchboard_proto::mtls::PeerName::auth());
        switchboard_proto::grpc::Dial::new(&target.url, config.mtls.as_deref(), &peer)?;
    }
    Ok(())
}

/// Serves the probes on `listener` until `shutdown` resolves. Refuses a
/// configuration [`validate`] refuses.
pub async fn run(
    listener: TcpListener,
    config: HealthConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), HealthError> {
    validate(&config)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut members = Vec::new();
    // Every follower watches `stop_rx` and ends with it.
    for target in config.targets {
        let (tx, rx) = watch::channel(Probe::default());
        members.push(Member {
            group: target.name.clone(),
            url: display_url(&target.url),
            probe: rx,
        });
        tokio::spawn(watcher::follow(
            target,
            config.mtls.clone(),
            config.timeout,
            tx,
            stop_rx.clone(),
        ));
    }
    if let Some(url) = &config.redis {
        let (tx, rx) = watch::channel(Probe::default());
        members.push(Member {
            group: "redis".into(),
            url: display_url(url),
            probe: rx,
        });
        let client = redis_probe::client(url)?;
        tokio::spawn(redis_probe::follow(
            client,
            config.timeout,
            tx,
            stop_rx.clone(),
        ));
    }
    serve_http(listener, Some(Arc::new(members)), shutdown, stop_rx).await;
    let _ = stop_tx.send(true);
    Ok(())
}

/// An admin port: `/metrics` and `/health/live` of this process, for the
/// services that serve only gRPC (`--metrics-listen`).
pub async fn serve_metrics(listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
    let (stop_tx, stop_rx) = watch::channel(false);
    serve_http(listener, None, shutdown, stop_rx).await;
    let _ = stop_tx.send(true);
}

/// Serves HTTP/1.1 on `listener` until `shutdown`; connections end
/// gracefully when `stop` turns true.
async fn serve_http(
    listener: TcpListener,
    members: Option<Arc<Vec<Member>>>,
    shutdown: impl Future<Output = ()> + Send,
    stop_rx: watch::Receiver<bool>,
) {
    tokio::pin!(shutdown);
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let members = members.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(members.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(socket), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
