//! Waiting on conditions with deadlines.

use std::{future::Future, time::Duration};

/// Default deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `check` until it returns true or `deadline` passes (then panics
/// with `what`).
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    let mut poll = tokio::time::interval(Duration::from_millis(5));
    loop {
        poll.tick().await;
        if check().await {
            return;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
    }
}
