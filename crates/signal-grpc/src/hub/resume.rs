//! A connection lost and a session resumed: the session waits for its
//! client within the resume window (the room is told it is reconnecting),
//! and continues on a new connection, anywhere.

use switchboard_proto::{
    ErrorCode, LeaveReason, SessionId, SignalError, grants, pb, pb::server_message::Message as Out,
};

use super::Hub;
use crate::{
    router::{Lost, ResumeRefused, Sink, now_ms},
    store::SessionRef,
};

impl Hub {
    /// The connection went away without a Leave. A lost connection
    /// (disconnected, timeout) keeps its session for the resume window; an
    /// expired or revoked one ends it now.
    pub async fn disconnect(&self, session: SessionId, sink: &Sink, reason: LeaveReason) {
        let ends = matches!(reason, LeaveReason::Expired | LeaveReason::Revoked);
        let result = if self.settings.resume_window.is_zero() || ends {
            self.leave(session, reason, None).await
        } else {
            self.detach(session, sink, reason).await
        };
        if let Err(err) = result {
            tracing::warn!(session = %session, error = %err, "disconnect cleanup failed");
        }
    }

    async fn detach(
        &self,
        session: SessionId,
        sink: &Sink,
        reason: LeaveReason,
    ) -> Result<(), SignalError> {
        let Some(generation) = self.router.detach(session, sink).await? else {
            return Ok(()); // already resumed elsewhere, or gone
        };
        tracing::debug!(session = %session, reason = reason.as_str_name(), "session detached; waiting for resume");
        let deadline = now_ms() + self.settings.resume_window.as_millis() as u64;
        self.router
            .schedule_expiry(session, generation, deadline, Lost::from_reason(reason))
            .await?;
        // The sweeper (one per process) ends it once the deadline passes,
        // unless it was resumed by then.
        self.announce_connection(session, pb::Connection::Reconnecting)
            .await
    }

    /// Tells the room that `session`'s connection is lost (`reconnecting`,
    /// at once, not a resume window later) or back (`connected`).
    async fn announce_connection(
        &self,
        session: SessionId,
        connection: pb::Connection,
    ) -> Result<(), SignalError> {
        let Some(record) = self.store.session(session).await? else {
            return Ok(());
        };
        for member in self.store.members(&record.room).await? {
            if member.id == session {
                continue;
            }
            let mut participant = record.to_participant(Some(&member.participant));
            participant.connection = connection as i32;
            self.router
                .deliver(
                    member.id,
                    Out::ParticipantUpdated(pb::ParticipantUpdated {
                        participant: Some(participant),
                    }),
                    None,
                )
                .await?;
        }
        let mut participant = record.to_participant(None);
        participant.connection = connection as i32;
        let updated = pb::ParticipantUpdated {
            participant: Some(participant),
        };
        self.record(
            &record.room,
            pb::room_event::Event::ParticipantUpdated(updated),
        )
        .await;
        Ok(())
    }

    /// Continues a detached (or still attached) session on a new
    /// connection. Every refusal is `not_found`: sessions cannot be probed.
    pub async fn resume(
        &self,
        sink: Sink,
        request: pb::ResumeSession,
    ) -> Result<SessionRef, SignalError> {
        let refused = || SignalError::new(ErrorCode::NotFound, "no such session to resume");
        let claims = self.auth.verify(&request.token).await?;
        let room_grant = claims.grants.as_ref().map_or("", |g| g.room.as_str());
        let session = SessionId::parse(&request.session_id).ok_or_else(refused)?;
        let record = self.store.session(session).await?.ok_or_else(refused)?;
        // A session the backend moved is in a room its token may not
        // grant: the identity suffices for it.
        if record.participant.as_str() != claims.subject
            || !(record.moved || grants::may_resume(room_grant, record.room.as_str()))
        {
            tracing::info!(session = %session, "resume refused: another identity or room");
            return Err(refused());
        }
        let participants = self
            .store
            .members(&record.room)
            .await?
            .iter()
            .filter(|m| m.id != session)
            .map(|m| m.to_participant(Some(&record.participant)))
            .collect();
        let first = pb::Resumed {
            request_id: request.request_id,
            session_id: request.session_id.clone(),
            participants,
            ..Default::default()
        };
        match self
            .router
            .resume(
                session,
                &request.resume_token,
                request.last_seq,
                sink,
                first,
            )
            .await?
        {
            Ok(resumed) => {
                tracing::info!(
                    room = %record.room,
                    session = %session,
                    replayed = resumed.replayed,
                    complete = resumed.complete,
                    "session resumed"
                );
                if let Err(err) = self
                    .announce_connection(session, pb::Connection::Connected)
                    .await
                {
                    tracing::warn!(session = %session, error = %err, "resume not announced");
                }
                Ok(record.to_ref())
            }
            Err(why) => {
                tracing::info!(session = %session, why = ?why, "resume refused");
                Err(match why {
                    ResumeRefused::FutureSeq => {
                        SignalError::new(ErrorCode::BadRequest, "last_seq is ahead of the session")
                    }
                    ResumeRefused::Unknown | ResumeRefused::BadToken => refused(),
                })
            }
        }
    }
}
