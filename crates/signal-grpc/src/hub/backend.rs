//! What the application's backend does to rooms (RoomService): look,
//! remove, close, send data. Every action goes through the same store and
//! router as the browsers' own, so it works on any replica for sessions
//! held by any other.

use std::time::Duration;

use switchboard_proto::{
    ErrorCode, LeaveReason, ParticipantId, RoomId, SignalError, pb,
    pb::server_message::Message as Out,
};

use super::Hub;
use crate::store::{SessionRecord, keys};

/// How long an idempotency key of SendData is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(600);
/// Largest SendData payload, topic, key, and removal reason.
pub const MAX_DATA_BYTES: usize = 16 * 1024;
pub const MAX_TOPIC_BYTES: usize = 128;
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;
pub const MAX_REASON_BYTES: usize = 100;

/// What a SendData did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub delivered: u32,
    pub not_found: Vec<String>,
    pub duplicate: bool,
}

fn too_long(what: &str, max: usize) -> SignalError {
    SignalError::new(
        ErrorCode::BadRequest,
        format!("{what} longer than {max} bytes"),
    )
}

impl Hub {
    /// Every session in `room`.
    pub async fn room_members(&self, room: &RoomId) -> Result<Vec<SessionRecord>, SignalError> {
        Ok(self.store.members(room).await?)
    }

    /// Ends `identity`'s session in `room`: its connection closes with
    /// `removed: <reason>`, the room hears `removed`. False if it is not
    /// there.
    pub async fn remove(
        &self,
        room: &RoomId,
        identity: &ParticipantId,
        reason: &str,
    ) -> Result<bool, SignalError> {
        if reason.len() > MAX_REASON_BYTES {
            return Err(too_long("reason", MAX_REASON_BYTES));
        }
        let Some(session) = self.store.member(room, identity).await? else {
            return Ok(false);
        };
        let message = if reason.is_empty() {
            "removed by the application"
        } else {
            reason
        };
        self.end(
            session,
            LeaveReason::Removed,
            Some(ErrorCode::ParticipantRemoved),
            message,
        )
        .await?;
        tracing::info!(room = %room, session = %session, "participant removed by the backend");
        Ok(true)
    }

    /// Removes everyone in `room` and forgets its settings (a created
    /// room is deleted); returns how many were removed.
    pub async fn close_room(&self, room: &RoomId, reason: &str) -> Result<u32, SignalError> {
        let mut removed = 0;
        for member in self.store.members(room).await? {
            if self.remove(room, &member.participant, reason).await? {
                removed += 1;
            }
        }
        self.store.delete_room(room).await?;
        Ok(removed)
    }

    /// Delivers `data` to `identities` in `room` (everyone when empty),
    /// each through its session's log. With an idempotency key, each
    /// recipient is marked before its delivery (and unmarked if it fails),
    /// so a retried call delivers to nobody twice and to everybody once.
    pub async fn send_data(
        &self,
        room: &RoomId,
        identities: &[ParticipantId],
        data: pb::Data,
        idempotency_key: &str,
    ) -> Result<Sent, SignalError> {
        if data.payload.len() > MAX_DATA_BYTES {
            return Err(too_long("payload", MAX_DATA_BYTES));
        }
        if data.topic.len() > MAX_TOPIC_BYTES {
            return Err(too_long("topic", MAX_TOPIC_BYTES));
        }
        if idempotency_key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(too_long("idempotency key", MAX_IDEMPOTENCY_KEY_BYTES));
        }
        if !self.data_rate.admit(room, std::time::Instant::now()) {
            return Err(SignalError::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} SendData calls a second into this room",
                    self.data_rate.per_second()
                ),
            ));
        }
        let members = self.store.members(room).await?;
        let mut sent = Sent::default();
        let targets: Vec<&SessionRecord> = if identities.is_empty() {
            members.iter().collect()
        } else {
            for identity in identities {
                if !members.iter().any(|m| &m.participant == identity) {
                    sent.not_found.push(identity.to_string());
                }
            }
            members
                .iter()
                .filter(|m| identities.contains(&m.participant))
                .collect()
        };
        let mut already = 0;
        for target in &targets {
            let mark = (!idempotency_key.is_empty())
                .then(|| keys::idempotency(room.as_str(), idempotency_key, &target.id.to_string()));
            if let Some(mark) = &mark
                && !self.store.first_use(mark, IDEMPOTENCY_WINDOW).await?
            {
                already += 1;
                continue;
            }
            let delivered = self
                .router
                .deliver(target.id, Out::Data(data.clone()), None)
                .await;
            if let Ok(Some(_)) = delivered {
                sent.delivered += 1;
                continue;
            }
            // Not delivered (gone meanwhile, or failed): not marked either.
            if let Some(mark) = &mark {
                let _ = self.store.forget(mark).await;
            }
            delivered.map_err(SignalError::from)?;
        }
        sent.duplicate = already > 0 && sent.delivered == 0;
        if sent.delivered > 0 {
            let event = pb::DataSent {
                topic: data.topic.clone(),
                delivered: sent.delivered,
            };
            self.record(room, pb::room_event::Event::DataSent(event))
                .await;
        }
        Ok(sent)
    }
}
