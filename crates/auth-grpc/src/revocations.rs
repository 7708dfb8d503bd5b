//! Revoked tokens and users. A revocation is kept as long as a token it
//! covers could still be valid, then forgotten. Every revocation is
//! broadcast, so edges can close live sessions holding it.
//!
//! Verification reads the in-memory list only (fast, and it keeps working
//! through a Redis outage). With Redis configured ([`Revocations::share`]),
//! revocations are also written there (`sb:revoked:token:<jti>`,
//! `sb:revoked:subject:<sub>`, each with a TTL equal to the revocation's
//! remaining life) and published on `sb:revocations`; every auth replica
//! applies what the others publish, and reloads the whole list after every
//! (re)subscribe, so a missed message is never missed for long.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures_util::StreamExt;
use prost::Message as _;
use switchboard_proto::pb;
use tokio::sync::broadcast;

use crate::now_secs;

/// Revocation events buffered per slow watcher before it lags (and then
/// re-checks everything it holds).
const EVENT_BUFFER: usize = 1024;
/// The channel auth replicas share revocations on.
const CHANNEL: &str = "sb:revocations";
const TOKEN_PREFIX: &str = "sb:revoked:token:";
const SUBJECT_PREFIX: &str = "sb:revoked:subject:";
const SPENT_PREFIX: &str = "sb:refresh-spent:";

#[derive(Debug, Default)]
struct State {
    /// `jti` → until when to remember it.
    tokens: HashMap<String, u64>,
    /// `sub` → (tokens issued at or before this are revoked, remember until).
    subjects: HashMap<String, (u64, u64)>,
    /// Refresh token `jti`s already exchanged → until when to remember.
    spent: HashMap<String, u64>,
}

/// Where revocations are shared, once configured.
struct Shared {
    connection: redis::aio::ConnectionManager,
    /// This replica's id: its own published events are not applied twice.
    origin: String,
}

/// The revocation list of one auth process (shared through Redis when
/// configured).
pub struct Revocations {
    state: Mutex<State>,
    events: broadcast::Sender<pb::Revocation>,
    shared: Mutex<Option<Arc<Shared>>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations").finish_non_exhaustive()
    }
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            events: broadcast::channel(EVENT_BUFFER).0,
            shared: Mutex::default(),
        }
    }
}

/// Why a revocation could not be shared.
#[derive(Debug, thiserror::Error)]
#[error("revocation store unavailable: {0}")]
pub struct RevocationStoreError(String);

impl Revocations {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shared(&self) -> Option<Arc<Shared>> {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `event` to the local list and tells local watchers, if it
    /// revokes more than the list already did.
    fn apply(&self, event: pb::Revocation) {
        let mut state = self.lock();
        purge(&mut state);
        let new = insert(&mut state, &event);
        drop(state);
        if new {
            let _ = self.events.send(event);
        }
    }

    /// Everything revoked now, and the events from then on: subscribed
    /// under the lock, so nothing falls between (an event may come twice).
    pub fn watch(&self) -> (Vec<pb::Revocation>, broadcast::Receiver<pb::Revocation>) {
        let mut state = self.lock();
        purge(&mut state);
        let events = self.events.subscribe();
        let tokens = state.tokens.iter().map(|(jti, until)| pb::Revocation {
            target: Some(pb::revocation::Target::TokenId(jti.clone())),
            expires_at: *until,
        });
        let subjects = state
            .subjects
            .iter()
            .map(|(subject, (before, until))| pb::Revocation {
                target: Some(pb::revocation::Target::Subject(pb::SubjectRevocation {
                    subject: subject.clone(),
                    before: *before,
                })),
                expires_at: *until,
            });
        (tokens.chain(subjects).collect(), events)
    }

    /// Records `event` here and, when shared, in Redis for every replica.
    async fn record(&self, event: pb::Revocation) -> Result<(), RevocationStoreError> {
        self.apply(event.clone());
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        let ttl = event.expires_at.saturating_sub(now_secs()).max(1);
        let (key, value) = match &event.target {
            Some(pb::revocation::Target::TokenId(jti)) => {
                (format!("{TOKEN_PREFIX}{jti}"), "1".to_owned())
            }
            Some(pb::revocation::Target::Subject(s)) => (
                format!("{SUBJECT_PREFIX}{}", s.subject),
                s.before.to_string(),
            ),
            None => return Ok(()),
        };
        let mut payload = format!("{}:", shared.origin).into_bytes();
        payload.extend(event.encode_to_vec());
        let mut connection = shared.connection.clone();
        let result: redis::RedisResult<()> = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("EX")
            .arg(ttl)
            .ignore()
            .cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(payload)
            .ignore()
            .query_async(&mut connection)
            .await;
        result.map_err(|e| RevocationStoreError(e.to_string()))
    }

    /// Revokes token `jti` until `until` (its expiry).
    pub async fn revoke_token(&self, jti: &str, until: u64) -> Result<(), RevocationStoreError> {
        self.record(pb::Revocation {
            target: Some(pb::revocation::Target::TokenId(jti.to_owned())),
            expires_at: until,
        })
        .await
    }

    /// Revokes everything issued to `sub` up to now, remembered until
    /// `until` (the longest a session could still run).
    pub async fn revoke_subject(&self, sub: &str, until: u64) -> Result<(), RevocationStoreError> {
        self.record(pb::Revocation {
            target: Some(pb::revocation::Target::Subject(pb::SubjectRevocation {
                subject: sub.to_owned(),
                before: now_secs(),
            })),
            expires_at: until,
        })
        .await
    }

    /// Marks refresh token `jti` exchanged (remembered until `until`, its
    /// expiry); false if it already was — here, or, when shared, on any
    /// replica (Redis `SET NX`).
    pub async fn spend(&self, jti: &str, until: u64) -> Result<bool, RevocationStoreError> {
        {
            let mut state = self.lock();
            purge(&mut state);
            if state.spent.insert(jti.to_owned(), until).is_some() {
                return Ok(false);
            }
        }
        let Some(shared) = self.shared() else {
            return Ok(true);
        };
        let mut connection = shared.connection.clone();
        let first: Option<String> = redis::cmd("SET")
            .arg(format!("{SPENT_PREFIX}{jti}"))
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(until.saturating_sub(now_secs()).max(1))
            .query_async(&mut connection)
            .await
            .map_err(|e| RevocationStoreError(e.to_string()))?;
        Ok(first.is_some())
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

    /// Shares revocations with every auth replica through Redis at `url`,
    /// following the others' until `stop`.
    pub async fn share(
        self: &Arc<Self>,
        url: &str,
        origin: String,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), RevocationStoreError> {
        let err = |e: redis::RedisError| RevocationStoreError(e.to_string());
        // TCP_NODELAY, which redis-rs leaves off (a command behind an
        // unacknowledged one would wait for a delayed ACK).
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(err)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(err)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        let connection = redis::aio::ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(err)?;
        *self.shared.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Shared {
            connection: connection.clone(),
            origin: origin.clone(),
        }));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(follow(
            self.clone(),
            client,
            connection,
            origin,
            ready_tx,
            stop,
        ));
        ready_rx
            .await
            .map_err(|_| RevocationStoreError("revocation subscription failed".into()))
    }

    /// Loads every revocation stored in Redis into the local list; tells
    /// local watchers only of those it did not hold (missed while the
    /// subscription was down), and purges once.
    async fn load(&self, connection: &mut redis::aio::ConnectionManager) -> redis::RedisResult<()> {
        let mut stored = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("sb:revoked:*")
                .arg("COUNT")
                .arg(1000)
                .query_async(connection)
                .await?;
            for key in keys {
                let (value, ttl): (Option<String>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("TTL")
                    .arg(&key)
                    .query_async(connection)
                    .await?;
                let (Some(value), true) = (value, ttl > 0) else {
                    continue;
                };
                let expires_at = now_secs() + ttl as u64;
                let target = if let Some(jti) = key.strip_prefix(TOKEN_PREFIX) {
                    pb::revocation::Target::TokenId(jti.to_owned())
                } else if let Some(subject) = key.strip_prefix(SUBJECT_PREFIX) {
                    let before = value.parse().unwrap_or(0);
                    pb::revocation::Target::Subject(pb::SubjectRevocation {
                        subject: subject.to_owned(),
                        before,
                    })
                } else {
                    continue;
                };
                stored.push(pb::Revocation {
                    target: Some(target),
                    expires_at,
                });
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut state = self.lock();
        purge(&mut state);
        let new: Vec<_> = stored
            .into_iter()
            .filter(|event| insert(&mut state, event))
            .collect();
        drop(state);
        for event in new {
            let _ = self.events.send(event);
        }
        Ok(())
    }
}

/// Follows the revocation channel, reloading the list after every
/// (re)subscribe, until `stop`.
async fn follow(
    revocations: Arc<Revocations>,
    client: redis::Client,
    mut connection: redis::aio::ConnectionManager,
    origin: String,
    ready: tokio::sync::oneshot::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            revocations.load(&mut connection).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let subscribed = tokio::select! {
            subscribed = subscribed => subscribed,
            _ = stop.wait_for(|s| *s) => return,
        };
        match subscribed {
            Ok(pubsub) => {
                backoff = Duration::from_millis(50);
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    let Some(message) = message else { break };
                    let payload = message.get_payload_bytes();
                    let Some(colon) = payload.iter().position(|b| *b == b':') else {
                        continue;
                    };
                    if payload[..colon] == *origin.as_bytes() {
                        continue; // applied when it was recorded
                    }
                    if let Ok(event) = pb::Revocation::decode(&payload[colon + 1..]) {
                        revocations.apply(event);
                    }
                }
                tracing::warn!("revocation subscription lost; resubscribing");
            }
            Err(err) => tracing::warn!(error = %err, "revocation subscription failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Adds `event` to `state`; true if it revokes something not revoked
/// before (a new id, a later `before`).
fn insert(state: &mut State, event: &pb::Revocation) -> bool {
    match &event.target {
        Some(pb::revocation::Target::TokenId(jti)) => {
            let until = state.tokens.entry(jti.clone()).or_insert(0);
            let new = *until == 0;
            *until = (*until).max(event.expires_at);
            new
        }
        Some(pb::revocation::Target::Subject(s)) => {
            let entry = state.subjects.entry(s.subject.clone()).or_insert((0, 0));
            let new = s.before > entry.0;
            *entry = (entry.0.max(s.before), entry.1.max(event.expires_at));
            new
        }
        None => false,
    }
}

fn purge(state: &mut State) {
    let now = now_secs();
    state.tokens.retain(|_, until| *until >= now);
    state.subjects.retain(|_, (_, until)| *until >= now);
    state.spent.retain(|_, until| *until >= now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revocations_cover_what_they_should() {
        let list = Revocations::default();
        let mut events = list.subscribe();
        let now = now_secs();
        list.revoke_token("t1", now + 60).await.expect("revoke");
        assert!(list.is_revoked(&["t1"], "alice", now));
        assert!(!list.is_revoked(&["t2"], "alice", now));
        list.revoke_subject("bob", now + 60).await.expect("revoke");
        assert!(list.is_revoked(&["t3"], "bob", now));
        assert!(
            !list.is_revoked(&["t4"], "bob", now + 5),
            "issued after the revocation"
        );
        assert!(matches!(
            events.try_recv(),
            Ok(pb::Revocation {
                target: Some(pb::revocation::Target::TokenId(_)),
                ..
            })
        ));
        assert!(matches!(
            events.try_recv(),
            Ok(pb::Revocation {
                target: Some(pb::revocation::Target::Subject(_)),
                ..
            })
        ));
    }

    /// A revocation the list holds already (a replica's reload, a replayed
    /// event) is not broadcast again; a watcher gets what is revoked now
    /// and then only what is new.
    #[tokio::test]
    async fn only_new_revocations_are_broadcast_and_a_watch_starts_with_the_list() {
        let list = Revocations::default();
        let now = now_secs();
        list.revoke_token("t1", now + 60).await.expect("revoke");
        list.revoke_subject("bob", now + 60).await.expect("revoke");
        let (current, mut events) = list.watch();
        assert_eq!(current.len(), 2, "{current:?}");
        list.apply(current[0].clone());
        list.apply(current[1].clone());
        assert!(events.try_recv().is_err(), "nothing new, nothing sent");
        list.revoke_token("t2", now + 60).await.expect("revoke");
        assert!(matches!(
            events.try_recv(),
            Ok(pb::Revocation { target: Some(pb::revocation::Target::TokenId(id)), .. }) if id == "t2"
        ));
    }

    #[tokio::test]
    async fn expired_revocations_are_forgotten() {
        let list = Revocations::default();
        list.revoke_token("old", now_secs() - 1)
            .await
            .expect("revoke");
        list.revoke_token("new", now_secs() + 60)
            .await
            .expect("revoke");
        assert!(!list.is_revoked(&["old"], "x", 0));
        assert!(list.is_revoked(&["new"], "x", 0));
    }
}
