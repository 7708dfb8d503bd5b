//! Rebalancing after a scale-out. WebSockets live for hours, so new edge
//! pods would stay empty while the old ones stay full. Every edge given a
//! Redis publishes its connection count there each [`INTERVAL`]
//! (`sb:edges`: a hash, edge id → `<connections>:<unix ms>`; entries older
//! than [`STALE`] are ignored and removed) and reads everyone's. An edge
//! holding more than the fleet average by the threshold (a fraction of the
//! average) asks some of its joined clients to reconnect — close 1012
//! `shutting_down: edge is rebalancing; reconnect`, the same lossless hint
//! as a drain: the client resumes its session through whichever edge the
//! load balancer picks — at most `per_second` a second, never more than
//! its excess over the average, so the fleet converges without a storm.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_proto::ErrorCode;
use tokio::sync::watch;

use crate::signal_link::SignalLink;

/// How often counts are published and compared.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// A count older than this is from an edge that is gone.
pub const STALE: Duration = Duration::from_secs(5);
/// The fleet's counts.
const KEY: &str = "sb:edges";
/// Redis calls slower than this are skipped for this round.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Rebalancing settings.
#[derive(Debug, Clone)]
pub struct RebalanceConfig {
    /// The Redis where edges publish their counts: one URL (standalone),
    /// or a cluster's seed nodes (several, or one as `cluster+URL`).
    pub redis_urls: Vec<String>,
    /// Rebalance above `average × (1 + threshold)`; 0 turns it off (counts
    /// are still published).
    pub threshold: f64,
    /// Clients asked to reconnect per second at most.
    pub per_second: u32,
}

/// How many clients to ask to move now: the excess over the fleet average
/// (`mine` included), when it passes the threshold, at most `per_second`.
pub fn to_move(mine: usize, others: &[usize], threshold: f64, per_second: u32) -> usize {
    if threshold <= 0.0 || others.is_empty() {
        return 0;
    }
    let total = mine + others.iter().sum::<usize>();
    let average = total as f64 / (others.len() + 1) as f64;
    if (mine as f64) <= average * (1.0 + threshold) {
        return 0;
    }
    let excess = (mine as f64 - average).floor() as usize;
    excess.min(per_second as usize)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The other edges' fresh counts in `entries` (`id` → `count:ms`), and the
/// ids of stale ones.
fn fleet(entries: &[(String, String)], me: &str, now: u64) -> (Vec<usize>, Vec<String>) {
    let mut counts = Vec::new();
    let mut stale = Vec::new();
    for (id, value) in entries {
        if id == me {
            continue;
        }
        let parsed = value
            .split_once(':')
            .and_then(|(n, at)| Some((n.parse::<usize>().ok()?, at.parse::<u64>().ok()?)));
        match parsed {
            Some((n, at)) if now.saturating_sub(at) <= STALE.as_millis() as u64 => counts.push(n),
            _ => stale.push(id.clone()),
        }
    }
    (counts, stale)
}

/// One round: publish, read, maybe ask some clients to move. Returns how
/// many were asked.
async fn round(
    conn: &mut impl redis::aio::ConnectionLike,
    config: &RebalanceConfig,
    link: &SignalLink,
    me: &str,
) -> redis::RedisResult<usize> {
    let mine = link.connections();
    let now = now_ms();
    let entries: Vec<(String, String)> = redis::pipe()
        .hset(KEY, me, format!("{mine}:{now}"))
        .ignore()
        .pexpire(KEY, (STALE * 4).as_millis() as i64)
        .ignore()
        .hgetall(KEY)
        .query_async::<(Vec<(String, String)>,)>(conn)
        .await?
        .0;
    let (others, stale) = fleet(&entries, me, now);
    if !stale.is_empty() {
        let _: () = redis::cmd("HDEL")
            .arg(KEY)
            .arg(&stale)
            .query_async(conn)
            .await?;
    }
    let n = to_move(mine, &others, config.threshold, config.per_second);
    if n == 0 {
        return Ok(0);
    }
    let moved = link.kill_some(n, ErrorCode::ShuttingDown, "edge is rebalancing; reconnect");
    tracing::info!(
        connections = mine,
        fleet = ?others,
        asked = moved,
        "rebalancing: clients asked to reconnect elsewhere"
    );
    Ok(moved)
}

/// Standalone Redis or a cluster (the fleet's hash lives on one slot).
enum Client {
    Standalone(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

enum Connection {
    Standalone(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Client {
    fn new(urls: &[String]) -> redis::RedisResult<Self> {
        match urls {
            [url] if !url.starts_with("cluster+") => {
                Ok(Self::Standalone(redis::Client::open(url.as_str())?))
            }
            seeds => {
                let seeds: Vec<&str> = seeds
                    .iter()
                    .map(|s| s.trim_start_matches("cluster+"))
                    .collect();
                Ok(Self::Cluster(Box::new(redis::cluster::ClusterClient::new(
                    seeds,
                )?)))
            }
        }
    }

    async fn connect(&self) -> redis::RedisResult<Connection> {
        Ok(match self {
            Self::Standalone(c) => {
                Connection::Standalone(c.get_multiplexed_async_connection().await?)
            }
            Self::Cluster(c) => Connection::Cluster(c.get_async_connection().await?),
        })
    }
}

/// Publishes this edge's count and rebalances until `stop`; then removes
/// this edge from the fleet (a draining edge is not a place to move to).
pub async fn run(config: RebalanceConfig, link: SignalLink, mut stop: watch::Receiver<bool>) {
    let me = format!("edge-{:016x}", rand::random::<u64>());
    let client = match Client::new(&config.redis_urls) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = ?err.kind(), "rebalancing off: bad redis URL");
            return;
        }
    };
    let mut conn: Option<Connection> = None;
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = crate::stopped(&mut stop) => break,
        }
        let attempt = async {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(client.connect().await?),
            };
            match c {
                Connection::Standalone(c) => round(c, &config, &link, &me).await,
                Connection::Cluster(c) => round(c, &config, &link, &me).await,
            }
        };
        match tokio::time::timeout(REDIS_TIMEOUT, attempt).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::debug!(error = ?err.kind(), "rebalance round failed");
                conn = None;
            }
            Err(_) => conn = None,
        }
    }
    if let Some(c) = conn.as_mut() {
        let mut leave = redis::cmd("HDEL");
        leave.arg(KEY).arg(&me);
        let left = async {
            match c {
                Connection::Standalone(c) => leave.query_async::<()>(c).await,
                Connection::Cluster(c) => leave.query_async::<()>(c).await,
            }
        };
        let _ = tokio::time::timeout(REDIS_TIMEOUT, left).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_the_excess_over_the_average_paced_and_only_past_the_threshold() {
        // A new empty edge beside a full one: the full one moves half,
        // 20 a second.
        assert_eq!(to_move(1000, &[0], 0.2, 20), 20);
        assert_eq!(to_move(30, &[0], 0.2, 20), 15);
        // Within the threshold: nothing.
        assert_eq!(to_move(110, &[100], 0.2, 20), 0);
        assert_eq!(to_move(140, &[100], 0.2, 20), 0, "140 ≤ 120 × 1.2");
        assert_eq!(to_move(160, &[100], 0.2, 50), 30, "the excess over 130");
        // Alone, or turned off: nothing.
        assert_eq!(to_move(1000, &[], 0.2, 20), 0);
        assert_eq!(to_move(1000, &[0], 0.0, 20), 0);
        // Below the average: nothing.
        assert_eq!(to_move(10, &[100, 100], 0.2, 20), 0);
    }

    #[test]
    fn stale_and_unparseable_counts_are_left_out() {
        let now = 100_000;
        let entries = vec![
            ("me".to_owned(), format!("7:{now}")),
            ("fresh".to_owned(), format!("5:{}", now - 1000)),
            ("old".to_owned(), format!("9:{}", now - 60_000)),
            ("junk".to_owned(), "x".to_owned()),
        ];
        let (counts, stale) = fleet(&entries, "me", now);
        assert_eq!(counts, vec![5]);
        assert_eq!(stale, vec!["old".to_owned(), "junk".to_owned()]);
    }
}
