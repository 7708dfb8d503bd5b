//! Relay latency and relay traces: a sampled signal carries a
//! `RelayProbe` from the edge that read it, through signal, to the edge
//! that writes it out.
//!
//! - Timing: every [`TIMED_EVERY`]th signal of a connection, and every
//!   traced one, is stamped with the wall-clock time it was read. The edge
//!   that hands it to the receiver's connection observes now − stamp in
//!   `switchboard_edge_relay_latency_seconds` (edge in → edge out: parsing,
//!   the link, signal's checks and store, the router, the link back). Two
//!   edges compare their clocks: across hosts the figure includes their
//!   clock offset (NTP keeps it to about a millisecond); a negative
//!   difference counts as zero. A message replayed after a resume counts
//!   its wait too.
//! - Tracing: a sampled signal starts the trace `edge.signal` →
//!   `signal.relay` → `edge.deliver` ([`switchboard_proto::trace`]).
//!
//! The probe never reaches the receiving browser, and whatever probe a
//! client sends is discarded.

use std::time::{SystemTime, UNIX_EPOCH};

use switchboard_proto::{metrics::metrics, pb, trace};
use tracing::Span;

/// One signal in this many per connection is timed.
pub const TIMED_EVERY: u32 = 16;

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Prepares a signal read from a client: drops the client's probe, and
/// stamps it if it is the connection's `count`th and timed, or traced. The
/// span (if traced) covers the edge's part until it is dropped.
pub fn stamp(signal: &mut pb::PeerSignal, count: u32) -> Option<Span> {
    signal.probe = None;
    let span = trace::start("edge.signal", "producer");
    if span.is_none() && !count.is_multiple_of(TIMED_EVERY) {
        return None;
    }
    signal.probe = Some(Box::new(pb::RelayProbe {
        traceparent: span.as_ref().map(trace::traceparent).unwrap_or_default(),
        edge_in_unix_micros: unix_micros(),
    }));
    span
}

/// A signal about to be queued for its receiver: takes its probe off, and
/// observes its latency and ends its trace.
pub fn arrived(message: &mut pb::ServerMessage) {
    let Some(pb::server_message::Message::Signal(signal)) = &mut message.message else {
        return;
    };
    let Some(probe) = signal.probe.take() else {
        return;
    };
    if probe.edge_in_unix_micros > 0 {
        let micros = unix_micros().saturating_sub(probe.edge_in_unix_micros);
        metrics().relay_latency.observe(micros as f64 / 1e6);
    }
    // Created and ended here: the span marks the hand-over.
    drop(trace::continue_from(
        "edge.deliver",
        "consumer",
        &probe.traceparent,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Observations of the latency histogram so far, from a scrape.
    fn observed() -> u64 {
        metrics()
            .render()
            .lines()
            .find_map(|l| l.strip_prefix("switchboard_edge_relay_latency_seconds_count "))
            .and_then(|v| v.trim().parse().ok())
            .expect("count in the scrape")
    }

    #[test]
    fn a_client_probe_is_dropped_and_every_nth_is_timed() {
        let mut signal = pb::PeerSignal {
            probe: Some(Box::new(pb::RelayProbe {
                traceparent: "forged".into(),
                edge_in_unix_micros: 1,
            })),
            ..Default::default()
        };
        assert!(stamp(&mut signal, 1).is_none());
        assert!(signal.probe.is_none(), "a client's probe is discarded");
        stamp(&mut signal, TIMED_EVERY);
        let probe = signal.probe.clone().expect("timed");
        assert!(probe.traceparent.is_empty(), "tracing is off");
        assert!(probe.edge_in_unix_micros > 0);

        let before = observed();
        let mut message = pb::ServerMessage {
            seq: 1,
            message: Some(pb::server_message::Message::Signal(signal)),
        };
        arrived(&mut message);
        let Some(pb::server_message::Message::Signal(out)) = &message.message else {
            panic!("signal");
        };
        assert!(out.probe.is_none(), "the receiver never sees the probe");
        assert_eq!(observed(), before + 1);
    }
}
