//! The connection every Redis-backed part uses: standalone (reconnecting)
//! or cluster, every call bounded by [`REDIS_TIMEOUT`], behind a circuit
//! breaker.
//!
//! Circuit breaker (error rate over a window): calls are counted in a
//! tumbling window of [`BREAKER_WINDOW`]; when at least
//! [`BREAKER_MIN_FAILURES`] of them failed on I/O (or timed out) and the
//! failures are at least half of the calls, the circuit opens. While it is
//! open every call fails at once, without touching the network, so a Redis
//! outage costs each request microseconds, not a timeout, and a lane of
//! requests never queues behind a dead server. One slow call (a replica
//! waking from a stall, a GC-like pause) does not open it. The readiness
//! probe keeps writing and reading a canary (bypassing the breaker); the
//! first canary that succeeds closes it. The node heartbeat also bypasses it
//! ([`RedisConnection::unguarded`]), so a breaker opened by a burst of
//! timeouts never costs a node its registration.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};

use super::StoreError;

/// Redis calls slower than this fail (`unavailable`) instead of queueing.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// The breaker's counting window.
pub const BREAKER_WINDOW: Duration = Duration::from_secs(5);
/// Failures within a window that may open the breaker (if they are also at
/// least half of the window's calls).
pub const BREAKER_MIN_FAILURES: u32 = 3;
/// Lifetime of a readiness canary value.
const CANARY_TTL_MS: u64 = 10_000;

/// Calls and failures in the current window.
#[derive(Debug)]
struct Window {
    started: Instant,
    calls: u32,
    failures: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            calls: 0,
            failures: 0,
        }
    }

    /// Counts one call; true when the breaker should open.
    fn record(&mut self, failed: bool, now: Instant) -> bool {
        if now.duration_since(self.started) >= BREAKER_WINDOW {
            *self = Self::new(now);
        }
        self.calls += 1;
        self.failures += u32::from(failed);
        failed && self.failures >= BREAKER_MIN_FAILURES && self.failures * 2 >= self.calls
    }
}

#[derive(Clone)]
enum Link {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A connection to standalone Redis or to a cluster, with a breaker.
#[derive(Clone)]
pub struct RedisConnection {
    link: Link,
    /// Open circuit: Redis is considered down.
    open: Arc<AtomicBool>,
    window: Arc<Mutex<Window>>,
    /// Calls through this handle skip the breaker (see [`Self::unguarded`]).
    guarded: bool,
}

/// TCP for Redis: `TCP_NODELAY`, which redis-rs leaves off. Without it a
/// command written while the previous one is unacknowledged waits for the
/// peer's delayed ACK: the ≈ 40 ms tail of Redis mode.
pub(crate) fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

/// A client of the Redis at `url`, with [`tcp_settings`].
pub(crate) fn client(url: &str) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    redis::Client::open(url.into_connection_info()?.set_tcp_settings(tcp_settings()))
}

impl RedisConnection {
    /// Connects to `urls`: one URL is standalone Redis; several are the
    /// seed nodes of a cluster (prefix a single seed with `cluster+` to use
    /// cluster mode with one seed).
    pub async fn connect(urls: &[String]) -> Result<Self, StoreError> {
        let err = |e: redis::RedisError| StoreError(e.to_string());
        let link = match urls {
            [url] if !url.starts_with("cluster+") => {
                let client = client(url).map_err(err)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(REDIS_TIMEOUT);
                Link::Standalone(
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(err)?,
                )
            }
            seeds => {
                let seeds: Vec<&str> = seeds
                    .iter()
                    .map(|s| s.trim_start_matches("cluster+"))
                    .collect();
                let client = ClusterClient::builder(seeds)
                    .tcp_settings(tcp_settings())
                    .connection_timeout(REDIS_TIMEOUT)
                    .response_timeout(REDIS_TIMEOUT)
                    .build()
                    .map_err(err)?;
                Link::Cluster(client.get_async_connection().await.map_err(err)?)
            }
        };
        Ok(Self {
            link,
            open: Arc::default(),
            window: Arc::new(Mutex::new(Window::new(Instant::now()))),
            guarded: true,
        })
    }

    /// The same connection, but calls through it neither wait on nor feed
    /// the breaker (still bounded by [`REDIS_TIMEOUT`]): for the node
    /// heartbeat, which must reach Redis whenever Redis answers.
    pub fn unguarded(&self) -> Self {
        Self {
            guarded: false,
            ..self.clone()
        }
    }

    /// Whether Redis takes a write and gives it back now: a canary value
    /// written (`SET … PX`, under `key`) and read back. A Redis that answers
    /// PING but refuses writes (out of memory, a read-only replica after a
    /// failover, a full disk with `stop-writes-on-bgsave-error`) is down for
    /// signal. Bypasses the breaker; success closes it, a failure counts
    /// towards opening it.
    pub async fn canary(&self, key: &str) -> bool {
        let mut link = self.link.clone();
        let value = format!("{:016x}", rand::random::<u64>());
        let set = redis::cmd("SET")
            .arg(key)
            .arg(&value)
            .arg("PX")
            .arg(CANARY_TTL_MS)
            .clone();
        let get = redis::cmd("GET").arg(key).clone();
        let written = matches!(bounded(link.request(&set)).await, Ok(Value::Okay));
        let up = written
            && matches!(
                bounded(link.request(&get)).await,
                Ok(Value::BulkString(ref read)) if read == value.as_bytes()
            );
        if up {
            *self.lock_window() = Window::new(Instant::now());
            if self.open.swap(false, Ordering::AcqRel) {
                switchboard_proto::metrics::metrics()
                    .redis_circuit_open
                    .set(0);
                tracing::info!("redis circuit closed");
            }
        } else if self.lock_window().record(true, Instant::now())
            && !self.open.swap(true, Ordering::AcqRel)
        {
            switchboard_proto::metrics::metrics()
                .redis_circuit_open
                .set(1);
            tracing::warn!("redis circuit opened (canary failed)");
        }
        up
    }

    /// Whether the circuit is open (Redis considered down).
    /// Whether this is a Redis Cluster (keys of different slots cannot
    /// meet in one script).
    pub fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn refused<T>() -> redis::RedisResult<T> {
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "redis unavailable (circuit open)",
        )))
    }

    fn lock_window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if !self.guarded {
            return result;
        }
        let failed = result.as_ref().err().filter(|err| {
            err.is_io_error()
                || err.is_timeout()
                || err.is_connection_dropped()
                || err.is_connection_refusal()
        });
        let trip = self.lock_window().record(failed.is_some(), Instant::now());
        if trip
            && let Some(err) = failed
            && !self.open.swap(true, Ordering::AcqRel)
        {
            switchboard_proto::metrics::metrics()
                .redis_circuit_open
                .set(1);
            tracing::warn!(error = %err, "redis circuit opened");
        }
        result
    }
}

impl Link {
    fn request<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }
}

/// Records a Redis call's latency (and failure) in the metrics.
fn timed(start: std::time::Instant, failed: bool) {
    let metrics = switchboard_proto::metrics::metrics();
    metrics.redis_seconds.observe(start.elapsed().as_secs_f64());
    if failed {
        metrics.redis_errors.inc();
    }
}

/// Bounds a Redis call: a connection that is reconnecting must not hold a
/// request longer than [`REDIS_TIMEOUT`].
async fn bounded<T>(call: RedisFuture<'_, T>) -> redis::RedisResult<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "redis call timed out",
        ))),
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            if self.guarded && self.is_open() {
                switchboard_proto::metrics::metrics().redis_errors.inc();
                return Self::refused();
            }
            let start = std::time::Instant::now();
            let result = bounded(self.link.request(cmd)).await;
            timed(start, result.is_err());
            self.observe(result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            if self.guarded && self.is_open() {
                switchboard_proto::metrics::metrics().redis_errors.inc();
                return Self::refused();
            }
            let start = std::time::Instant::now();
            let call = match &mut self.link {
                Link::Standalone(c) => c.req_packed_commands(cmd, offset, count),
                Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            };
            let result = bounded(call).await;
            timed(start, result.is_err());
            self.observe(result)
        })
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Standalone(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_timeout_does_not_open_the_breaker_a_failure_rate_does() {
        let start = Instant::now();
        let mut window = Window::new(start);
        for _ in 0..20 {
            assert!(!window.record(false, start));
        }
        assert!(!window.record(true, start), "one slow call");
        assert!(!window.record(true, start));
        assert!(!window.record(true, start), "3 of 23 is no outage");
        // A new window: three failures out of three open it.
        let later = start + BREAKER_WINDOW;
        assert!(!window.record(true, later));
        assert!(!window.record(true, later));
        assert!(window.record(true, later));
    }
}
