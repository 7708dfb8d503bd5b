//! The in-memory [`SessionStore`]: one process, nothing shared.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use switchboard_proto::{ParticipantId, RoomId, SessionId};

use super::{Departure, JoinOutcome, SessionRecord, SessionStore, StoreError};

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<SessionId, SessionRecord>,
    rooms: HashMap<RoomId, HashMap<ParticipantId, SessionId>>,
    /// Idempotency marks → until when.
    used: HashMap<String, std::time::Instant>,
}

/// Idempotency marks held at most (expired ones are dropped first).
const MAX_MARKS: usize = 100_000;

/// Sessions and rooms in a process-local map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated:
        // every method below mutates with single map operations.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of rooms with at least one member (for tests and metrics).
    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn join(
        &self,
        record: SessionRecord,
        max_participants: usize,
    ) -> Result<JoinOutcome, StoreError> {
        let mut state = self.lock();
        let State {
            sessions, rooms, ..
        } = &mut *state;
        let members = rooms.entry(record.room.clone()).or_default();
        let present = members.contains_key(&record.participant);
        if !present && members.len() >= max_participants {
            if members.is_empty() {
                rooms.remove(&record.room);
            }
            return Ok(JoinOutcome::Full);
        }
        let others = members
            .iter()
            .filter(|(p, _)| **p != record.participant)
            .filter_map(|(_, id)| sessions.get(id).cloned())
            .collect();
        let replaced = members.insert(record.participant.clone(), record.id);
        let replaced = replaced.and_then(|old| sessions.remove(&old));
        sessions.insert(record.id, record);
        Ok(JoinOutcome::Joined { replaced, others })
    }

    async fn depart(&self, id: SessionId) -> Result<Option<Departure>, StoreError> {
        let mut state = self.lock();
        let Some(record) = state.sessions.remove(&id) else {
            return Ok(None);
        };
        let mut room_empty = true;
        if let Some(members) = state.rooms.get_mut(&record.room) {
            if members.get(&record.participant) == Some(&id) {
                members.remove(&record.participant);
            }
            room_empty = members.is_empty();
            if room_empty {
                state.rooms.remove(&record.room);
            }
        }
        Ok(Some(Departure { record, room_empty }))
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().sessions.get(&id).cloned())
    }

    async fn set_attributes(
        &self,
        id: SessionId,
        attributes: HashMap<String, String>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut state = self.lock();
        Ok(state.sessions.get_mut(&id).map(|record| {
            record.attributes = attributes;
            record.clone()
        }))
    }

    async fn member(
        &self,
        room: &RoomId,
        participant: &ParticipantId,
    ) -> Result<Option<SessionId>, StoreError> {
        Ok(self
            .lock()
            .rooms
            .get(room)
            .and_then(|m| m.get(participant))
            .copied())
    }

    async fn lookup(
        &self,
        room: &RoomId,
        participants: &[&ParticipantId],
    ) -> Result<Vec<Option<SessionId>>, StoreError> {
        let state = self.lock();
        let members = state.rooms.get(room);
        Ok(participants
            .iter()
            .map(|p| members.and_then(|m| m.get(*p)).copied())
            .collect())
    }

    async fn first_use(&self, key: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let now = std::time::Instant::now();
        let mut state = self.lock();
        if state.used.get(key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        if state.used.len() >= MAX_MARKS {
            state.used.retain(|_, until| *until > now);
            if state.used.len() >= MAX_MARKS {
                return Err(StoreError("too many idempotency keys in use".into()));
            }
        }
        state.used.insert(key.to_owned(), now + ttl);
        Ok(true)
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.lock().used.remove(key);
        Ok(())
    }

    async fn members(&self, room: &RoomId) -> Result<Vec<SessionRecord>, StoreError> {
        let state = self.lock();
        Ok(state
            .rooms
            .get(room)
            .map(|m| {
                m.values()
                    .filter_map(|id| state.sessions.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default())
    }
}
