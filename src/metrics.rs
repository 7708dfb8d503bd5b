//! Prometheus metrics of every service, one registry per process (a
//! `switchboard all` process reports all four services in one scrape). The
//! names, with what each means and what to alert on, are in
//! docs/operations.md "Metrics"; `deploy/grafana` and the PrometheusRule
//! use them, and CI checks that every name they use is in a real scrape.
//!
//! Cost on the message path: the counters a message touches are resolved
//! once, at start (arrays indexed by message kind), so counting a message
//! is one relaxed atomic add. Labelled families are for rarer events
//! (joins, closes, errors, gRPC calls).

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::ErrorCode;
pub use crate::message_kinds::{IN_KINDS, OUT_KINDS, in_kind, out_kind};

/// Label sets: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

fn labels(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    // 100 µs … ≈ 26 s.
    exponential_buckets(0.0001, 4.0, 10)
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    // Edge.
    pub connections: Gauge,
    pub upgrades: Family<Labels, Counter>,
    messages_in: Vec<Counter>,
    messages_out: Vec<Counter>,
    pub closes: Family<Labels, Counter>,
    pub rate_limited: Counter,
    pub slow_consumer_closes: Counter,
    pub revocations_applied: Counter,
    pub relay_latency: Histogram,
    pub tls_reloads: Family<Labels, Counter>,
    // Signal.
    pub sessions: Gauge,
    pub joins: Family<Labels, Counter>,
    pub resumes: Family<Labels, Counter>,
    pub relayed: Counter,
    pub errors: Family<Labels, Counter>,
    pub room_events: Counter,
    pub webhook_deliveries: Family<Labels, Counter>,
    pub webhook_missed: Counter,
    pub join_hook_calls: Family<Labels, Counter>,
    pub room_rate_limited: Counter,
    // Auth.
    pub token_verifications: Family<Labels, Counter>,
    pub tokens_issued: Counter,
    // Every gRPC server and client.
    pub grpc_server_requests: Family<Labels, Counter>,
    pub grpc_server_seconds: Family<Labels, Histogram>,
    pub grpc_server_shed: Counter,
    pub grpc_client_requests: Family<Labels, Counter>,
    pub grpc_client_seconds: Family<Labels, Histogram>,
    // Redis.
    pub redis_seconds: Histogram,
    pub redis_errors: Counter,
    pub redis_circuit_open: Gauge,
    pub breaker_open: Family<Labels, Gauge>,
    /// Log lines dropped by the log's rate limit.
    pub logs_suppressed: Counter,
    /// Scrapes served (so a scrape shows the endpoint works).
    scrapes: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let connections = Gauge::default();
        registry.register(
            "edge_connections",
            "Open WebSocket connections on this edge",
            connections.clone(),
        );
        let upgrades = Family::<Labels, Counter>::default();
        registry.register(
            "edge_upgrades",
            "WebSocket upgrade requests by outcome (accepted, origin, rate_limited, over_capacity, draining, unauthenticated)",
            upgrades.clone(),
        );
        let messages = Family::<Labels, Counter>::default();
        registry.register(
            "edge_messages",
            "Messages through the edge by direction (in: from clients, out: to clients) and kind",
            messages.clone(),
        );
        let messages_in = IN_KINDS
            .iter()
            .map(|kind| {
                messages
                    .get_or_create(&vec![("direction", "in".into()), ("kind", (*kind).into())])
                    .clone()
            })
            .collect();
        let messages_out = OUT_KINDS
            .iter()
            .map(|kind| {
                messages
                    .get_or_create(&vec![("direction", "out".into()), ("kind", (*kind).into())])
                    .clone()
            })
            .collect();
        let closes = Family::<Labels, Counter>::default();
        registry.register(
            "edge_closes",
            "WebSocket closes sent to clients by close code",
            closes.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "edge_rate_limited_messages",
            "Client messages refused over the per-connection rate",
            rate_limited.clone(),
        );
        let slow_consumer_closes = Counter::default();
        registry.register(
            "edge_slow_consumer_closes",
            "Connections closed because the client did not read (queue full or write timeout)",
            slow_consumer_closes.clone(),
        );
        let revocations_applied = Counter::default();
        registry.register(
            "edge_revocations_applied",
            "Revocations the edge applied to its connections",
            revocations_applied.clone(),
        );
        let relay_latency = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register(
            "edge_relay_latency_seconds",
            "Time from the edge reading a signal to an edge queuing it for its receiver (one signal in 16 per connection, and traced ones)",
            relay_latency.clone(),
        );
        let tls_reloads = Family::<Labels, Counter>::default();
        registry.register(
            "tls_reloads",
            "Certificate files found changed, by outcome (loaded, failed: the previous certificate is kept)",
            tls_reloads.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "signal_sessions",
            "Sessions whose connection is attached to this signal node",
            sessions.clone(),
        );
        let joins = Family::<Labels, Counter>::default();
        registry.register(
            "signal_joins",
            "Joins by outcome (joined, or the error code)",
            joins.clone(),
        );
        let resumes = Family::<Labels, Counter>::default();
        registry.register(
            "signal_resumes",
            "Resumes by outcome (resumed, incomplete, or the error code)",
            resumes.clone(),
        );
        let relayed = Counter::default();
        registry.register(
            "signal_relayed_signals",
            "SDP and ICE signals relayed to their target",
            relayed.clone(),
        );
        let errors = Family::<Labels, Counter>::default();
        registry.register(
            "errors",
            "Errors answered to clients by code (by the edge or by signal)",
            errors.clone(),
        );
        let room_events = Counter::default();
        registry.register(
            "signal_room_events",
            "Room events recorded (WatchRoomEvents, webhooks)",
            room_events.clone(),
        );
        let webhook_deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "signal_webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, failed)",
            webhook_deliveries.clone(),
        );
        let webhook_missed = Counter::default();
        registry.register(
            "signal_webhook_missed",
            "Times a webhook endpoint fell behind the event log's retention (events lost, the receiver told)",
            webhook_missed.clone(),
        );
        let join_hook_calls = Family::<Labels, Counter>::default();
        registry.register(
            "signal_join_hook_calls",
            "Join hook calls by outcome (allowed, refused, failed, breaker_open)",
            join_hook_calls.clone(),
        );
        let room_rate_limited = Counter::default();
        registry.register(
            "signal_room_rate_limited_messages",
            "Messages refused because their room was over its message rate",
            room_rate_limited.clone(),
        );
        let token_verifications = Family::<Labels, Counter>::default();
        registry.register(
            "auth_token_verifications",
            "Token verifications by outcome (valid, or the error code)",
            token_verifications.clone(),
        );
        let tokens_issued = Counter::default();
        registry.register(
            "auth_tokens_issued",
            "Access tokens issued (IssueToken, refresh)",
            tokens_issued.clone(),
        );
        let grpc_server_requests = Family::<Labels, Counter>::default();
        registry.register(
            "grpc_server_requests",
            "gRPC requests served by method and status code",
            grpc_server_requests.clone(),
        );
        let grpc_server_seconds =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(seconds_buckets()));
        registry.register(
            "grpc_server_duration_seconds",
            "gRPC request latency by method (to the response headers)",
            grpc_server_seconds.clone(),
        );
        let grpc_server_shed = Counter::default();
        registry.register(
            "grpc_server_shed",
            "gRPC calls refused at once (RESOURCE_EXHAUSTED) because the server's concurrency limit was reached",
            grpc_server_shed.clone(),
        );
        let grpc_client_requests = Family::<Labels, Counter>::default();
        registry.register(
            "grpc_client_requests",
            "gRPC calls made to another service by method and status code",
            grpc_client_requests.clone(),
        );
        let grpc_client_seconds =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(seconds_buckets()));
        registry.register(
            "grpc_client_duration_seconds",
            "gRPC call latency by method (to the response headers), as the caller saw it",
            grpc_client_seconds.clone(),
        );
        let redis_seconds = Histogram::new(seconds_buckets());
        registry.register(
            "redis_duration_seconds",
            "Redis command and pipeline latency",
            redis_seconds.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Redis commands that failed (errors, timeouts, refused by the open circuit)",
            redis_errors.clone(),
        );
        let redis_circuit_open = Gauge::default();
        registry.register(
            "redis_circuit_open",
            "1 while the Redis circuit is open (Redis considered down)",
            redis_circuit_open.clone(),
        );
        let breaker_open = Family::<Labels, Gauge>::default();
        registry.register(
            "breaker_open",
            "1 while a circuit breaker is open, by what it guards",
            breaker_open.clone(),
        );
        let logs_suppressed = Counter::default();
        registry.register(
            "logs_suppressed",
            "Log lines dropped because their call site logged past its rate",
            logs_suppressed.clone(),
        );
        // The outcomes dashboards and alerts divide by exist from the start
        // (at 0), so a quiet process still exposes every family.
        for (family, name, values) in [
            (&upgrades, "outcome", &["accepted"][..]),
            (&tls_reloads, "outcome", &["loaded", "failed"][..]),
            (
                &joins,
                "outcome",
                &["joined", "room_full", "unavailable"][..],
            ),
            (&resumes, "outcome", &["resumed", "not_found"][..]),
            (&errors, "code", &["internal", "unavailable"][..]),
            (&closes, "code", &["1000", "1012"][..]),
            (&webhook_deliveries, "outcome", &["delivered", "failed"][..]),
            (
                &join_hook_calls,
                "outcome",
                &["allowed", "failed", "breaker_open"][..],
            ),
            (&token_verifications, "outcome", &["valid"][..]),
        ] {
            for value in values {
                let _ = family.get_or_create(&labels(name, *value));
            }
        }
        let _ = grpc_server_requests.get_or_create(&vec![
            ("method", "unknown".to_owned()),
            ("code", "12".to_owned()),
        ]);
        let _ = grpc_server_seconds.get_or_create(&vec![("method", "unknown".to_owned())]);
        let _ = grpc_client_requests.get_or_create(&vec![
            ("method", "/switchboard.v1.Auth/VerifyToken".to_owned()),
            ("code", "0".to_owned()),
        ]);
        let _ = grpc_client_seconds.get_or_create(&vec![(
            "method",
            "/switchboard.v1.Auth/VerifyToken".to_owned(),
        )]);
        let _ = breaker_open.get_or_create(&labels("guard", "join_hook"));
        let _ = breaker_open.get_or_create(&labels("guard", "auth"));
        Self {
            registry,
            connections,
            upgrades,
            messages_in,
            messages_out,
            closes,
            rate_limited,
            slow_consumer_closes,
            revocations_applied,
            relay_latency,
            tls_reloads,
            sessions,
            joins,
            resumes,
            relayed,
            errors,
            room_events,
            webhook_deliveries,
            webhook_missed,
            join_hook_calls,
            room_rate_limited,
            token_verifications,
            tokens_issued,
            grpc_server_requests,
            grpc_server_seconds,
            grpc_server_shed,
            grpc_client_requests,
            grpc_client_seconds,
            redis_seconds,
            redis_errors,
            redis_circuit_open,
            breaker_open,
            logs_suppressed,
            scrapes: AtomicU64::new(0),
        }
    }

    /// A client message arrived (kind from [`in_kind`]).
    pub fn message_in(&self, kind: usize) {
        if let Some(counter) = self.messages_in.get(kind) {
            counter.inc();
        }
    }

    /// A server message was written (kind from [`out_kind`]).
    pub fn message_out(&self, kind: usize) {
        if let Some(counter) = self.messages_out.get(kind) {
            counter.inc();
        }
    }

    /// Counts one in a family under `name=value`.
    pub fn count(family: &Family<Labels, Counter>, name: &'static str, value: &str) {
        family.get_or_create(&labels(name, value)).inc();
    }

    /// An error answered to a client.
    pub fn error(&self, code: ErrorCode) {
        Self::count(&self.errors, "code", code.as_str());
    }

    /// A WebSocket close sent, by its numeric code.
    pub fn close(&self, code: u16) {
        Self::count(&self.closes, "code", &code.to_string());
    }

    /// The text exposition of every metric (OpenMetrics text, which
    /// Prometheus scrapes).
    pub fn render(&self) -> String {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counts one open WebSocket while it lives (zero-sized: the connection's
/// future does not grow).
#[derive(Debug)]
pub struct OpenConnection(());

impl OpenConnection {
    pub fn new() -> Self {
        metrics().connections.inc();
        Self(())
    }
}

impl Default for OpenConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics().connections.dec();
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn every_metric_renders_with_its_prefix_and_counts() {
        let m = metrics();
        m.message_in(in_kind(Some(&pb::client_message::Message::Ping(
            pb::Ping { nonce: 1 },
        ))));
        m.error(ErrorCode::RoomFull);
        m.close(4410);
        let text = m.render();
        assert!(
            text.contains(r#"switchboard_edge_messages_total{direction="in",kind="ping"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"switchboard_errors_total{code="room_full"} 1"#));
        assert!(text.contains(r#"switchboard_edge_closes_total{code="4410"} 1"#));
        assert!(text.contains("# TYPE switchboard_redis_duration_seconds histogram"));
        assert!(text.ends_with("# EOF\n"));
    }
}
