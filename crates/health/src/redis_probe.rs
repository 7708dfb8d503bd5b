//! Probes Redis with PING every [`PROBE_INTERVAL`], each bounded by the
//! target timeout, over one reconnecting connection.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::state::{Observation, Probe};

/// How often Redis is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why a Redis URL was refused at start.
#[derive(Debug, thiserror::Error)]
#[error("health redis URL: {0}")]
pub struct RedisUrlError(String);

/// Checks a Redis URL at start (no connection is made).
pub fn client(url: &str) -> Result<redis::Client, RedisUrlError> {
    redis::Client::open(url).map_err(|e| RedisUrlError(e.to_string()))
}

/// Keeps `probe` up to date with Redis until `stop` fires.
pub async fn follow(
    client: redis::Client,
    timeout: Duration,
    probe: watch::Sender<Probe>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let started = Instant::now();
        let attempt = async {
            let conn = match connection.as_mut() {
                Some(conn) => conn,
                None => connection.insert(client.get_multiplexed_async_connection().await?),
            };
            redis::cmd("PING").query_async::<String>(conn).await
        };
        let seen = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(pong)) if pong == "PONG" => {
                probe.send_modify(|p| p.observe(Observation::Serving, Some(started.elapsed())));
                continue;
            }
            Ok(Ok(other)) => Observation::Unreachable(format!("unexpected answer {other:?}")),
            Ok(Err(err)) => Observation::Unreachable(format!("{:?}", err.kind())),
            Err(_) => Observation::Unreachable(format!("no answer in {} ms", timeout.as_millis())),
        };
        // Reconnect on the next probe: a stalled connection is not reused.
        connection = None;
        probe.send_modify(|p| p.observe(seen, None));
    }
}
