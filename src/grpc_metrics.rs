//! A tower layer on every gRPC server: counts each request by method and
//! status code (`switchboard_grpc_server_requests_total`) and times it to
//! its response head (`switchboard_grpc_server_duration_seconds`). The code
//! is the one in the response head: every error a handler returns (tonic
//! sends those as trailers-only responses); an error a stream ends with
//! later is not seen here. Unknown methods are counted as `unknown`, so a
//! caller cannot grow the label set.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use crate::metrics::{Labels, metrics};

#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
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
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let start = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(response) => code(response).to_owned(),
                // The transport failed: no status was sent.
                Err(_) => "transport".to_owned(),
            };
            // 12: UNIMPLEMENTED, e.g. a path nobody serves.
            let method = if code == "12" {
                "unknown".to_owned()
            } else {
                method
            };
            let m = metrics();
            let by_method: Labels = vec![("method", method)];
            m.grpc_server_seconds
                .get_or_create(&by_method)
                .observe(start.elapsed().as_secs_f64());
            let mut by_code = by_method;
            by_code.push(("code", code));
            m.grpc_server_requests.get_or_create(&by_code).inc();
            response
        })
    }
}
