//! gRPC transport settings every Switchboard server shares, so that each
//! service's `run` only adds its own layers.

use std::time::Duration;

use tonic::transport::Server;

/// HTTP/2 resets a client may leave pending before the connection is
/// dropped (rapid-reset defence, CVE-2023-44487).
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 32;
/// Keepalive pings on idle gRPC connections, so a dead peer is noticed.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent requests per connection; beyond it calls queue (and unary
/// calls time out), so one caller cannot take every worker.
pub const CONCURRENCY_PER_CONNECTION: usize = 256;

/// A server builder with the shared transport defaults.
pub fn server_builder() -> Server {
    Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
}

/// A client endpoint between services: connected lazily by its users,
/// `TCP_NODELAY`, a bounded connect, and HTTP/2 keepalive so a peer that
/// stops answering (frozen, or a lost network) is noticed within seconds.
pub fn endpoint(url: &str) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true))
}
