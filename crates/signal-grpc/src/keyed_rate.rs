//! Rates per key on this replica: a token bucket per key (SendData per
//! room, messages per room, joins per identity). Each replica admits the rate on its own (a
//! client spreading calls over `n` replicas gets at most `n` times it).
//! The map is bounded: past [`MAX_KEYS`] keys, full buckets (keys idle long
//! enough to have refilled) are dropped first, and if none is, the call is
//! refused rather than the memory growing.

use std::{collections::HashMap, hash::Hash, sync::Mutex, time::Instant};

use switchboard_proto::token_bucket::TokenBucket;

/// SendData calls per second per room, sustained, and at once.
pub const DATA_PER_SECOND: u32 = 50;
pub const DATA_BURST: u32 = 100;
/// Signals and presence updates per second into one room, sustained, and
/// at once: far above what a room's calls need (a 10-way mesh setting up
/// at once exchanges ≈ 2,000 offers, answers and candidates), low enough
/// that one room cannot take a replica from the others.
pub const MESSAGES_PER_ROOM_PER_SECOND: u32 = 1_000;
pub const MESSAGE_BURST_PER_ROOM: u32 = 4_000;
/// Joins per second per identity, sustained, and at once; a join refused
/// after the token checked out costs [`FAILED_JOIN_COST`] more.
pub const JOINS_PER_SECOND: u32 = 5;
pub const JOIN_BURST: u32 = 20;
pub const FAILED_JOIN_COST: f64 = 4.0;
/// Keys followed at once.
pub const MAX_KEYS: usize = 10_000;

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// The defaults of SendData per room and joins per identity.
pub const DATA_RATE: Rate = Rate {
    per_second: DATA_PER_SECOND,
    burst: DATA_BURST,
};
pub const ROOM_MESSAGE_RATE: Rate = Rate {
    per_second: MESSAGES_PER_ROOM_PER_SECOND,
    burst: MESSAGE_BURST_PER_ROOM,
};
pub const JOIN_RATE: Rate = Rate {
    per_second: JOINS_PER_SECOND,
    burst: JOIN_BURST,
};

/// The per-key buckets of one replica.
#[derive(Debug)]
pub struct KeyedRate<K> {
    keys: Mutex<HashMap<K, TokenBucket>>,
    per_second: u32,
    burst: u32,
}

impl<K: Hash + Eq + Clone> KeyedRate<K> {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
            per_second: per_second.max(1),
            burst: burst.max(1),
        }
    }

    pub fn with(rate: Rate) -> Self {
        Self::new(rate.per_second, rate.burst)
    }

    /// The sustained rate, per second.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, TokenBucket>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether one more call for `key` is within its rate, at `now`.
    pub fn admit(&self, key: &K, now: Instant) -> bool {
        let mut keys = self.lock();
        if !keys.contains_key(key) && keys.len() >= MAX_KEYS {
            keys.retain(|_, bucket| !bucket.is_full(now));
            if keys.len() >= MAX_KEYS {
                return false;
            }
        }
        let (per_second, burst) = (self.per_second, self.burst);
        keys.entry(key.clone())
            .or_insert_with(|| TokenBucket::new(per_second, burst, now))
            .try_take(now)
    }

    /// Takes `cost` more from `key`'s bucket (a failure that costs more
    /// than a success); it may go into debt, down to one burst.
    pub fn charge(&self, key: &K, cost: f64, now: Instant) {
        if let Some(bucket) = self.lock().get_mut(key) {
            bucket.charge(cost, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use switchboard_proto::RoomId;

    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let rate = KeyedRate::new(DATA_PER_SECOND, DATA_BURST);
        let busy = RoomId::new("busy").expect("room");
        let quiet = RoomId::new("quiet").expect("room");
        let t0 = Instant::now();
        let admitted = (0..DATA_BURST * 2)
            .filter(|_| rate.admit(&busy, t0))
            .count();
        assert_eq!(admitted, DATA_BURST as usize);
        assert!(rate.admit(&quiet, t0), "another key has its own bucket");
        let later = t0 + Duration::from_millis(100);
        let refilled = (0..DATA_BURST).filter(|_| rate.admit(&busy, later)).count();
        assert_eq!(refilled, (DATA_PER_SECOND / 10) as usize);
    }

    #[test]
    fn failures_cost_more() {
        let rate = KeyedRate::new(JOINS_PER_SECOND, JOIN_BURST);
        let t0 = Instant::now();
        let mut admitted = 0;
        while rate.admit(&"mallory", t0) {
            admitted += 1;
            rate.charge(&"mallory", FAILED_JOIN_COST, t0);
        }
        assert_eq!(
            admitted,
            (JOIN_BURST as f64 / (1.0 + FAILED_JOIN_COST)).ceil() as usize
        );
        assert!(rate.admit(&"alice", t0));
    }
}
