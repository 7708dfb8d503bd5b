//! Distributed traces: which spans exist, when they are sampled, and how
//! their context crosses a process (W3C `traceparent`).
//!
//! Tracing is off unless the binary configures an OTLP exporter
//! (`--otlp-endpoint`, which calls [`configure`]); off, every function here
//! is one relaxed load and nothing is allocated. Only spans of [`TARGET`]
//! reach the exporter: the log's own spans (a connection's) never do.
//!
//! Sampling is decided once, where a trace starts: a join or a relayed
//! signal at the edge starts one with probability [`sample`] (the ratio of
//! `--trace-sample-ratio`), or continues a browser's `traceparent` when the
//! browser sampled it. Every hop after that follows the context it was
//! handed (signal, auth, the receiving edge): an unsampled message costs
//! no span anywhere.
//!
//! The spans: `edge.join` → auth's `switchboard.v1.Auth/VerifyToken`
//! (gRPC metadata, `grpc_metrics`) and `signal.join`
//! (`OpenSession.traceparent`); `edge.signal` →
//! `signal.relay` → `edge.deliver` (`PeerSignal.probe`, set by the edge
//! and removed before the receiving browser sees the message).

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span that is exported.
pub const TARGET: &str = "switchboard_otel";

/// The W3C header (and gRPC metadata key).
pub const TRACEPARENT: &str = "traceparent";

/// The longest `traceparent` accepted (version 00 is 55 characters; later
/// versions may append fields).
pub const MAX_TRACEPARENT: usize = 256;

static ENABLED: AtomicBool = AtomicBool::new(false);
static RATIO: AtomicU64 = AtomicU64::new(0);

/// Turns tracing on with this share of new traces sampled (0.0–1.0). Called
/// once the exporter is installed.
pub fn configure(ratio: f64) {
    RATIO.store(ratio.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether traces are exported at all.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether a new trace starting here is sampled.
pub fn sample() -> bool {
    if !enabled() {
        return false;
    }
    let ratio = f64::from_bits(RATIO.load(Ordering::Relaxed));
    ratio >= 1.0 || rand::random::<f64>() < ratio
}

/// A new exported span (`otel.name` = `name`), child of the current span.
fn span(name: &str, kind: &'static str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "span",
        otel.name = name,
        otel.kind = kind,
        // Filled by callers that want it in their log lines.
        trace_id = tracing::field::Empty,
    )
}

/// Starts a trace here if it is sampled ([`sample`]).
pub fn start(name: &str, kind: &'static str) -> Option<Span> {
    sample().then(|| {
        let span = span(name, kind);
        // A root, whatever span the caller is in.
        let _ = span.set_parent(opentelemetry::Context::new());
        span
    })
}

/// Continues the trace of a `traceparent` handed over by the previous hop,
/// if tracing is on and that hop sampled it; `None` otherwise (also for a
/// malformed value, which is ignored).
pub fn continue_from(name: &str, kind: &'static str, traceparent: &str) -> Option<Span> {
    if !enabled() || traceparent.is_empty() || traceparent.len() > MAX_TRACEPARENT {
        return None;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let remote = parent.span().span_context().clone();
    if !remote.is_valid() || !remote.is_sampled() {
        return None;
    }
    let span = span(name, kind);
    span.set_parent(parent).ok()?;
    Some(span)
}

/// Continues a browser's trace if it sent a sampled one, or starts one if
/// this join is sampled.
pub fn continue_or_start(name: &str, kind: &'static str, traceparent: &str) -> Option<Span> {
    continue_from(name, kind, traceparent).or_else(|| start(name, kind))
}

/// The `traceparent` that makes the next hop's span a child of `span`
/// (empty if `span` is not exported).
pub fn traceparent(span: &Span) -> String {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT).unwrap_or_default()
}

/// The trace id of `span` as 32 hex digits, recorded in its `trace_id`
/// field so log lines inside it carry it.
pub fn record_trace_id(span: &Span) -> Option<TraceId> {
    let id = span.context().span().span_context().trace_id();
    if id == TraceId::INVALID {
        return None;
    }
    span.record("trace_id", tracing::field::display(id));
    Some(id)
}

/// The `traceparent` of the current span (for an outgoing gRPC call), if
/// tracing is on and the current span is exported.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let value = traceparent(&Span::current());
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_malformed_parents_are_ignored() {
        assert!(!sample());
        assert!(continue_from("x", "server", "00-abc").is_none());
        configure(0.0);
        assert!(!sample());
        assert!(continue_from("x", "server", "garbage").is_none());
        assert!(continue_from("x", "server", &"0".repeat(MAX_TRACEPARENT + 1)).is_none());
        // Valid but not sampled by the browser.
        assert!(
            continue_from(
                "x",
                "server",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
            )
            .is_none()
        );
        configure(1.0);
        assert!(sample());
    }
}
