//! health: the aggregator Kubernetes probes. `/health/live` answers as long
//! as this process runs (it never depends on another service, so an outage
//! elsewhere cannot restart every pod at once); `/health/ready` is 200 only
//! while every followed service reports SERVING over `grpc.health.v1`.
#![forbid(unsafe_code)]

mod watcher;

use std::{convert::Infallible, future::Future, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

pub use watcher::Target;

/// Health aggregator configuration.
#[derive(Debug, Clone, Default)]
pub struct HealthConfig {
    pub targets: Vec<Target>,
}

struct Followed {
    name: String,
    status: watch::Receiver<bool>,
}

fn report(followed: &[Followed]) -> Response<Full<Bytes>> {
    let ready = followed.iter().all(|f| *f.status.borrow());
    let services: serde_json::Map<String, serde_json::Value> = followed
        .iter()
        .map(|f| {
            let state = if *f.status.borrow() {
                "serving"
            } else {
                "not_serving"
            };
            (f.name.clone(), state.into())
        })
        .collect();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "services": services,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    response
}

async fn handle(
    followed: Arc<Vec<Followed>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/health/live") => {
            let mut r = Response::new(Full::new(Bytes::from_static(br#"{"status":"live"}"#)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                "application/json".parse().expect("static"),
            );
            r
        }
        (&Method::GET, "/health/ready") => report(&followed),
        _ => {
            let mut r = Response::new(Full::new(Bytes::from_static(br#"{"code":"not_found"}"#)));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(response)
}

/// Serves the probes on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: HealthConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut followed = Vec::new();
    for target in config.targets {
        let (tx, rx) = watch::channel(false);
        followed.push(Followed {
            name: target.name.clone(),
            status: rx,
        });
        tokio::spawn(watcher::follow(target, tx, stop_rx.clone()));
    }
    let followed = Arc::new(followed);
    tokio::pin!(shutdown);
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let followed = followed.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(followed.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
    let _ = stop_tx.send(true);
    Ok(())
}
