//! Moving a live participant to another room (RoomService.MoveParticipant):
//! its session, seq and resume token continue. The room it leaves hears
//! `participantLeft` (`moved`), the room it enters `participantJoined`,
//! the participant a `moved` message with the new room's participants, in
//! its session's order. The link carrying the session learns the new room
//! on its next relay (`Hub::relay` follows the record once).

use switchboard_proto::{
    ErrorCode, LeaveReason, ParticipantId, RoomId, SignalError, pb,
    pb::server_message::Message as Out,
};

use super::Hub;
use crate::store::MoveOutcome;

impl Hub {
    pub async fn move_participant(
        &self,
        from: &RoomId,
        identity: &ParticipantId,
        to: &RoomId,
    ) -> Result<pb::Participant, SignalError> {
        if from == to {
            return Err(SignalError::new(
                ErrorCode::BadRequest,
                "the destination is the room it is in",
            ));
        }
        let not_here = || SignalError::new(ErrorCode::NotFound, "no such participant in this room");
        let session = self
            .store
            .member(from, identity)
            .await?
            .ok_or_else(not_here)?;
        let destination = self.store.room(to).await?;
        let max = destination.max_participants(self.settings.max_participants);
        let (record, others, left_empty) = match self
            .store
            .move_session(session, to, self.settings.max_participants)
            .await?
        {
            MoveOutcome::Moved {
                record,
                others,
                left_empty,
            } => (record, others, left_empty),
            MoveOutcome::Gone => return Err(not_here()),
            MoveOutcome::Occupied => {
                return Err(SignalError::new(
                    ErrorCode::AlreadyJoined,
                    "the participant is in the destination room already",
                ));
            }
            MoveOutcome::Full => {
                return Err(SignalError::new(
                    ErrorCode::RoomFull,
                    format!("the destination holds its maximum of {max} participants"),
                ));
            }
        };

        // The room it left.
        let left = pb::ParticipantLeft {
            participant_id: identity.to_string(),
            reason: LeaveReason::Moved as i32,
        };
        for member in self.store.members(from).await? {
            self.router
                .deliver(member.id, Out::ParticipantLeft(left.clone()), None)
                .await?;
        }
        self.record(from, pb::room_event::Event::ParticipantLeft(left))
            .await;
        if left_empty {
            self.record(
                from,
                pb::room_event::Event::RoomFinished(pb::RoomFinished {}),
            )
            .await;
        }

        // The participant, then the room it entered (so anything they send
        // it follows its `moved`).
        let moved = pb::Moved {
            room: to.to_string(),
            participants: others
                .iter()
                .map(|m| m.to_participant(Some(identity)))
                .collect(),
            room_metadata: destination.metadata().to_owned(),
            max_participants: max as u32,
        };
        self.router
            .deliver(session, Out::Moved(moved), None)
            .await?;
        for member in &others {
            let joined = pb::ParticipantJoined {
                participant: Some(record.to_participant(Some(&member.participant))),
            };
            self.router
                .deliver(member.id, Out::ParticipantJoined(joined), None)
                .await?;
        }
        if others.is_empty() {
            self.record(to, pb::room_event::Event::RoomStarted(pb::RoomStarted {}))
                .await;
        }
        let participant = record.to_participant(None);
        let joined = pb::ParticipantJoined {
            participant: Some(participant.clone()),
        };
        self.record(to, pb::room_event::Event::ParticipantJoined(joined))
            .await;
        let moved = pb::ParticipantMoved {
            participant: Some(participant.clone()),
            from_room: from.to_string(),
        };
        self.record(to, pb::room_event::Event::ParticipantMoved(moved))
            .await;
        tracing::info!(from = %from, to = %to, session = %session, "participant moved by the backend");
        Ok(participant)
    }
}
