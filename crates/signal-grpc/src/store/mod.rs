//! Where session and room state lives. [`SessionStore`] is the seam: an
//! in-memory implementation serves one process; a shared one (Redis) lets
//! several signal replicas serve one room.

pub mod keys;
mod memory;
mod redis;
mod redis_connection;
mod redis_identities;
mod redis_move;
mod redis_rooms;
mod rooms;
pub(crate) use redis_connection::client as redis_client;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use switchboard_proto::{ErrorCode, ParticipantId, RoomId, SessionId, SignalError, pb};

pub use self::redis::{RedisConnection, RedisStore};
pub use memory::MemoryStore;
pub use rooms::{CreateOutcome, RoomInfo, RoomSettings};

/// Why the store could not answer. Always maps to `unavailable` for clients:
/// the request may succeed once the store is back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

impl From<StoreError> for SignalError {
    fn from(err: StoreError) -> Self {
        // Clients get the code; the detail goes to the log only.
        tracing::warn!(error = %err, "store call failed");
        SignalError::new(ErrorCode::Unavailable, "session store unavailable")
    }
}

/// What a link remembers of a session it carries, so relaying needs no
/// record lookup. Only the room can change (RoomService.MoveParticipant):
/// a relay that finds its sender no longer holds its identity in the room
/// it knew reads the record once and follows the move.
#[derive(Debug, Clone)]
pub struct SessionRef {
    pub id: SessionId,
    pub room: RoomCell,
    pub participant: ParticipantId,
}

/// The room a session is in, shared by the clones of its [`SessionRef`].
#[derive(Debug, Clone)]
pub struct RoomCell(Arc<std::sync::RwLock<RoomId>>);

impl RoomCell {
    pub fn new(room: RoomId) -> Self {
        Self(Arc::new(std::sync::RwLock::new(room)))
    }

    pub fn get(&self) -> RoomId {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, room: RoomId) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = room;
    }
}

/// One participant's session as the room sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub room: RoomId,
    pub participant: ParticipantId,
    pub name: String,
    pub attributes: HashMap<String, String>,
    pub joined_at_ms: u64,
    /// May send offers: the token's `publish` at the join, then whatever
    /// the backend set (RoomService.UpdateParticipant).
    pub publish: bool,
    /// The backend moved it to its room (RoomService.MoveParticipant): a
    /// resume needs no room grant for it.
    pub moved: bool,
}

/// A change to a live session's record; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordPatch {
    pub name: Option<String>,
    pub attributes: Option<HashMap<String, String>>,
    pub publish: Option<bool>,
}

impl RecordPatch {
    pub fn apply(&self, record: &mut SessionRecord) {
        if let Some(name) = &self.name {
            record.name = name.clone();
        }
        if let Some(attributes) = &self.attributes {
            record.attributes = attributes.clone();
        }
        if let Some(publish) = self.publish {
            record.publish = publish;
        }
    }
}

impl SessionRecord {
    pub fn to_ref(&self) -> SessionRef {
        SessionRef {
            id: self.id,
            room: RoomCell::new(self.room.clone()),
            participant: self.participant.clone(),
        }
    }

    /// The participant as `viewer` sees it (with `viewer`'s negotiation role).
    pub fn to_participant(&self, viewer: Option<&ParticipantId>) -> pb::Participant {
        pb::Participant {
            id: self.participant.to_string(),
            name: self.name.clone(),
            attributes: self.attributes.clone(),
            polite: viewer.is_some_and(|v| crate::roles::is_polite(v, &self.participant)),
            joined_at_ms: self.joined_at_ms,
            connection: pb::Connection::Unspecified as i32,
            permissions: Some(pb::Permissions {
                publish: self.publish,
            }),
        }
    }
}

/// A session removed by [`SessionStore::depart`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub record: SessionRecord,
    /// Its room has no member left.
    pub room_empty: bool,
}

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    Moved {
        /// The record as it is now (in the new room).
        record: SessionRecord,
        /// The new room's other members at the instant of the move.
        others: Vec<SessionRecord>,
        /// The room it left has no member now.
        left_empty: bool,
    },
    /// The identity is in the destination already.
    Occupied,
    Full,
    /// No such session.
    Gone,
}

/// The outcome of [`SessionStore::claim_identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityClaim {
    /// The session counts among its identity's sessions.
    Held,
    /// The identity holds its maximum: these sessions, oldest first.
    Full(Vec<SessionId>),
}

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The session is the room's member for its participant id.
    Joined {
        /// The session it replaced, if that identity was present.
        replaced: Option<SessionRecord>,
        /// Every other member at the instant of the join (atomic with it):
        /// the joiner lists exactly these, and announces itself to exactly
        /// these; anyone who joins later lists the joiner instead.
        others: Vec<SessionRecord>,
    },
    /// The room already holds `max_participants` other participants.
    Full,
}

/// Sessions and room membership. Every method is atomic on its own.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `record` and makes it the room's member for its participant
    /// id, unless the room holds `max_participants` others already (or
    /// its own maximum, if it was created with one). A created room stops
    /// counting down its empty timeout.
    async fn join(
        &self,
        record: SessionRecord,
        max_participants: usize,
    ) -> Result<JoinOutcome, StoreError>;

    /// Removes the session, and its room membership if it still holds it.
    /// Returns the record if it existed.
    async fn leave(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.depart(id).await?.map(|d| d.record))
    }

    /// [`SessionStore::leave`], also saying whether the room is empty
    /// after it, atomically with the removal (so of two sessions leaving
    /// at once, exactly one empties the room). An emptied created room
    /// starts counting down its empty timeout; a room's settings that were
    /// not created (metadata only) go with its last member.
    async fn depart(&self, id: SessionId) -> Result<Option<Departure>, StoreError>;

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError>;

    /// Counts `session` among `identity`'s sessions (across rooms and
    /// replicas), unless the identity holds `max` already. Atomic: of two
    /// joins racing for the last place, one gets it.
    async fn claim_identity(
        &self,
        identity: &ParticipantId,
        session: SessionId,
        max: usize,
        now_ms: u64,
    ) -> Result<IdentityClaim, StoreError>;

    /// No longer counts `session` (nothing if it was not counted).
    async fn release_identity(
        &self,
        identity: &ParticipantId,
        session: SessionId,
    ) -> Result<(), StoreError>;

    /// Changes the session's record; returns the new record (`None`: no
    /// such session).
    async fn update(
        &self,
        id: SessionId,
        patch: &RecordPatch,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// The session currently holding `participant` in `room`.
    async fn member(
        &self,
        room: &RoomId,
        participant: &ParticipantId,
    ) -> Result<Option<SessionId>, StoreError>;

    /// The sessions holding `participants` in `room`, in order (one round
    /// trip: the relay's hot path).
    async fn lookup(
        &self,
        room: &RoomId,
        participants: &[&ParticipantId],
    ) -> Result<Vec<Option<SessionId>>, StoreError>;

    /// [`SessionStore::lookup`] for each query, in one round trip where the
    /// store allows (a batch of relays).
    async fn lookup_many(
        &self,
        queries: &[(&RoomId, [&ParticipantId; 2])],
    ) -> Result<Vec<Vec<Option<SessionId>>>, StoreError> {
        let mut results = Vec::with_capacity(queries.len());
        for (room, participants) in queries {
            results.push(self.lookup(room, participants).await?);
        }
        Ok(results)
    }

    /// Every session in the room.
    async fn members(&self, room: &RoomId) -> Result<Vec<SessionRecord>, StoreError>;

    /// Marks `key` used for `ttl`; true if it was not (an idempotency key's
    /// first use). Bounded: a store that holds too many refuses.
    async fn first_use(&self, key: &str, ttl: std::time::Duration) -> Result<bool, StoreError>;

    /// Moves session `id` to `to` (as a join there, then a leave of its
    /// room), unless its identity is in `to` already or `to` holds
    /// `max_participants` (or its own maximum).
    async fn move_session(
        &self,
        id: SessionId,
        to: &RoomId,
        max_participants: usize,
    ) -> Result<MoveOutcome, StoreError>;

    /// Forgets a mark of [`SessionStore::first_use`] (what it guarded failed).
    async fn forget(&self, key: &str) -> Result<(), StoreError>;

    /// Creates `room` with `settings`, unless it was created already or
    /// `max_rooms` created rooms exist.
    async fn create_room(
        &self,
        room: &RoomId,
        settings: RoomSettings,
        max_rooms: usize,
    ) -> Result<CreateOutcome, StoreError>;

    /// A room's settings and member count.
    async fn room(&self, room: &RoomId) -> Result<RoomInfo, StoreError>;

    /// Sets a room's metadata; `None` if the room does not exist (neither
    /// created nor occupied).
    async fn set_room_metadata(
        &self,
        room: &RoomId,
        metadata: &str,
    ) -> Result<Option<RoomInfo>, StoreError>;

    /// Rooms that exist, in name order: names starting with `prefix`,
    /// after `after`, at most `limit`.
    async fn list_rooms(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<RoomInfo>, StoreError>;

    /// Forgets a room's settings (CloseRoom).
    async fn delete_room(&self, room: &RoomId) -> Result<(), StoreError>;
}
