//! Signed webhooks: every room event (the `WatchRoomEvents` log) POSTed to
//! each configured endpoint, in order, at least once, signed
//! ([`signature`]).
//!
//! There is no separate delivery queue to overflow: each endpoint has a
//! dispatcher that reads the event log from its own cursor, posts the next
//! event until the endpoint answers 2xx (retrying with capped exponential
//! backoff and jitter, forever), then moves its cursor. An endpoint that is
//! down only falls behind; the bound is the log's retention (10,000 events
//! in memory, ≈ 100,000 in Redis). Past it, the dispatcher does not skip
//! silently: it logs an error and posts an `missed` event first, so the
//! receiver knows to rebuild its view (RoomService GetRoom, ListRooms).
//!
//! With Redis, one replica delivers to each endpoint (a lease), and the
//! cursor is shared: a replica that takes over continues after the last
//! acknowledged event. An event can be delivered twice (acknowledged, then
//! the holder died before saving the cursor): receivers de-duplicate by
//! its `id` (docs/api.md).

mod delivery;
mod progress;
pub mod signature;

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use switchboard_proto::{metrics::Metrics, pb, service_credential::ServiceCredential};
use tokio::{sync::watch, task::JoinHandle};

use delivery::{Endpoint, Poster};
pub use delivery::{EndpointError, SYSTEM_ROOTS};
use progress::{MemoryProgress, Progress, RedisProgress};

use crate::{events::EventLog, store::RedisConnection};

/// The header carrying the event's id (also in the body).
pub const EVENT_ID_HEADER: &str = "switchboard-event-id";
/// The header counting attempts at this event (1 = first).
pub const ATTEMPT_HEADER: &str = "switchboard-attempt";
/// How long one attempt may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's delay; each failure doubles it, up to
/// [`RETRY_MAX`] (each wait is half fixed, half random).
pub const RETRY_MIN: Duration = Duration::from_millis(500);
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often a replica without an endpoint's lease looks again.
const STANDBY_POLL: Duration = Duration::from_secs(1);

/// Where webhooks go and how they are signed.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    /// The API key whose secret signs (its id goes in `Switchboard-Key`).
    pub key: ServiceCredential,
    /// Roots for `https://` endpoints (default: the system bundle).
    pub ca_file: Option<PathBuf>,
    /// The first wait after a failed post, and the longest (doubling).
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Starts one dispatcher per endpoint; they stop when `stop` turns true.
/// `redis` shares cursors and leases between replicas.
pub fn start(
    config: &WebhookConfig,
    log: Arc<dyn EventLog>,
    redis: Option<RedisConnection>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, EndpointError> {
    let node = format!("{:016x}", rand::random::<u64>());
    // Event ids: the Redis stream's ids are unique for good; the memory
    // log's numbers restart with the process, so they get its boot id.
    let id_prefix = if redis.is_some() {
        String::new()
    } else {
        format!("{node}:")
    };
    let mut dispatchers = Vec::with_capacity(config.urls.len());
    for url in &config.urls {
        let endpoint = Endpoint::parse(url, config.ca_file.as_deref())?;
        let progress: Arc<dyn Progress> = match &redis {
            Some(connection) => Arc::new(RedisProgress::new(
                connection.clone(),
                endpoint.url(),
                node.clone(),
            )),
            None => Arc::new(MemoryProgress::default()),
        };
        dispatchers.push(Dispatcher {
            poster: Poster::new(endpoint),
            key: config.key.clone(),
            log: log.clone(),
            progress,
            stop: stop.clone(),
            id_prefix: id_prefix.clone(),
            retry: (
                config.retry_min.max(Duration::from_millis(1)),
                config.retry_max.max(config.retry_min),
            ),
        });
    }
    Ok(dispatchers
        .into_iter()
        .map(|d| tokio::spawn(d.run()))
        .collect())
}

/// What became of one event.
enum Outcome {
    Delivered,
    /// Stopping, or another replica took the endpoint over.
    Interrupted,
}

struct Dispatcher {
    poster: Poster,
    key: ServiceCredential,
    log: Arc<dyn EventLog>,
    progress: Arc<dyn Progress>,
    stop: watch::Receiver<bool>,
    id_prefix: String,
    /// The first and the longest wait between attempts.
    retry: (Duration, Duration),
}

impl Dispatcher {
    fn url(&self) -> String {
        self.poster.url().to_owned()
    }

    /// Waits `delay`; false if stopping meanwhile.
    async fn wait(&mut self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = self.stop.wait_for(|s| *s) => false,
        }
    }

    async fn run(mut self) {
        // The cursor of the last acknowledged event, while this replica
        // holds the lease (else read again from the shared progress).
        let mut cursor: Option<String> = None;
        while !*self.stop.borrow() {
            match self.progress.hold().await {
                Ok(true) => {}
                Ok(false) => {
                    cursor = None;
                    if !self.wait(STANDBY_POLL).await {
                        break;
                    }
                    continue;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "webhook lease unavailable");
                    if !self.wait(STANDBY_POLL).await {
                        break;
                    }
                    continue;
                }
            }
            let from = match cursor.clone() {
                Some(from) => from,
                None => match self.start_cursor().await {
                    Some(from) => from,
                    None => {
                        if !self.wait(STANDBY_POLL).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            cursor = Some(from.clone());
            let batch = match self.log.read(&from).await {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::warn!(error = %err, "webhook events unreadable");
                    if !self.wait(STANDBY_POLL).await {
                        break;
                    }
                    continue;
                }
            };
            if batch.missed {
                switchboard_proto::metrics::metrics().webhook_missed.inc();
                tracing::error!(
                    endpoint = %self.url(),
                    after = %from,
                    "webhook endpoint fell behind the event log's retention: events were lost, the receiver is told"
                );
                let missed = pb::RoomEvent {
                    cursor: format!("{from}~missed"),
                    at_ms: 0,
                    room: String::new(),
                    event: Some(pb::room_event::Event::Missed(pb::EventsMissed {})),
                };
                if let Outcome::Interrupted = self.deliver(&missed).await {
                    cursor = None;
                    continue;
                }
            }
            let idle = batch.events.is_empty();
            for event in &batch.events {
                match self.deliver(event).await {
                    Outcome::Delivered => {
                        cursor = Some(event.cursor.clone());
                        if let Err(err) = self.progress.save(&event.cursor).await {
                            // Kept here; saved with the next event.
                            tracing::warn!(error = %err, "webhook cursor not saved");
                        }
                    }
                    Outcome::Interrupted => {
                        cursor = None;
                        break;
                    }
                }
            }
            if cursor.is_some() && !batch.next.is_empty() && batch.missed {
                // Past what was lost, even if nothing followed it.
                cursor = Some(batch.next.clone());
            }
            if idle {
                let log = self.log.clone();
                tokio::select! {
                    () = log.changed() => {}
                    _ = self.stop.wait_for(|s| *s) => break,
                }
            }
        }
        self.progress.release().await;
    }

    /// Where to start: the shared cursor, or (first start) from now on.
    async fn start_cursor(&self) -> Option<String> {
        match self.progress.load().await {
            Ok(Some(cursor)) => Some(cursor),
            Ok(None) => {
                let now = self.log.now().await.ok()?;
                self.progress.save(&now).await.ok()?;
                Some(now)
            }
            Err(err) => {
                tracing::warn!(error = %err, "webhook cursor unavailable");
                None
            }
        }
    }

    /// Posts `event` until the endpoint takes it.
    async fn deliver(&mut self, event: &pb::RoomEvent) -> Outcome {
        let id = format!("{}{}", self.id_prefix, event.cursor);
        let body = match serde_json::to_vec(&serde_json::json!({ "id": id, "event": event })) {
            Ok(body) => Bytes::from(body),
            Err(err) => {
                tracing::error!(error = %err, "webhook event not encodable: skipped");
                return Outcome::Delivered;
            }
        };
        let (retry_min, retry_max) = self.retry;
        let mut delay = retry_min;
        for attempt in 1u64.. {
            let now = crate::router::now_ms() / 1000;
            let headers = [
                (
                    signature::SIGNATURE_HEADER,
                    signature::sign(self.key.secret().as_bytes(), now, &body),
                ),
                (signature::KEY_HEADER, self.key.key.clone()),
                (EVENT_ID_HEADER, id.clone()),
                (ATTEMPT_HEADER, attempt.to_string()),
            ];
            let mut stop = self.stop.clone();
            let posted = tokio::select! {
                posted = self.poster.post(body.clone(), &headers, REQUEST_TIMEOUT) => posted,
                _ = stop.wait_for(|s| *s) => return Outcome::Interrupted,
            };
            let metrics = switchboard_proto::metrics::metrics();
            let outcome = if posted.is_ok() {
                "delivered"
            } else {
                "failed"
            };
            Metrics::count(&metrics.webhook_deliveries, "outcome", outcome);
            match posted {
                Ok(()) => return Outcome::Delivered,
                Err(err) => tracing::warn!(
                    endpoint = %self.url(),
                    event = %id,
                    attempt,
                    error = %err,
                    "webhook delivery failed; retrying"
                ),
            }
            let jitter = delay.mul_f64(rand::random::<f64>() / 2.0);
            if !self.wait(delay / 2 + jitter).await {
                return Outcome::Interrupted;
            }
            delay = (delay * 2).min(retry_max);
            if matches!(self.progress.hold().await, Ok(false)) {
                return Outcome::Interrupted;
            }
        }
        Outcome::Interrupted
    }
}
