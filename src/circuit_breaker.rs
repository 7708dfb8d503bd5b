//! A circuit breaker for calls to something that can fail or hang (the
//! application's join hook today; issue 15 puts one on every hop).
//!
//! Algorithm (consecutive failures, one probe):
//! - **Closed**: calls pass. `threshold` failures in a row open it; a
//!   success resets the count.
//! - **Open**: calls fail fast, without being made, for `open_for`.
//! - **Half-open** (after `open_for`): one call passes as a probe; others
//!   still fail fast. The probe's success closes the breaker, its failure
//!   opens it for another `open_for`. A probe whose outcome is never
//!   reported (its caller dropped it) is given up after `open_for`, and
//!   another probe goes.
//!
//! Time is tokio's, so tests drive it with `tokio::time::pause()`.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

/// A breaker's thresholds: `failures` in a row open it for `open_for`.
/// (Consecutive failures, not an error rate over a window: a window needs
/// a minimum volume to mean anything, and the hops guarded here are quiet
/// at night and busy by day; a run of failures is the signal at any rate.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failures: u32,
    pub open_for: Duration,
}

/// What the breaker is doing (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out since `since`.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures, for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            open_for,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may be made now (in half-open: whether this one is
    /// the probe). Report its outcome with [`Self::success`] or
    /// [`Self::failure`].
    pub fn admit(&self) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => return true,
            State::Open { until } => now >= until,
            // The probe out is given up after `open_for`.
            State::HalfOpen { since } => now >= since + self.open_for,
        };
        if probe {
            *state = State::HalfOpen { since: now };
        }
        probe
    }

    pub fn success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    pub fn failure(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            State::Closed { .. } | State::HalfOpen { .. } => State::Open {
                until: now + self.open_for,
            },
            // A late report of a call admitted before it opened.
            State::Open { until } => State::Open { until },
        };
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_it_and_a_probe_closes_it() {
        let breaker = CircuitBreaker::new(3, OPEN_FOR);
        for _ in 0..2 {
            assert!(breaker.admit());
            breaker.failure();
        }
        // A success in between resets the count.
        assert!(breaker.admit());
        breaker.success();
        for _ in 0..3 {
            assert!(breaker.admit());
            breaker.failure();
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.admit(), "open: fails fast");
        tokio::time::advance(OPEN_FOR - Duration::from_millis(1)).await;
        assert!(!breaker.admit(), "still open just before open_for");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.admit(), "the probe");
        assert!(!breaker.admit(), "one probe at a time");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.admit());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_and_a_lost_one_is_given_up() {
        let breaker = CircuitBreaker::new(1, OPEN_FOR);
        assert!(breaker.admit());
        breaker.failure();
        tokio::time::advance(OPEN_FOR).await;
        assert!(breaker.admit(), "probe");
        breaker.failure();
        assert!(!breaker.admit(), "open again");
        tokio::time::advance(OPEN_FOR).await;
        assert!(breaker.admit(), "probe, whose outcome never comes");
        tokio::time::advance(OPEN_FOR - Duration::from_millis(1)).await;
        assert!(!breaker.admit());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.admit(), "a lost probe is replaced");
    }
}
