//! The connection every Redis-backed part uses: standalone (reconnecting)
//! or cluster, every call bounded by [`REDIS_TIMEOUT`], behind a circuit
//! breaker.
//!
//! Circuit breaker: the first call that fails on I/O (or times out) opens
//! the circuit; while it is open every call fails at once with an error,
//! without touching the network, so a Redis outage costs each request
//! microseconds, not a timeout, and a lane of requests never queues behind
//! a dead server. The readiness probe keeps sending PING (which bypasses
//! the breaker); the first PING that succeeds closes it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
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
}

impl RedisConnection {
    /// Connects to `urls`: one URL is standalone Redis; several are the
    /// seed nodes of a cluster (prefix a single seed with `cluster+` to use
    /// cluster mode with one seed).
    pub async fn connect(urls: &[String]) -> Result<Self, StoreError> {
        let err = |e: redis::RedisError| StoreError(e.to_string());
        let link = match urls {
            [url] if !url.starts_with("cluster+") => {
                let client = redis::Client::open(url.as_str()).map_err(err)?;
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
        })
    }

    /// Whether Redis answers PING now. Bypasses the breaker, and closes it
    /// (or opens it) by the answer.
    pub async fn ping(&self) -> bool {
        let mut link = self.link.clone();
        let cmd = redis::cmd("PING");
        let pong = bounded(link.request(&cmd)).await;
        let up = matches!(pong, Ok(Value::SimpleString(ref s)) if s == "PONG");
        self.open.store(!up, Ordering::Release);
        up
    }

    /// Whether the circuit is open (Redis considered down).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn refused<T>() -> redis::RedisResult<T> {
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "redis unavailable (circuit open)",
        )))
    }

    fn observe<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        let failed = result.as_ref().err().filter(|err| {
            err.is_io_error()
                || err.is_timeout()
                || err.is_connection_dropped()
                || err.is_connection_refusal()
        });
        if let Some(err) = failed
            && !self.open.swap(true, Ordering::AcqRel)
        {
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
            if self.is_open() {
                return Self::refused();
            }
            let result = bounded(self.link.request(cmd)).await;
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
            if self.is_open() {
                return Self::refused();
            }
            let call = match &mut self.link {
                Link::Standalone(c) => c.req_packed_commands(cmd, offset, count),
                Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            };
            let result = bounded(call).await;
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
