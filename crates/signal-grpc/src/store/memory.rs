//! The in-memory [`SessionStore`]: one process, nothing shared.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Instant,
};

use async_trait::async_trait;
use switchboard_proto::{ParticipantId, RoomId, SessionId};

use super::{
    CreateOutcome, Departure, IdentityClaim, JoinOutcome, MoveOutcome, RecordPatch, RoomInfo,
    RoomSettings, SessionRecord, SessionStore, StoreError,
};

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<SessionId, SessionRecord>,
    rooms: HashMap<RoomId, HashMap<ParticipantId, SessionId>>,
    /// Rooms' own settings, and since when a created one is empty.
    settings: HashMap<RoomId, (RoomSettings, Option<Instant>)>,
    /// Idempotency marks → until when.
    used: HashMap<String, std::time::Instant>,
    /// Each identity's sessions, oldest first.
    identities: HashMap<ParticipantId, Vec<SessionId>>,
}

impl State {
    /// A room's settings, unless it timed out empty (then they go).
    fn settings(&mut self, room: &RoomId) -> Option<&mut (RoomSettings, Option<Instant>)> {
        let expired = self.settings.get(room).is_some_and(|(s, since)| {
            since.is_some_and(|since| since.elapsed() >= s.empty_timeout)
        });
        if expired {
            self.settings.remove(room);
        }
        self.settings.get_mut(room)
    }

    /// `room` has no member left: a created room starts its empty timeout,
    /// other settings go.
    fn emptied(&mut self, room: &RoomId) {
        self.rooms.remove(room);
        match self.settings(room) {
            Some((settings, since)) if settings.created => *since = Some(Instant::now()),
            Some(_) => {
                self.settings.remove(room);
            }
            None => {}
        }
    }

    fn info(&mut self, room: &RoomId) -> RoomInfo {
        let members = self.rooms.get(room).map_or(0, |m| m.len() as u32);
        RoomInfo {
            name: room.clone(),
            members,
            settings: self.settings(room).map(|(s, _)| s.clone()),
        }
    }
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
        let max_participants = match state.settings(&record.room) {
            Some((settings, empty_since)) => {
                *empty_since = None;
                settings.max_participants(max_participants)
            }
            None => max_participants,
        };
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
                state.emptied(&record.room);
            }
        }
        Ok(Some(Departure { record, room_empty }))
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().sessions.get(&id).cloned())
    }

    async fn claim_identity(
        &self,
        identity: &ParticipantId,
        session: SessionId,
        max: usize,
        _now_ms: u64,
    ) -> Result<IdentityClaim, StoreError> {
        let mut state = self.lock();
        let held = state.identities.entry(identity.clone()).or_default();
        if held.contains(&session) {
            return Ok(IdentityClaim::Held);
        }
        if held.len() >= max {
            return Ok(IdentityClaim::Full(held.clone()));
        }
        held.push(session);
        Ok(IdentityClaim::Held)
    }

    async fn release_identity(
        &self,
        identity: &ParticipantId,
        session: SessionId,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(held) = state.identities.get_mut(identity) {
            held.retain(|s| *s != session);
            if held.is_empty() {
                state.identities.remove(identity);
            }
        }
        Ok(())
    }

    async fn update(
        &self,
        id: SessionId,
        patch: &RecordPatch,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut state = self.lock();
        Ok(state.sessions.get_mut(&id).map(|record| {
            patch.apply(record);
            record.clone()
        }))
    }

    async fn move_session(
        &self,
        id: SessionId,
        to: &RoomId,
        max_participants: usize,
    ) -> Result<MoveOutcome, StoreError> {
        let mut state = self.lock();
        let Some(mut record) = state.sessions.get(&id).cloned() else {
            return Ok(MoveOutcome::Gone);
        };
        let present = state.rooms.get(to).map_or(0, HashMap::len);
        if state
            .rooms
            .get(to)
            .is_some_and(|m| m.contains_key(&record.participant))
        {
            return Ok(MoveOutcome::Occupied);
        }
        let max = match state.settings(to) {
            Some((settings, _)) => settings.max_participants(max_participants),
            None => max_participants,
        };
        if present >= max {
            return Ok(MoveOutcome::Full);
        }
        let from = record.room.clone();
        let mut left_empty = false;
        if let Some(members) = state.rooms.get_mut(&from) {
            if members.get(&record.participant) == Some(&id) {
                members.remove(&record.participant);
            }
            left_empty = members.is_empty();
        }
        if left_empty {
            state.emptied(&from);
        }
        if let Some((_, since)) = state.settings(to) {
            *since = None;
        }
        let others = state
            .rooms
            .get(to)
            .map(|m| {
                m.values()
                    .filter_map(|other| state.sessions.get(other).cloned())
                    .collect()
            })
            .unwrap_or_default();
        state
            .rooms
            .entry(to.clone())
            .or_default()
            .insert(record.participant.clone(), id);
        record.room = to.clone();
        record.moved = true;
        state.sessions.insert(id, record.clone());
        Ok(MoveOutcome::Moved {
            record,
            others,
            left_empty,
        })
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

    async fn create_room(
        &self,
        room: &RoomId,
        settings: RoomSettings,
        max_rooms: usize,
    ) -> Result<CreateOutcome, StoreError> {
        let mut state = self.lock();
        if state.settings(room).is_some_and(|(s, _)| s.created) {
            return Ok(CreateOutcome::Exists);
        }
        // Rooms that exist: occupied, or created and not timed out.
        let names: Vec<RoomId> = state
            .settings
            .keys()
            .filter(|name| !state.rooms.contains_key(*name))
            .cloned()
            .collect();
        let created_empty = names
            .iter()
            .filter(|name| state.settings(name).is_some_and(|(s, _)| s.created))
            .count();
        if state.rooms.len() + created_empty >= max_rooms {
            return Ok(CreateOutcome::TooMany);
        }
        let empty = !state.rooms.contains_key(room);
        state
            .settings
            .insert(room.clone(), (settings, empty.then(Instant::now)));
        Ok(CreateOutcome::Created(state.info(room)))
    }

    async fn room(&self, room: &RoomId) -> Result<RoomInfo, StoreError> {
        Ok(self.lock().info(room))
    }

    async fn set_room_metadata(
        &self,
        room: &RoomId,
        metadata: &str,
    ) -> Result<Option<RoomInfo>, StoreError> {
        let mut state = self.lock();
        if !state.info(room).exists() {
            return Ok(None);
        }
        state
            .settings
            .entry(room.clone())
            .or_insert_with(|| (RoomSettings::default(), None))
            .0
            .metadata = metadata.to_owned();
        Ok(Some(state.info(room)))
    }

    async fn list_rooms(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<RoomInfo>, StoreError> {
        let mut state = self.lock();
        let mut names: Vec<RoomId> = state
            .rooms
            .keys()
            .chain(state.settings.keys())
            .filter(|n| n.as_str().starts_with(prefix) && n.as_str() > after)
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        Ok(names
            .iter()
            .map(|name| state.info(name))
            .filter(RoomInfo::exists)
            .take(limit)
            .collect())
    }

    async fn delete_room(&self, room: &RoomId) -> Result<(), StoreError> {
        self.lock().settings.remove(room);
        Ok(())
    }
}
