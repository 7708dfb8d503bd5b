//! How fast the application's backend may send data into one room
//! (RoomService.SendData): a token bucket per room, on this replica (each
//! replica admits the rate on its own; a backend spreading calls over `n`
//! replicas gets at most `n` times it). The map is bounded: past
//! [`MAX_ROOMS_TRACKED`] rooms, full buckets (rooms idle long enough to
//! have refilled) are dropped first, and if none is, the call is refused
//! rather than the memory growing.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use switchboard_proto::{RoomId, token_bucket::TokenBucket};

/// SendData calls per second per room, sustained.
pub const DATA_PER_SECOND: u32 = 50;
/// SendData calls a room may take at once.
pub const DATA_BURST: u32 = 100;
/// Rooms whose rate is followed at once.
pub const MAX_ROOMS_TRACKED: usize = 10_000;

/// The per-room buckets of one replica.
#[derive(Debug, Default)]
pub struct DataRate {
    rooms: Mutex<HashMap<RoomId, TokenBucket>>,
}

impl DataRate {
    /// Whether one more call into `room` is within its rate, at `now`.
    pub fn admit(&self, room: &RoomId, now: Instant) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if !rooms.contains_key(room) && rooms.len() >= MAX_ROOMS_TRACKED {
            rooms.retain(|_, bucket| !bucket.is_full(now));
            if rooms.len() >= MAX_ROOMS_TRACKED {
                return false;
            }
        }
        rooms
            .entry(room.clone())
            .or_insert_with(|| TokenBucket::new(DATA_PER_SECOND, DATA_BURST, now))
            .try_take(now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_room_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let rate = DataRate::default();
        let (busy, quiet) = (
            RoomId::new("busy").expect("room"),
            RoomId::new("quiet").expect("room"),
        );
        let t0 = Instant::now();
        let admitted = (0..DATA_BURST * 2)
            .filter(|_| rate.admit(&busy, t0))
            .count();
        assert_eq!(admitted, DATA_BURST as usize);
        assert!(rate.admit(&quiet, t0), "another room has its own bucket");
        let later = t0 + Duration::from_millis(100);
        let refilled = (0..DATA_BURST).filter(|_| rate.admit(&busy, later)).count();
        assert_eq!(refilled, (DATA_PER_SECOND / 10) as usize);
    }
}
