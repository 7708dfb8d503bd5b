//! Revoked tokens and users. A revocation is kept as long as a token it
//! covers could still be valid, then forgotten. Every revocation is also
//! broadcast, so edges can close live sessions holding it.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use switchboard_proto::pb;
use tokio::sync::broadcast;

use crate::now_secs;

/// Revocation events buffered per slow watcher before it lags (and then
/// re-checks everything it holds).
const EVENT_BUFFER: usize = 1024;

#[derive(Debug, Default)]
struct State {
    /// `jti` → until when to remember it.
    tokens: HashMap<String, u64>,
    /// `sub` → (tokens issued at or before this are revoked, remember until).
    subjects: HashMap<String, (u64, u64)>,
}

/// The in-memory revocation list of one auth process.
#[derive(Debug)]
pub struct Revocations {
    state: Mutex<State>,
    events: broadcast::Sender<pb::Revocation>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }
}

impl Revocations {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Revokes token `jti` until `until` (its expiry).
    pub fn revoke_token(&self, jti: &str, until: u64) {
        let mut state = self.lock();
        purge(&mut state);
        state.tokens.insert(jti.to_owned(), until);
        drop(state);
        let _ = self.events.send(pb::Revocation {
            target: Some(pb::revocation::Target::TokenId(jti.to_owned())),
        });
    }

    /// Revokes everything issued to `sub` up to now, remembered until
    /// `until` (the longest a session could still run).
    pub fn revoke_subject(&self, sub: &str, until: u64) {
        let before = now_secs();
        let mut state = self.lock();
        purge(&mut state);
        state.subjects.insert(sub.to_owned(), (before, until));
        drop(state);
        let _ = self.events.send(pb::Revocation {
            target: Some(pb::revocation::Target::Subject(pb::SubjectRevocation {
                subject: sub.to_owned(),
                before,
            })),
        });
    }

    /// Whether a token is revoked: by one of its ids (its own `jti`, its
    /// chain's first `jti`), or as a token of `sub` whose chain began at or
    /// before a user revocation.
    pub fn is_revoked(&self, ids: &[&str], sub: &str, auth_time: u64) -> bool {
        let state = self.lock();
        if ids
            .iter()
            .any(|id| !id.is_empty() && state.tokens.contains_key(*id))
        {
            return true;
        }
        // A refreshed token keeps its chain's auth_time, so revoking a user
        // also ends sessions that refreshed since.
        state
            .subjects
            .get(sub)
            .is_some_and(|(before, _)| auth_time <= *before)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<pb::Revocation> {
        self.events.subscribe()
    }
}

fn purge(state: &mut State) {
    let now = now_secs();
    state.tokens.retain(|_, until| *until >= now);
    state.subjects.retain(|_, (_, until)| *until >= now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_cover_what_they_should() {
        let list = Revocations::default();
        let mut events = list.subscribe();
        let now = now_secs();
        list.revoke_token("t1", now + 60);
        assert!(list.is_revoked(&["t1"], "alice", now));
        assert!(!list.is_revoked(&["t2"], "alice", now));
        list.revoke_subject("bob", now + 60);
        assert!(list.is_revoked(&["t3"], "bob", now));
        assert!(
            !list.is_revoked(&["t4"], "bob", now + 5),
            "issued after the revocation"
        );
        assert!(matches!(
            events.try_recv(),
            Ok(pb::Revocation {
                target: Some(pb::revocation::Target::TokenId(_))
            })
        ));
        assert!(matches!(
            events.try_recv(),
            Ok(pb::Revocation {
                target: Some(pb::revocation::Target::Subject(_))
            })
        ));
    }

    #[test]
    fn expired_revocations_are_forgotten() {
        let list = Revocations::default();
        list.revoke_token("old", now_secs() - 1);
        list.revoke_token("new", now_secs() + 60);
        assert!(!list.is_revoked(&["old"], "x", 0));
        assert!(list.is_revoked(&["new"], "x", 0));
    }
}
