//! What the application's backend does to rooms and to live participants
//! besides removing them (RoomService): create, list, update a room's
//! metadata, update a participant's name, attributes and permissions.
//! Every change is told to whom it concerns through the sessions' logs
//! (seq-numbered, replayed on resume) and recorded as a room event.

use std::time::Duration;

use switchboard_proto::{
    ErrorCode, ParticipantId, RoomId, SignalError, pb, pb::server_message::Message as Out, validate,
};

use super::Hub;
use crate::{
    router::now_ms,
    store::{CreateOutcome, RecordPatch, RoomInfo, RoomSettings},
};

/// Default most rooms that exist at once (occupied or created).
pub const MAX_ROOMS: usize = 10_000;
/// Largest room metadata.
pub const MAX_ROOM_METADATA_BYTES: usize = 4 * 1024;
/// A created room's empty timeout unless it asks for another.
pub const DEFAULT_EMPTY_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest empty timeout.
pub const MAX_EMPTY_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Rooms per ListRooms page by default, and at most.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1_000;

fn bad(message: impl Into<String>) -> SignalError {
    SignalError::new(ErrorCode::BadRequest, message)
}

fn no_room() -> SignalError {
    SignalError::new(ErrorCode::NotFound, "no such room")
}

/// What CreateRoom asks for.
#[derive(Debug, Clone, Default)]
pub struct NewRoom {
    pub max_participants: u32,
    pub empty_timeout: Duration,
    pub metadata: String,
}

impl Hub {
    /// The most a room admits by default (and at most).
    pub fn max_participants(&self) -> usize {
        self.settings.max_participants
    }

    /// A room's settings and member count.
    pub async fn room(&self, room: &RoomId) -> Result<RoomInfo, SignalError> {
        Ok(self.store.room(room).await?)
    }

    /// Creates `room` ahead of its first join. A refusal that is no error
    /// of the request (the room exists, too many rooms) is the outcome.
    pub async fn create_room(
        &self,
        room: &RoomId,
        new: NewRoom,
    ) -> Result<CreateOutcome, SignalError> {
        if new.metadata.len() > MAX_ROOM_METADATA_BYTES {
            return Err(bad(format!(
                "metadata longer than {MAX_ROOM_METADATA_BYTES} bytes"
            )));
        }
        if new.empty_timeout > MAX_EMPTY_TIMEOUT {
            return Err(bad("empty_timeout_seconds longer than 7 days"));
        }
        if new.max_participants as usize > self.settings.max_participants {
            return Err(bad(format!(
                "max_participants above the service's {}",
                self.settings.max_participants
            )));
        }
        let settings = RoomSettings {
            max_participants: new.max_participants,
            empty_timeout: if new.empty_timeout.is_zero() {
                DEFAULT_EMPTY_TIMEOUT
            } else {
                new.empty_timeout
            },
            metadata: new.metadata,
            created: true,
            created_at_ms: now_ms(),
        };
        let outcome = self
            .store
            .create_room(room, settings, self.settings.max_rooms)
            .await?;
        if matches!(outcome, CreateOutcome::Created(_)) {
            tracing::info!(room = %room, "room created by the backend");
        }
        Ok(outcome)
    }

    /// A page of rooms that exist, by name; the next page's token.
    pub async fn list_rooms(
        &self,
        prefix: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<RoomInfo>, String), SignalError> {
        let limit = match page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let rooms = self.store.list_rooms(prefix, page_token, limit).await?;
        // A full page may have more after it (an empty next page ends it).
        let next = if rooms.len() == limit {
            rooms.last().map(|r| r.name.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((rooms, next))
    }

    /// Sets a room's metadata; every participant hears RoomUpdated.
    pub async fn update_room_metadata(
        &self,
        room: &RoomId,
        metadata: String,
    ) -> Result<RoomInfo, SignalError> {
        if metadata.len() > MAX_ROOM_METADATA_BYTES {
            return Err(bad(format!(
                "metadata longer than {MAX_ROOM_METADATA_BYTES} bytes"
            )));
        }
        let info = self
            .store
            .set_room_metadata(room, &metadata)
            .await?
            .ok_or_else(no_room)?;
        for member in self.store.members(room).await? {
            let updated = Out::RoomUpdated(pb::RoomUpdated {
                metadata: metadata.clone(),
            });
            self.router.deliver(member.id, updated, None).await?;
        }
        self.record(
            room,
            pb::room_event::Event::RoomUpdated(pb::RoomMetadataUpdated { metadata }),
        )
        .await;
        Ok(info)
    }

    /// Changes `identity`'s live session: the participant hears
    /// SelfUpdated, the room ParticipantUpdated. A revoked `publish`
    /// refuses every offer relayed after this returns.
    pub async fn update_participant(
        &self,
        room: &RoomId,
        identity: &ParticipantId,
        patch: RecordPatch,
    ) -> Result<pb::Participant, SignalError> {
        if let Some(name) = &patch.name {
            validate::name(name)?;
        }
        if let Some(attributes) = &patch.attributes {
            validate::attributes(attributes)?;
        }
        let not_here = || SignalError::new(ErrorCode::NotFound, "no such participant in this room");
        let session = self
            .store
            .member(room, identity)
            .await?
            .ok_or_else(not_here)?;
        let record = self
            .store
            .update(session, &patch)
            .await?
            .ok_or_else(not_here)?;
        let this = Out::SelfUpdated(pb::SelfUpdated {
            self_: Some(record.to_participant(None)),
        });
        self.router.deliver(session, this, None).await?;
        for member in self.store.members(room).await? {
            if member.id == session {
                continue;
            }
            let updated = Out::ParticipantUpdated(pb::ParticipantUpdated {
                participant: Some(record.to_participant(Some(&member.participant))),
            });
            self.router.deliver(member.id, updated, None).await?;
        }
        let updated = pb::ParticipantUpdated {
            participant: Some(record.to_participant(None)),
        };
        self.record(room, pb::room_event::Event::ParticipantUpdated(updated))
            .await;
        tracing::info!(room = %room, session = %session, "participant updated by the backend");
        Ok(record.to_participant(None))
    }
}
