//! Relaying SDP and ICE between the participants of a room: one signal
//! at a time (`Hub::handle`), or a run of them with one store round trip
//! for every lookup and one for every delivery (`Hub::handle_signals`).

use switchboard_proto::{
    ErrorCode, ParticipantId, RoomId, SignalError, grants,
    pb::{self, client_message::Message as In, server_message::Message as Out},
    trace, validate,
};

use super::{Hub, not_found};
use crate::{
    router::{Origin, Sink},
    store::SessionRef,
};

/// A traced signal's span on signal, open while it is relayed; its probe
/// now names this span as the parent of the receiving edge's.
fn trace_relay(signal: &mut pb::PeerSignal) -> Option<tracing::Span> {
    let probe = signal.probe.as_mut()?;
    let span = trace::continue_from("signal.relay", "internal", &probe.traceparent)?;
    probe.traceparent = trace::traceparent(&span);
    Some(span)
}

impl Hub {
    /// Handles a run of signals, consecutive on one link, as [`Hub::handle`]
    /// would one by one — the same checks, errors and order — with one
    /// store round trip for every lookup and one for every delivery (with
    /// Redis, awaiting two round trips per message bounded a link at a few
    /// thousand messages a second). Returns whether each session lives on.
    pub async fn handle_signals(
        &self,
        run: Vec<(SessionRef, Sink, pb::ClientMessage)>,
    ) -> Vec<bool> {
        let mut results: Vec<Result<(), SignalError>> = Vec::with_capacity(run.len());
        // (index in `run`, target, signal) of those that pass the checks;
        // the signals move along, their SDP is not copied.
        let mut relays = Vec::with_capacity(run.len());
        let mut messages = Vec::with_capacity(run.len());
        let (run, client_messages): (Vec<(SessionRef, Sink)>, Vec<pb::ClientMessage>) = run
            .into_iter()
            .map(|(sender, sink, message)| ((sender, sink), message))
            .unzip();
        for (i, ((sender, _), message)) in run.iter().zip(client_messages).enumerate() {
            let origin = (message.seq > 0).then_some(Origin {
                session: sender.id,
                seq: message.seq,
            });
            messages.push((message.id, origin));
            let Some(In::Signal(signal)) = message.message else {
                results.push(Err(SignalError::new(
                    ErrorCode::UnknownMessage,
                    "not a signal",
                )));
                continue;
            };
            let checked = match validate::peer_signal(&signal) {
                Ok(to) => match self.room_message(sender) {
                    Ok(()) => self.may_signal(sender, &signal).await.map(|()| to),
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            };
            match checked {
                Ok(to) if to == sender.participant => results.push(Err(not_found())),
                Ok(to) => {
                    results.push(Ok(()));
                    relays.push((i, to, signal));
                }
                Err(err) => results.push(Err(err)),
            }
        }
        // Traced signals: a span each until they are delivered.
        let _traced: Vec<tracing::Span> = relays
            .iter_mut()
            .filter_map(|(_, _, signal)| trace_relay(signal))
            .collect();
        let rooms: Vec<RoomId> = relays
            .iter()
            .map(|(i, _, _)| run[*i].0.room.get())
            .collect();
        let queries: Vec<(&RoomId, [&ParticipantId; 2])> = relays
            .iter()
            .zip(&rooms)
            .map(|((i, to, _), room)| (room, [&run[*i].0.participant, to]))
            .collect();
        let holders = self.store.lookup_many(&queries).await;
        drop(queries);
        let mut deliveries = Vec::with_capacity(relays.len());
        // Signals of senders no longer in the room their link knew (moved,
        // or ended): relayed one by one after the run, in order.
        let mut unsure = Vec::new();
        let mut delivered = Vec::with_capacity(relays.len());
        for (k, (i, _, mut signal)) in relays.into_iter().enumerate() {
            let sender = &run[i].0;
            let holders = match &holders {
                Ok(all) => &all[k],
                Err(err) => {
                    results[i] = Err(err.clone().into());
                    continue;
                }
            };
            if holders.first().copied().flatten() != Some(sender.id) {
                unsure.push((i, signal));
                continue;
            }
            let Some(target) = holders.get(1).copied().flatten() else {
                results[i] = Err(not_found());
                continue;
            };
            // The sender is who the token says, whatever the client wrote.
            signal.from = sender.participant.to_string();
            deliveries.push((target, Out::Signal(signal), messages[i].1));
            delivered.push(i);
        }
        for (i, outcome) in delivered
            .into_iter()
            .zip(self.router.deliver_many(deliveries).await)
        {
            results[i] = match outcome {
                Ok(Some(_)) => {
                    switchboard_proto::metrics::metrics().relayed.inc();
                    Ok(())
                }
                Ok(None) => Err(not_found()),
                Err(err) => Err(err.into()),
            };
        }
        for (i, signal) in unsure {
            results[i] = self.relay(&run[i].0, signal, messages[i].1).await;
        }
        let mut alive = Vec::with_capacity(run.len());
        for ((sender, sink), (result, (request_id, origin))) in
            run.iter().zip(results.into_iter().zip(messages))
        {
            alive.push(
                self.settle(sender.id, sink, request_id, origin, result)
                    .await,
            );
        }
        alive
    }

    pub(super) async fn relay(
        &self,
        sender: &SessionRef,
        mut signal: pb::PeerSignal,
        origin: Option<Origin>,
    ) -> Result<(), SignalError> {
        let to = validate::peer_signal(&signal)?;
        let _traced = trace_relay(&mut signal);
        self.may_signal(sender, &signal).await?;
        if to == sender.participant {
            return Err(not_found());
        }
        // One lookup answers both: is the sender still the room's holder of
        // its identity, and who holds the target? If not the holder, it
        // may have been moved: its record says where, once.
        let mut room = sender.room.get();
        let mut followed = false;
        let target = loop {
            let holders = self
                .store
                .lookup(&room, &[&sender.participant, &to])
                .await?;
            if holders.first().copied().flatten() == Some(sender.id) {
                break holders.get(1).copied().flatten().ok_or_else(not_found)?;
            }
            match self.store.session(sender.id).await? {
                Some(record) if record.room != room && !followed => {
                    sender.room.set(record.room.clone());
                    room = record.room;
                    followed = true;
                }
                _ => {
                    return Err(SignalError::new(
                        ErrorCode::NotJoined,
                        "the session has ended; join again",
                    ));
                }
            }
        };
        // The sender is who the token says, whatever the client wrote.
        signal.from = sender.participant.to_string();
        self.router
            .deliver(target, Out::Signal(signal), origin)
            .await?
            .ok_or_else(not_found)?;
        switchboard_proto::metrics::metrics().relayed.inc();
        Ok(())
    }

    /// Whether `sender` may send `signal`: an offer needs its session's
    /// live `publish` (one record read per offer; candidates and answers
    /// pass without one).
    async fn may_signal(
        &self,
        sender: &SessionRef,
        signal: &pb::PeerSignal,
    ) -> Result<(), SignalError> {
        if !grants::is_offer(signal) {
            return Ok(());
        }
        match self.store.session(sender.id).await? {
            Some(record) => grants::may_signal(record.publish, signal),
            // Ended: the holder lookup that follows says so.
            None => Ok(()),
        }
    }
}
