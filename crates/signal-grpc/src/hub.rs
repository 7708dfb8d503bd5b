//! Room operations: join, relay, presence, leave. The hub holds no state of
//! its own: rooms and sessions are in the [`SessionStore`], delivery goes
//! through the [`Router`]; so any replica can serve any request.

mod backend;
mod join;
mod moves;
mod relay;
mod resume;
mod rooms;

pub use rooms::{MAX_ROOM_METADATA_BYTES, MAX_ROOMS, NewRoom};

use std::{sync::Arc, time::Duration};

use switchboard_proto::{
    ErrorCode, LeaveReason, ParticipantId, RoomId, SessionId, SignalError,
    pb::{self, client_message::Message as In, server_message::Message as Out},
    validate,
};

use switchboard_proto::auth_client::AuthClient;

use crate::{
    events::{EventLog, MemoryEvents},
    join_hook::JoinHook,
    keyed_rate::{self, KeyedRate},
    router::{Expiry, Origin, Router, Sink, now_ms},
    store::{RecordPatch, SessionRef, SessionStore},
    turn::TurnConfig,
};

/// What every Joined reply carries besides the room state.
#[derive(Debug, Clone)]
pub struct JoinSettings {
    /// Static ICE servers (STUN, or TURN with fixed credentials).
    pub ice_servers: Vec<pb::IceServer>,
    /// TURN servers that get per-session ephemeral credentials.
    pub turn: Option<TurnConfig>,
    /// How long a session whose connection was lost waits for a resume
    /// before the room hears it left. Zero: no resume.
    pub resume_window: Duration,
    /// Most participants in one room; a join beyond it is refused
    /// (`room_full`). A room created with a lower maximum has its own.
    pub max_participants: usize,
    /// Most rooms that exist at once (occupied or created): CreateRoom
    /// beyond it is refused (`resource_exhausted`).
    pub max_rooms: usize,
    /// SendData per room, on this replica.
    pub data_per_room: keyed_rate::Rate,
    /// Joins per identity, on this replica.
    pub joins_per_identity: keyed_rate::Rate,
    /// Signals and presence updates per room, on this replica.
    pub messages_per_room: keyed_rate::Rate,
    /// Sessions one identity may hold at once, in as many rooms, across
    /// replicas (0 = no limit). A join past it is refused
    /// (`too_many_sessions`); a join into a room where the identity is
    /// already replaces that session, so it never counts twice.
    pub max_sessions_per_identity: usize,
}

/// Default [`JoinSettings::max_sessions_per_identity`]: more rooms at once
/// than a person uses (a few tabs, a phone), few enough that one leaked
/// credential cannot fill a replica with sessions.
pub const MAX_SESSIONS_PER_IDENTITY: usize = 16;

/// Default resume window.
pub const RESUME_WINDOW: Duration = Duration::from_secs(60);
/// Default most participants per room: a full mesh of this many is far
/// past what browsers sustain, and the Joined list stays well under the
/// gRPC message limit (256 × ≈ 1.4 KiB at the presence limits).
pub const MAX_PARTICIPANTS: usize = 256;

impl Default for JoinSettings {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            turn: None,
            resume_window: RESUME_WINDOW,
            max_participants: MAX_PARTICIPANTS,
            max_rooms: MAX_ROOMS,
            data_per_room: keyed_rate::DATA_RATE,
            joins_per_identity: keyed_rate::JOIN_RATE,
            messages_per_room: keyed_rate::ROOM_MESSAGE_RATE,
            max_sessions_per_identity: MAX_SESSIONS_PER_IDENTITY,
        }
    }
}

impl JoinSettings {
    /// ICE servers for `participant`, TURN credentials valid until
    /// `expires_at` (the session's token expiry).
    fn ice_servers(&self, participant: &ParticipantId, expires_at: u64) -> Vec<pb::IceServer> {
        let mut servers = self.ice_servers.clone();
        if let Some(turn) = &self.turn {
            servers.push(turn.ice_server(participant.as_str(), expires_at));
        }
        servers
    }
}

/// A cheap-to-clone handle on the room logic.
#[derive(Clone)]
pub struct Hub {
    store: Arc<dyn SessionStore>,
    router: Arc<dyn Router>,
    settings: Arc<JoinSettings>,
    /// Verifies the token of every join and resume: the identity and room
    /// come from auth, never from the edge.
    auth: AuthClient,
    /// State is shared with other replicas (Redis): sessions outlive this
    /// process and can be resumed elsewhere.
    shared: bool,
    /// Room events for backends (`WatchRoomEvents`).
    events: Arc<dyn EventLog>,
    /// SendData's per-room rate on this replica.
    data_rate: Arc<KeyedRate<RoomId>>,
    /// Joins per identity on this replica.
    join_rate: Arc<KeyedRate<ParticipantId>>,
    /// Signals and presence updates per room on this replica.
    message_rate: Arc<KeyedRate<RoomId>>,
    /// The application's join hook, if configured.
    join_hook: Option<JoinHook>,
}

/// The refusal of a message into a room over its rate.
fn room_over_rate(per_second: u32) -> SignalError {
    switchboard_proto::metrics::metrics()
        .room_rate_limited
        .inc();
    SignalError::new(
        ErrorCode::RateLimited,
        format!(
            "message dropped: this room is over its {per_second} messages a second; retry shortly"
        ),
    )
}

fn not_found() -> SignalError {
    // The same answer whether the participant does not exist or is in
    // another room: rooms cannot be probed through the relay.
    SignalError::new(ErrorCode::NotFound, "no such participant in this room")
}

impl Hub {
    pub fn new(
        store: Arc<dyn SessionStore>,
        router: Arc<dyn Router>,
        settings: JoinSettings,
        auth: AuthClient,
    ) -> Self {
        let data_rate = Arc::new(KeyedRate::with(settings.data_per_room));
        let join_rate = Arc::new(KeyedRate::with(settings.joins_per_identity));
        let message_rate = Arc::new(KeyedRate::with(settings.messages_per_room));
        Self {
            store,
            router,
            settings: Arc::new(settings),
            auth,
            shared: false,
            events: Arc::new(MemoryEvents::default()),
            data_rate,
            join_rate,
            message_rate,
            join_hook: None,
        }
    }

    /// Takes one message (a signal or a presence update) of the sender's
    /// room's rate on this replica.
    fn room_message(&self, sender: &SessionRef) -> Result<(), SignalError> {
        if self
            .message_rate
            .admit(&sender.room.get(), std::time::Instant::now())
        {
            return Ok(());
        }
        Err(room_over_rate(self.message_rate.per_second()))
    }

    /// Asks `hook` before every join.
    pub fn with_join_hook(mut self, hook: Option<JoinHook>) -> Self {
        self.join_hook = hook;
        self
    }

    /// Records room events in `events` (Redis, shared by the replicas).
    pub fn with_events(mut self, events: Arc<dyn EventLog>) -> Self {
        self.events = events;
        self
    }

    /// The room event log.
    pub fn events(&self) -> &Arc<dyn EventLog> {
        &self.events
    }

    /// Records a room event; a failure is logged (the action it reports
    /// has happened).
    pub(crate) async fn record(&self, room: &RoomId, event: pb::room_event::Event) {
        match self.events.append(room, event).await {
            Ok(()) => {
                switchboard_proto::metrics::metrics().room_events.inc();
            }
            Err(err) => tracing::warn!(room = %room, error = %err, "room event not recorded"),
        }
    }

    /// Marks the state as shared with other replicas.
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Ends detached sessions whose resume window passed and that nobody
    /// resumed (with shared state, whichever replica detached them; each
    /// due session is claimed by exactly one replica).
    pub async fn sweep_expired(&self) {
        let deadline = now_ms() + self.settings.resume_window.as_millis() as u64;
        if let Err(err) = self.router.reap_dead_nodes(deadline).await {
            tracing::debug!(error = %err, "dead node reaping failed");
        }
        let due = match self.router.due_expiries(now_ms()).await {
            Ok(due) => due,
            Err(err) => {
                tracing::debug!(error = %err, "expiry sweep failed");
                return;
            }
        };
        for Expiry {
            session,
            generation,
            reason,
        } in due
        {
            if self
                .router
                .detached_since(session, generation)
                .await
                .unwrap_or(false)
            {
                tracing::info!(session = %session, "ending a session nobody resumed");
                if let Err(err) = self.leave(session, reason.leave_reason(), None).await {
                    tracing::warn!(session = %session, error = %err, "ending an expired session failed");
                }
            }
        }
    }

    /// Handles one client message of a joined session. Failures are
    /// answered to the session as typed errors carrying the request id.
    /// `sink` is the connection the message came from: an error that cannot
    /// go through the session's log (the store is down) is sent there
    /// directly, outside the log (seq 0), so the client always hears it.
    ///
    /// Returns false when the session no longer exists (e.g. its state was
    /// lost with Redis): the connection has then been refused and closed,
    /// and its client joins again.
    pub async fn handle(
        &self,
        session: &SessionRef,
        sink: &Sink,
        message: pb::ClientMessage,
    ) -> bool {
        let (this, session) = (session, session.id);
        let request_id = message.id;
        // Numbered messages are delivered exactly once: what they cause is
        // dropped if it was already delivered for this (session, seq).
        let origin = (message.seq > 0).then_some(Origin {
            session,
            seq: message.seq,
        });
        let over_rate = match message.message {
            Some(In::Signal(_) | In::UpdatePresence(_)) => self.room_message(this).err(),
            _ => None,
        };
        let result = if let Some(err) = over_rate {
            Err(err)
        } else {
            match message.message {
                Some(In::Signal(signal)) => self.relay(this, signal, origin).await,
                Some(In::UpdatePresence(update)) => {
                    self.update_presence(session, request_id, update, origin)
                        .await
                }
                Some(In::Leave(_)) => {
                    let left = self.leave(session, LeaveReason::Left, None).await;
                    // The router closes the connection it knows; if the
                    // session's state was already gone, close it here.
                    sink.send_close(None, "left");
                    left
                }
                // Keepalive is the edge's; a direct gRPC caller gets a Pong.
                Some(In::Ping(ping)) => {
                    sink.send(pb::signal_envelope::Event::Message(pb::ServerMessage {
                        seq: 0,
                        message: Some(Out::Pong(pb::Pong { nonce: ping.nonce })),
                    }));
                    Ok(())
                }
                Some(In::Join(_) | In::Resume(_)) => Err(SignalError::new(
                    ErrorCode::AlreadyJoined,
                    "this connection has a session",
                )),
                None => Err(SignalError::new(
                    ErrorCode::UnknownMessage,
                    "unknown message type",
                )),
            }
        };
        self.settle(session, sink, request_id, origin, result).await
    }

    /// What becomes of a request's outcome: an error is logged to the
    /// session (or sent, if it cannot be logged); a session that no longer
    /// exists is refused and ends on this link (`false`).
    async fn settle(
        &self,
        session: SessionId,
        sink: &Sink,
        request_id: u32,
        origin: Option<Origin>,
        result: Result<(), SignalError>,
    ) -> bool {
        if let Err(err) = &result {
            switchboard_proto::metrics::metrics().error(err.code);
        }
        match result {
            Ok(()) => true,
            Err(err) if err.code == ErrorCode::NotJoined => {
                tracing::info!(session = %session, "request for a session that no longer exists");
                sink.refuse(request_id, &err);
                false
            }
            Err(err) => {
                tracing::debug!(session = %session, code = %err.code, "request failed");
                let logged = self
                    .router
                    .deliver(session, Out::Error(err.to_proto(request_id)), origin)
                    .await;
                if !matches!(logged, Ok(Some(_))) {
                    sink.send_error(request_id, &err);
                }
                true
            }
        }
    }

    async fn update_presence(
        &self,
        session: SessionId,
        request_id: u32,
        update: pb::UpdatePresence,
        origin: Option<Origin>,
    ) -> Result<(), SignalError> {
        validate::attributes(&update.attributes)?;
        let record = self
            .store
            .update(
                session,
                &RecordPatch {
                    attributes: Some(update.attributes),
                    ..RecordPatch::default()
                },
            )
            .await?
            .ok_or_else(|| {
                SignalError::new(ErrorCode::NotJoined, "the session has ended; join again")
            })?;
        for member in self.store.members(&record.room).await? {
            if member.id == session {
                continue;
            }
            let participant = record.to_participant(Some(&member.participant));
            self.router
                .deliver(
                    member.id,
                    Out::ParticipantUpdated(pb::ParticipantUpdated {
                        participant: Some(participant),
                    }),
                    origin,
                )
                .await?;
        }
        self.router
            .deliver(session, Out::Ack(pb::Ack { request_id }), origin)
            .await?;
        let updated = pb::ParticipantUpdated {
            participant: Some(record.to_participant(None)),
        };
        self.record(
            &record.room,
            pb::room_event::Event::ParticipantUpdated(updated),
        )
        .await;
        Ok(())
    }

    /// Ends a session: the room hears `reason`, and the connection (if it
    /// is still there) is closed with `code` (`None` = normal closure).
    pub async fn leave(
        &self,
        session: SessionId,
        reason: LeaveReason,
        code: Option<ErrorCode>,
    ) -> Result<(), SignalError> {
        self.end(session, reason, code, reason.as_str_name()).await
    }

    /// [`Hub::leave`], with `message` as the close reason's text.
    async fn end(
        &self,
        session: SessionId,
        reason: LeaveReason,
        code: Option<ErrorCode>,
        message: &str,
    ) -> Result<(), SignalError> {
        self.router.close(session, code, message).await?;
        let Some(departure) = self.store.depart(session).await? else {
            return Ok(());
        };
        let record = departure.record;
        self.release_identity(&record.participant, record.id).await;
        // Only tell the room if this session still held the identity (a
        // replaced session already produced its ParticipantLeft).
        let holder = self.store.member(&record.room, &record.participant).await?;
        if holder.is_some() {
            return Ok(());
        }
        // Recorded before the room hears it: whoever reacts to the news
        // (another participant leaving too) comes after it in the log.
        let left = pb::ParticipantLeft {
            participant_id: record.participant.to_string(),
            reason: reason as i32,
        };
        self.record(
            &record.room,
            pb::room_event::Event::ParticipantLeft(left.clone()),
        )
        .await;
        for member in self.store.members(&record.room).await? {
            self.router
                .deliver(member.id, Out::ParticipantLeft(left.clone()), None)
                .await?;
        }
        tracing::info!(room = %record.room, session = %session, reason = reason.as_str_name(), "participant left");
        // Atomic with the removal: of two sessions leaving at once, only
        // the one that emptied the room reports its end.
        if departure.room_empty {
            self.record(
                &record.room,
                pb::room_event::Event::RoomFinished(pb::RoomFinished {}),
            )
            .await;
        }
        Ok(())
    }

    /// The client processed everything through `seq`: its log keeps only
    /// what follows (plus whatever arrives while it is away).
    pub async fn acked(&self, session: SessionId, seq: u64) {
        if let Err(err) = self.router.trim(session, seq).await {
            tracing::debug!(session = %session, error = %err, "log trim failed");
        }
    }

    /// The edge refreshed the session's token: push it (with renewed TURN
    /// credentials) to the connection, outside the session's log (seq 0):
    /// a credential is never stored; a connection that misses it is
    /// refreshed again after its resume.
    pub fn refreshed(&self, session: &SessionRef, sink: &Sink, refresh: pb::TokenRefresh) {
        let message = pb::TokenRefreshed {
            ice_servers: self
                .settings
                .ice_servers(&session.participant, refresh.expires_at),
            token: refresh.token,
            expires_at: refresh.expires_at,
        };
        sink.send(pb::signal_envelope::Event::Message(pb::ServerMessage {
            seq: 0,
            message: Some(Out::TokenRefreshed(message)),
        }));
    }
}
