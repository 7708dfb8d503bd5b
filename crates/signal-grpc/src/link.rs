//! One edge link: a long-lived Relay stream carrying batches of
//! per-connection envelopes from one edge. Envelopes of a link are handled
//! in order, so each sender's messages reach each receiver in order.

use std::collections::HashMap;

use futures_util::{Stream, StreamExt, stream};
use switchboard_proto::{
    ConnId, ErrorCode, LeaveReason, SignalError, local_relay::Batches, metrics::Metrics, pb, trace,
};
use tokio::sync::watch;
use tonic::Status;
use tracing::Instrument;

use crate::{
    hub::Hub,
    link_queue::LinkReceiver,
    router::{LinkSender, Sink},
    store::SessionRef,
};

/// Most envelopes per outbound batch.
pub const MAX_BATCH_ENVELOPES: usize = 128;
/// A batch is closed once it holds this many encoded bytes, so it stays
/// far below [`MAX_GRPC_MESSAGE_BYTES`] whatever it carries (one envelope
/// is at most a Joined of a full room, well under 1 MiB).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Largest gRPC message either side of a link accepts.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Turns a link's outbound queue into a stream of batches: everything
/// queued when the stream is polled goes into one batch, so batches grow
/// under load and single messages go out at once when idle (no timers).
pub fn batches(
    rx: LinkReceiver,
) -> impl Stream<Item = Result<pb::SignalBatch, Status>> + Send + 'static {
    stream::unfold(rx, |mut rx| async move {
        let (first, mut bytes) = rx.recv().await?;
        let mut envelopes = Vec::with_capacity(8);
        envelopes.push(first);
        while envelopes.len() < MAX_BATCH_ENVELOPES && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Some((envelope, size)) => {
                    envelopes.push(envelope);
                    bytes += size;
                }
                None => break,
            }
        }
        Some((
            Ok(pb::SignalBatch {
                envelopes,
                padding: Vec::new(),
            }),
            rx,
        ))
    })
}

/// Serves one link until the edge ends it, it fails, or `shutdown` fires.
pub async fn serve(
    hub: Hub,
    mut inbound: Batches<pb::EdgeBatch>,
    link: LinkSender,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sessions = LinkSessions::default();
    let end_reason = loop {
        let batch = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break "shutdown",
            batch = inbound.next() => batch,
        };
        let batch = match batch {
            Some(Ok(batch)) => batch,
            None => break "edge closed the link",
            Some(Err(status)) => {
                tracing::warn!(error = %status, "edge link failed");
                break "edge link failed";
            }
        };
        // The highest numbered client message handled per connection in
        // this batch: one Accepted each, after the batch (cumulative).
        let mut accepted: Vec<(ConnId, u64)> = Vec::new();
        let mut signals: Vec<(ConnId, pb::ClientMessage)> = Vec::new();
        for envelope in batch.envelopes {
            if let Some(pb::edge_envelope::Event::Message(m)) = &envelope.event
                && m.seq > 0
            {
                let conn = ConnId(envelope.conn);
                match accepted.iter_mut().find(|(c, _)| *c == conn) {
                    Some((_, seq)) => *seq = (*seq).max(m.seq),
                    None => accepted.push((conn, m.seq)),
                }
            }
            // With shared state, a run of signals is relayed together
            // (`Hub::handle_signals`: two store round trips for the run,
            // not two per message); anything else is handled alone, after
            // the run before it.
            let conn = ConnId(envelope.conn);
            match envelope.event {
                Some(pb::edge_envelope::Event::Message(message))
                    if hub.is_shared()
                        && matches!(
                            message.message,
                            Some(pb::client_message::Message::Signal(_))
                        )
                        && sessions.contains_key(&conn) =>
                {
                    signals.push((conn, message));
                }
                event => {
                    relay_signals(&hub, &link, &mut sessions, &mut signals).await;
                    let envelope = pb::EdgeEnvelope {
                        conn: envelope.conn,
                        event,
                    };
                    handle_envelope(&hub, &link, &mut sessions, envelope).await;
                }
            }
        }
        relay_signals(&hub, &link, &mut sessions, &mut signals).await;
        for (conn, seq) in accepted {
            let sink = Sink {
                link: link.clone(),
                conn,
            };
            sink.send(pb::signal_envelope::Event::Message(pb::ServerMessage {
                seq: 0,
                message: Some(pb::server_message::Message::Accepted(pb::Accepted { seq })),
            }));
        }
    };
    tracing::info!(
        sessions = sessions.len(),
        reason = end_reason,
        "edge link ended"
    );
    let shutting_down = *shutdown.borrow();
    for (conn, session) in sessions.drain() {
        let session = session.id;
        let sink = Sink {
            link: link.clone(),
            conn,
        };
        if shutting_down {
            // Tell the client to reconnect (elsewhere).
            sink.send_close(
                Some(ErrorCode::ShuttingDown),
                "signal server is shutting down",
            );
        }
        if shutting_down && !hub.is_shared() {
            // In-memory sessions end with this process.
            if let Err(err) = hub.leave(session, LeaveReason::Disconnected, None).await {
                tracing::warn!(session = %session, error = %err, "leave at shutdown failed");
            }
        } else {
            // Shared sessions, or an edge that went away: resumable elsewhere.
            hub.disconnect(session, &sink, LeaveReason::Disconnected)
                .await;
        }
    }
}

/// The sessions a link carries, counted in `switchboard_signal_sessions`.
#[derive(Debug, Default)]
struct LinkSessions(HashMap<ConnId, SessionRef>);

impl LinkSessions {
    fn insert(&mut self, conn: ConnId, session: SessionRef) {
        if self.0.insert(conn, session).is_none() {
            switchboard_proto::metrics::metrics().sessions.inc();
        }
    }

    fn remove(&mut self, conn: &ConnId) -> Option<SessionRef> {
        let removed = self.0.remove(conn);
        if removed.is_some() {
            switchboard_proto::metrics::metrics().sessions.dec();
        }
        removed
    }

    fn get(&self, conn: &ConnId) -> Option<&SessionRef> {
        self.0.get(conn)
    }

    fn contains_key(&self, conn: &ConnId) -> bool {
        self.0.contains_key(conn)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Every session left, leaving the link (its end).
    fn drain(&mut self) -> Vec<(ConnId, SessionRef)> {
        let left: Vec<_> = self.0.drain().collect();
        switchboard_proto::metrics::metrics()
            .sessions
            .dec_by(left.len() as i64);
        left
    }
}

/// Relays a run of signals (draining `signals`) through
/// [`Hub::handle_signals`]; sessions that ended leave the link.
async fn relay_signals(
    hub: &Hub,
    link: &LinkSender,
    sessions: &mut LinkSessions,
    signals: &mut Vec<(ConnId, pb::ClientMessage)>,
) {
    if signals.is_empty() {
        return;
    }
    let (conns, run): (Vec<ConnId>, Vec<_>) = signals
        .drain(..)
        .filter_map(|(conn, message)| {
            let session = sessions.get(&conn)?.clone();
            let sink = Sink {
                link: link.clone(),
                conn,
            };
            Some((conn, (session, sink, message)))
        })
        .unzip();
    for (conn, alive) in conns.into_iter().zip(hub.handle_signals(run).await) {
        if !alive {
            sessions.remove(&conn);
        }
    }
}

async fn handle_envelope(
    hub: &Hub,
    link: &LinkSender,
    sessions: &mut LinkSessions,
    envelope: pb::EdgeEnvelope,
) {
    let conn = ConnId(envelope.conn);
    let sink = Sink {
        link: link.clone(),
        conn,
    };
    match envelope.event {
        Some(pb::edge_envelope::Event::Open(open)) => {
            let request_id = open.request_id;
            if sessions.contains_key(&conn) {
                tracing::warn!(conn = %conn, "open for a connection that has a session");
                return;
            }
            let metrics = switchboard_proto::metrics::metrics();
            let opened = match trace::continue_from("signal.join", "server", &open.traceparent) {
                Some(span) => hub.open(sink.clone(), *open).instrument(span).await,
                None => hub.open(sink.clone(), *open).await,
            };
            match opened {
                Ok(session) => {
                    Metrics::count(&metrics.joins, "outcome", "joined");
                    sessions.insert(conn, session);
                }
                // No session exists: answer outside any log, then close.
                Err(err) => {
                    Metrics::count(&metrics.joins, "outcome", err.code.as_str());
                    sink.refuse(request_id, &err);
                }
            }
        }
        Some(pb::edge_envelope::Event::Message(message)) => match sessions.get(&conn) {
            Some(session) => {
                let leaving =
                    matches!(message.message, Some(pb::client_message::Message::Leave(_)));
                let alive = hub.handle(session, &sink, message).await;
                if leaving || !alive {
                    sessions.remove(&conn);
                }
            }
            None => sink.send_error(
                message.id,
                &SignalError::new(ErrorCode::NotJoined, "join first"),
            ),
        },
        Some(pb::edge_envelope::Event::Resume(resume)) => {
            let request_id = resume.request_id;
            if sessions.contains_key(&conn) {
                tracing::warn!(conn = %conn, "resume for a connection that has a session");
                return;
            }
            let metrics = switchboard_proto::metrics::metrics();
            match hub.resume(sink.clone(), *resume).await {
                Ok(session) => {
                    Metrics::count(&metrics.resumes, "outcome", "resumed");
                    sessions.insert(conn, session);
                }
                Err(err) => {
                    Metrics::count(&metrics.resumes, "outcome", err.code.as_str());
                    sink.refuse(request_id, &err);
                }
            }
        }
        Some(pb::edge_envelope::Event::Acked(acked)) => {
            if let Some(session) = sessions.get(&conn) {
                hub.acked(session.id, acked.seq).await;
            }
        }
        Some(pb::edge_envelope::Event::Refreshed(refresh)) => {
            if let Some(session) = sessions.get(&conn) {
                hub.refreshed(session, &sink, refresh);
            }
        }
        Some(pb::edge_envelope::Event::Closed(closed)) => {
            if let Some(session) = sessions.remove(&conn).map(|s| s.id) {
                // What an edge may say of a connection it lost; anything
                // else (or nothing) counts as a plain disconnect.
                let reason = match closed.reason() {
                    reason @ (LeaveReason::Timeout
                    | LeaveReason::Expired
                    | LeaveReason::Revoked) => reason,
                    _ => LeaveReason::Disconnected,
                };
                hub.disconnect(
                    session,
                    &Sink {
                        link: link.clone(),
                        conn,
                    },
                    reason,
                )
                .await;
            }
        }
        None => tracing::warn!(conn = %conn, "empty envelope from edge"),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use prost::Message as _;

    use super::*;
    use crate::link_queue::link_queue;

    #[tokio::test]
    async fn batches_are_split_by_bytes() {
        let (tx, rx) = link_queue(64 * 1024 * 1024);
        let big = pb::SignalEnvelope {
            conn: 1,
            event: Some(pb::signal_envelope::Event::Message(pb::ServerMessage {
                seq: 1,
                message: Some(pb::server_message::Message::Error(pb::Error {
                    message: "x".repeat(512 * 1024),
                    ..Default::default()
                })),
            })),
        };
        for _ in 0..40 {
            tx.send(big.clone()).expect("queued");
        }
        drop(tx);
        let batches: Vec<_> = batches(rx).collect().await;
        let mut total = 0;
        for batch in &batches {
            let batch = batch.as_ref().expect("batch");
            assert!(batch.encoded_len() <= MAX_BATCH_BYTES + big.encoded_len());
            total += batch.envelopes.len();
        }
        assert_eq!(total, 40);
        assert!(batches.len() >= 4, "20 MiB went out in several batches");
    }
}
