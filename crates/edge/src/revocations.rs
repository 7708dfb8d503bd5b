//! What a revocation closes, and the revocations of the last moments: a
//! connection that was verifying its token when a revocation arrived checks
//! them once it is registered, so no revocation falls between verify and
//! registration (a revocation after registration reaches it directly).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use switchboard_proto::pb;
use tokio::time::Instant;

use crate::conns::ConnAuth;

/// How long a revocation is remembered: longer than any verify call
/// (3 s) plus the wait for a lane.
const REMEMBER: Duration = Duration::from_secs(30);
/// Most revocations remembered; a burst beyond it keeps the newest.
const REMEMBER_MAX: usize = 4096;

/// Whether `revocation` ends a connection authenticated as `auth`.
pub fn revokes(revocation: &pb::Revocation, auth: &ConnAuth) -> bool {
    match &revocation.target {
        Some(pb::revocation::Target::TokenId(jti)) => auth.holds(jti),
        Some(pb::revocation::Target::Subject(s)) => {
            auth.subject == s.subject && auth.auth_time <= s.before
        }
        None => false,
    }
}

/// Several revocations, matched against a connection at once.
#[derive(Debug, Default)]
pub struct RevocationSet {
    tokens: HashSet<String>,
    /// Subject → tokens first issued at or before this are revoked.
    subjects: HashMap<String, u64>,
}

impl RevocationSet {
    pub fn new(revocations: &[pb::Revocation]) -> Self {
        let mut set = Self::default();
        for revocation in revocations {
            match &revocation.target {
                Some(pb::revocation::Target::TokenId(jti)) => {
                    set.tokens.insert(jti.clone());
                }
                Some(pb::revocation::Target::Subject(s)) => {
                    let before = set.subjects.entry(s.subject.clone()).or_insert(0);
                    *before = (*before).max(s.before);
                }
                None => {}
            }
        }
        set
    }

    pub fn covers(&self, auth: &ConnAuth) -> bool {
        self.subjects
            .get(&auth.subject)
            .is_some_and(|before| auth.auth_time <= *before)
            || (!self.tokens.is_empty() && auth.holds_any(&self.tokens))
    }
}

/// Handle on the recently applied revocations.
#[derive(Debug, Clone, Default)]
pub struct RecentRevocations {
    inner: Arc<Mutex<VecDeque<(Instant, pb::Revocation)>>>,
}

impl RecentRevocations {
    /// Remembers `revocation`; call before applying it to the live
    /// connections.
    pub fn record(&self, revocation: pb::Revocation) {
        let now = Instant::now();
        let mut recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > REMEMBER)
            || recent.len() >= REMEMBER_MAX
        {
            recent.pop_front();
        }
        recent.push_back((now, revocation));
    }

    /// Whether a remembered revocation ends `auth`; call after the
    /// connection is registered.
    pub fn any_revokes(&self, auth: &ConnAuth) -> bool {
        let recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().any(|(_, r)| revokes(r, auth))
    }
}
