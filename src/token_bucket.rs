//! A token bucket (the edge's per-connection message rate, signal's
//! per-room data rate): each event takes a token; tokens refill at the
//! sustained rate up to the burst size.

use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: per_second.into(),
            burst: burst.into(),
            tokens: burst.into(),
            last: now,
        }
    }

    /// Whether the bucket would be full at `now` (unused long enough).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// Takes `cost` tokens whatever is left: the bucket may go into debt,
    /// at most one burst deep (so a penalty delays, never bars for good).
    pub fn charge(&mut self, cost: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = ((self.tokens + elapsed * self.rate).min(self.burst) - cost).max(-self.burst);
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| bucket.try_take(t0)).count(), 5);
        // 0.5 s later: 5 more tokens at 10/s.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..8).filter(|_| bucket.try_take(t1)).count(), 5);
        // Refill never exceeds the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(t2)).count(), 5);
    }
}
