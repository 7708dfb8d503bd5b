//! Joining: a verified token enters its room (the identity's join quota,
//! the application's join hook, the room's own maximum), the session's log
//! starts with Joined, the room hears of it.

use switchboard_proto::{
    ErrorCode, LeaveReason, ParticipantId, RoomId, SessionId, SignalError, grants, limits,
    pb::{self, server_message::Message as Out},
    validate,
};

use super::Hub;
use crate::{
    keyed_rate,
    router::{Sink, new_resume_token, now_ms},
    store::{IdentityClaim, JoinOutcome, SessionRecord, SessionRef},
};

impl Hub {
    /// Joins an authenticated connection to its room. On success the
    /// session exists, is attached to `sink`, has received Joined (seq 1)
    /// and the room has been told. On failure nothing is left behind.
    pub async fn open(&self, sink: Sink, open: pb::OpenSession) -> Result<SessionRef, SignalError> {
        let claims = self.auth.verify(&open.token).await?;
        let participant = ParticipantId::new(&claims.subject)
            .map_err(|e| SignalError::new(ErrorCode::BadRequest, e.to_string()))?;
        // Joins per identity (on this replica): a client rejoining in a
        // loop is slowed down, and a join refused after its token checked
        // out (room full, refused by the hook, a bad room) costs more.
        if !self
            .join_rate
            .admit(&participant, std::time::Instant::now())
        {
            return Err(SignalError::new(
                ErrorCode::RateLimited,
                "too many joins for this identity; retry in a moment",
            ));
        }
        let joined = self
            .open_verified(sink, open, claims, participant.clone())
            .await;
        // Refusals that are the client's doing cost more; the service's own
        // trouble (unavailable, internal) does not, or clients retrying
        // through an outage would be locked out after it.
        if joined.as_ref().is_err_and(|err| {
            !matches!(
                err.code,
                ErrorCode::Unavailable | ErrorCode::Internal | ErrorCode::ShuttingDown
            )
        }) {
            self.join_rate.charge(
                &participant,
                keyed_rate::FAILED_JOIN_COST,
                std::time::Instant::now(),
            );
        }
        joined
    }

    async fn open_verified(
        &self,
        sink: Sink,
        open: pb::OpenSession,
        claims: pb::Claims,
        participant: ParticipantId,
    ) -> Result<SessionRef, SignalError> {
        let bad = |e: switchboard_proto::ids::IdError| {
            SignalError::new(ErrorCode::BadRequest, e.to_string())
        };
        let room = grants::granted_room(&claims, &open.room)?;
        let room = RoomId::new(&room).map_err(bad)?;
        let token_expires_at = claims.expires_at;
        let (mut name, mut attributes) = (claims.name, open.attributes);
        let mut publish = claims.grants.as_ref().is_some_and(|g| g.publish);
        // The application's say, if it asked for one (it may refuse, or
        // change the name, attributes and permissions).
        if let Some(hook) = &self.join_hook {
            let changes = hook
                .check(pb::CheckJoinRequest {
                    room: room.to_string(),
                    identity: participant.to_string(),
                    name: name.clone(),
                    attributes: attributes.clone(),
                    permissions: Some(pb::Permissions { publish }),
                    metadata: claims.metadata,
                })
                .await?;
            name = changes.name.unwrap_or(name);
            attributes = changes.attributes.unwrap_or(attributes);
            publish = changes.publish.unwrap_or(publish);
        }
        validate::name(&name)?;
        validate::attributes(&attributes)?;
        // The room's own settings: its maximum and metadata for Joined.
        let room_info = self.store.room(&room).await?;
        let max_participants = room_info.max_participants(self.settings.max_participants);

        let record = SessionRecord {
            id: SessionId::random(),
            room: room.clone(),
            participant: participant.clone(),
            name,
            attributes,
            joined_at_ms: now_ms(),
            publish,
            moved: false,
        };
        let session = record.id;
        self.claim_identity(&record).await?;
        let resume_token = new_resume_token();
        // The session's log starts now, but holds anything delivered to it
        // until Joined is its seq 1 (someone who joins just after may
        // announce itself before our Joined is written).
        if let Err(err) = self
            .router
            .open(session, sink.clone(), resume_token.clone())
            .await
        {
            self.release_identity(&participant, session).await;
            return Err(err.into());
        }
        let joined = self
            .store
            .join(record.clone(), self.settings.max_participants)
            .await;
        let (replaced, others) = match joined {
            Ok(JoinOutcome::Joined { replaced, others }) => (replaced, others),
            Ok(JoinOutcome::Full) => {
                self.release_identity(&participant, session).await;
                self.discard(session, &sink).await;
                return Err(SignalError::new(
                    ErrorCode::RoomFull,
                    format!("the room holds its maximum of {max_participants} participants"),
                ));
            }
            Err(err) => {
                self.release_identity(&participant, session).await;
                self.discard(session, &sink).await;
                return Err(err.into());
            }
        };
        if let Some(old) = &replaced {
            self.release_identity(&participant, old.id).await;
            tracing::info!(room = %room, session = %old.id, "session replaced by a new join");
            self.router
                .close(
                    old.id,
                    Some(ErrorCode::SessionReplaced),
                    "the same identity joined again",
                )
                .await?;
        }

        // `others` is the room at the instant of the join: the joiner lists
        // exactly them and announces itself to exactly them; whoever joins
        // later lists the joiner. So each pair learns of each other once.
        let participants = others
            .iter()
            .map(|m| m.to_participant(Some(&participant)))
            .collect();
        let joined = pb::Joined {
            request_id: open.request_id,
            session_id: session.to_string(),
            resume_token,
            room: room.to_string(),
            self_: Some(record.to_participant(None)),
            participants,
            ice_servers: self.settings.ice_servers(&participant, token_expires_at),
            // The edge says what it enforces; direct gRPC callers get the
            // protocol defaults.
            keepalive: Some(open.keepalive.unwrap_or_else(limits::default_keepalive)),
            limits: Some(pb::Limits {
                max_participants: max_participants as u32,
                ..open.limits.unwrap_or_else(limits::default_limits)
            }),
            room_metadata: room_info.metadata().to_owned(),
        };
        self.router.start(session, Out::Joined(joined)).await?;

        for member in &others {
            if let Some(old) = &replaced {
                self.router
                    .deliver(
                        member.id,
                        Out::ParticipantLeft(pb::ParticipantLeft {
                            participant_id: old.participant.to_string(),
                            reason: LeaveReason::Replaced as i32,
                        }),
                        None,
                    )
                    .await?;
            }
            let participant = record.to_participant(Some(&member.participant));
            self.router
                .deliver(
                    member.id,
                    Out::ParticipantJoined(pb::ParticipantJoined {
                        participant: Some(participant),
                    }),
                    None,
                )
                .await?;
        }
        tracing::info!(room = %room, session = %session, "participant joined");
        if others.is_empty() && replaced.is_none() {
            self.record(
                &room,
                pb::room_event::Event::RoomStarted(pb::RoomStarted {}),
            )
            .await;
        }
        let joined = pb::ParticipantJoined {
            participant: Some(record.to_participant(None)),
        };
        self.record(&room, pb::room_event::Event::ParticipantJoined(joined))
            .await;
        Ok(record.to_ref())
    }

    /// Counts the new session among its identity's (cluster-wide), within
    /// [`JoinSettings::max_sessions_per_identity`]. At the maximum, the
    /// identity's sessions that ended without being released (a replica
    /// that died) and its session in this very room (which this join
    /// replaces) are released, and the claim is tried once more.
    async fn claim_identity(&self, record: &SessionRecord) -> Result<(), SignalError> {
        let max = self.settings.max_sessions_per_identity;
        if max == 0 {
            return Ok(());
        }
        let identity = &record.participant;
        for _ in 0..2 {
            let holders = match self
                .store
                .claim_identity(identity, record.id, max, now_ms())
                .await?
            {
                IdentityClaim::Held => return Ok(()),
                IdentityClaim::Full(holders) => holders,
            };
            let mut freed = false;
            for holder in holders {
                let stale = match self.store.session(holder).await? {
                    None => true,
                    Some(other) => other.room == record.room,
                };
                if stale {
                    self.store.release_identity(identity, holder).await?;
                    freed = true;
                }
            }
            if !freed {
                break;
            }
        }
        Err(SignalError::new(
            ErrorCode::TooManySessions,
            format!("this identity holds its maximum of {max} sessions at once; leave one first"),
        ))
    }

    /// No longer counts `session` among `identity`'s. A failure is logged:
    /// the place is released anyway when the identity next finds itself
    /// at its maximum.
    pub(super) async fn release_identity(&self, identity: &ParticipantId, session: SessionId) {
        if self.settings.max_sessions_per_identity == 0 {
            return;
        }
        if let Err(err) = self.store.release_identity(identity, session).await {
            tracing::warn!(error = %err, session = %session, "could not release an identity's session place");
        }
    }

    /// Drops a session that never started, leaving its connection to the
    /// caller (which answers the join with the error, then closes).
    async fn discard(&self, session: SessionId, sink: &Sink) {
        let _ = self.router.detach(session, sink).await;
        let _ = self.router.close(session, None, "").await;
    }
}
