//! The guard in front of every gRPC server's handlers ([`CallGuardLayer`]),
//! outermost first:
//! 1. metrics: each request counted by method and status code
//!    (`switchboard_grpc_server_requests_total`) and timed to its response
//!    head (`switchboard_grpc_server_duration_seconds`); a shed one is
//!    counted as RESOURCE_EXHAUSTED (8) and in
//!    `switchboard_grpc_server_shed_total`. The code is the one in the
//!    response head: every error a handler returns (tonic sends those as
//!    trailers-only responses); an error a stream ends with later is not
//!    seen here. Unknown methods are counted as `unknown`, so a caller
//!    cannot grow the label set.
//! 2. who is calling (crate::peer_check): a peer the server does not let
//!    in, or a non-health call on the health port, is answered
//!    PERMISSION_DENIED;
//! 3. load shedding: a call that finds no free slot is refused at once
//!    (tonic answers RESOURCE_EXHAUSTED, retryable) instead of queuing;
//! 4. a concurrency limit shared by every connection of the server: calls
//!    in their handler at once (a stream holds its slot until its response
//!    head, not for its whole life).
//!
//! A call that carries a sampled W3C `traceparent` runs in a span of that
//! trace (named for its method), when the process exports traces.
//!
//! [`ClientMetrics`] is the caller's side: every call a service makes to
//! another, counted and timed by method and code, carrying the current
//! span's `traceparent`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tower::{
    BoxError,
    limit::{ConcurrencyLimit, GlobalConcurrencyLimitLayer},
    load_shed::{LoadShed, error::Overloaded},
};

use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};
use tracing::Instrument;

use crate::{
    metrics::{Labels, metrics},
    peer_check::PeerCheck,
    trace,
};

/// Metrics, load shedding and a server-wide concurrency limit (see the
/// module's doc). One instance per server: its services share the limit.
#[derive(Debug, Clone)]
pub struct CallGuardLayer {
    limit: GlobalConcurrencyLimitLayer,
}

impl CallGuardLayer {
    /// At most `max_calls` calls in their handlers at once.
    pub fn new(max_calls: usize) -> Self {
        Self {
            limit: GlobalConcurrencyLimitLayer::new(max_calls),
        }
    }
}

impl<S> tower::Layer<S> for CallGuardLayer {
    type Service = GrpcMetrics<PeerCheck<LoadShed<ConcurrencyLimit<S>>>>;

    fn layer(&self, inner: S) -> Self::Service {
        // Counted and timed (refusals too), then who is calling
        // (crate::peer_check), then shed past the server-wide limit.
        GrpcMetrics {
            inner: PeerCheck {
                inner: LoadShed::new(self.limit.layer(inner)),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// Counts a call by method and code, and times it by method.
fn record(
    requests: &Family<Labels, Counter>,
    seconds: &Family<Labels, Histogram>,
    method: String,
    code: String,
    start: Instant,
) {
    let by_method: Labels = vec![("method", method)];
    seconds
        .get_or_create(&by_method)
        .observe(start.elapsed().as_secs_f64());
    let mut by_code = by_method;
    by_code.push(("code", code));
    requests.get_or_create(&by_code).inc();
}

/// `grpc-status` of a response head; none means OK (the status follows in
/// trailers).
fn code<B>(response: &http::Response<B>) -> &str {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let start = Instant::now();
        let span = request
            .headers()
            .get(trace::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|parent| {
                trace::continue_from(method.trim_start_matches('/'), "server", parent)
            });
        let response = self.inner.call(request);
        let response = async move {
            match span {
                Some(span) => response.instrument(span).await,
                None => response.await,
            }
        };
        Box::pin(async move {
            let response = response.await.map_err(Into::into);
            let m = metrics();
            let code = match &response {
                Ok(response) => code(response).to_owned(),
                Err(err) if err.is::<Overloaded>() => {
                    m.grpc_server_shed.inc();
                    "8".to_owned()
                }
                // The transport failed: no status was sent.
                Err(_) => "transport".to_owned(),
            };
            // 12: UNIMPLEMENTED, e.g. a path nobody serves.
            let method = if code == "12" {
                "unknown".to_owned()
            } else {
                method
            };
            record(
                &m.grpc_server_requests,
                &m.grpc_server_seconds,
                method,
                code,
                start,
            );
            response
        })
    }
}

/// The caller's side of [`CallGuardLayer`]'s metrics: each call counted
/// (`switchboard_grpc_client_requests_total`) and timed to its response
/// head (`switchboard_grpc_client_duration_seconds`) by method and code,
/// with the current span's `traceparent` when it is traced.
#[derive(Debug, Clone)]
pub struct ClientMetrics<S> {
    inner: S,
}

impl<S> ClientMetrics<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for ClientMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(parent) = trace::current_traceparent()
            && let Ok(value) = http::HeaderValue::from_str(&parent)
        {
            request.headers_mut().insert(trace::TRACEPARENT, value);
        }
        let method = request.uri().path().to_owned();
        let start = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await.map_err(Into::into);
            let code = match &response {
                Ok(response) => code(response).to_owned(),
                Err(_) => "transport".to_owned(),
            };
            let m = metrics();
            record(
                &m.grpc_client_requests,
                &m.grpc_client_seconds,
                method,
                code,
                start,
            );
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, sync::Arc};

    use tokio::sync::Semaphore;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    /// A handler that holds each call until the test releases one.
    fn held(
        gate: Arc<Semaphore>,
    ) -> impl Service<
        http::Request<()>,
        Response = http::Response<()>,
        Error = Infallible,
        Future = impl Future<Output = Result<http::Response<()>, Infallible>> + Send,
    > + Clone {
        tower::service_fn(move |_request: http::Request<()>| {
            let gate = gate.clone();
            async move {
                gate.acquire().await.map(|p| p.forget()).ok();
                Ok(http::Response::new(()))
            }
        })
    }

    fn call(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(path)
            .body(())
            .expect("request")
    }

    #[tokio::test(start_paused = true)]
    async fn calls_past_the_limit_are_shed_at_once_and_counted_and_others_pass_after() {
        let gate = Arc::new(Semaphore::new(0));
        let guard = CallGuardLayer::new(2);
        // Two services of one server (two connections) share the limit.
        let mut one = guard.layer(held(gate.clone()));
        let mut two = guard.layer(held(gate.clone()));
        let first = tokio::spawn(one.ready().await.expect("ready").call(call("/x.S/A")));
        let second = tokio::spawn(two.ready().await.expect("ready").call(call("/x.S/A")));
        tokio::task::yield_now().await;
        let shed_before = metrics().grpc_server_shed.get();
        // The third finds no slot: refused at once, not queued.
        let third = two.ready().await.expect("ready").call(call("/x.S/A")).await;
        let err = third.expect_err("shed");
        assert!(err.is::<Overloaded>(), "{err}");
        assert_eq!(metrics().grpc_server_shed.get(), shed_before + 1);
        // The held ones finish; then there is room again.
        gate.add_permits(2);
        first.await.expect("join").expect("first");
        second.await.expect("join").expect("second");
        gate.add_permits(1);
        let fourth = one.ready().await.expect("ready").call(call("/x.S/A")).await;
        assert!(fourth.is_ok());
    }
}
