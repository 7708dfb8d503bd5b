//! The node-local half of the Redis router: the connections attached to
//! this signal node, fed in seq order from its pub/sub channel, with gaps
//! filled from the session logs; and the node's heartbeat.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use prost::Message as _;
use redis::{Script, Value};
use switchboard_proto::{ErrorCode, SessionId, pb};
use tokio::sync::watch;

use super::Sink;
use crate::store::{RedisConnection, StoreError, keys};

/// Backoff bounds for the node's pub/sub subscription.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

/// The stall budget: a node is dead, and may be reaped, once its heartbeat
/// has not been refreshed for this long. A replica that stalls for less
/// (CPU starvation, a pause, a short partition from Redis) keeps its
/// sessions; one that stalls for longer may find itself reaped on waking,
/// and is then fenced ([`Local::fence`]).
pub const NODE_TTL: Duration = Duration::from_secs(5);
/// How often a node refreshes its heartbeat.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Messages held for one session ahead of a gap before it is given up on
/// (the connection is closed and the client resumes from the log).
pub(super) const PENDING_CAP: usize = super::LOG_CAPACITY;

/// KEYS nodes, alive. ARGV node, ttl ms. Registers the node.
const REGISTER: &str = r#"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], 1, 'PX', ARGV[2])
return 1
"#;

/// KEYS nodes, alive. ARGV node, ttl ms. Refreshes the heartbeat of a
/// registered node; 0 when the node was reaped (fenced).
const RENEW: &str = r#"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], 1, 'PX', ARGV[2])
return 1
"#;

/// KEYS nodes, alive. ARGV node. Claims a dead node for reaping: 1 for
/// exactly one caller, and only once its heartbeat lapsed (atomic with
/// [`RENEW`], so a node either renews or is reaped, never both).
pub(super) const CLAIM_DEAD: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return redis.call('SREM', KEYS[1], ARGV[1])
"#;

/// One session attached to a connection on this node.
#[derive(Debug)]
pub(super) struct Attachment {
    pub(super) sink: Sink,
    pub(super) generation: u64,
    /// The next seq to hand to the connection.
    pub(super) expected: u64,
    /// Replaying after a resume: hold live messages until the replay is out.
    pub(super) live: bool,
    /// Messages that arrived ahead of `expected`.
    pub(super) pending: BTreeMap<u64, Vec<u8>>,
    pub(super) filling: bool,
    /// This node closed the connection (it was told to resume): nothing
    /// more goes to it; the attachment stays until the connection's end is
    /// reported, so the session is detached (and expires) as usual.
    pub(super) closed: bool,
}

/// This node's attachments, fed by its pub/sub channel and by replays.
pub(super) struct Local {
    pub(super) attachments: Mutex<HashMap<SessionId, Attachment>>,
    pub(super) connection: RedisConnection,
    /// The node's current name (a new one after every fence); its channel
    /// is `sb:node:<name>`.
    pub(super) node: watch::Sender<Arc<str>>,
    /// Between finding itself reaped and registering again.
    pub(super) fenced: AtomicBool,
}

fn send(sink: &Sink, seq: u64, payload: &[u8]) {
    match pb::ServerMessage::decode(payload) {
        Ok(mut message) => {
            message.seq = seq;
            sink.send(pb::signal_envelope::Event::Message(message));
        }
        Err(err) => tracing::error!(seq, error = %err, "undecodable message in a session log"),
    }
}

impl Local {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Attachment>> {
        self.attachments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's current name.
    pub(super) fn node(&self) -> Arc<str> {
        self.node.borrow().clone()
    }

    /// Takes message `seq` of `session`; hands out everything now in order,
    /// and starts a fill from the log when a gap shows.
    pub(super) fn offer(self: &Arc<Self>, session: SessionId, seq: u64, payload: Vec<u8>) {
        let mut attachments = self.lock();
        let Some(a) = attachments.get_mut(&session) else {
            return;
        };
        if seq < a.expected || a.closed {
            return; // already delivered, or nobody to deliver to
        }
        a.pending.insert(seq, payload);
        if a.pending.len() > PENDING_CAP {
            // Bounded: a gap this wide is not worth waiting for.
            let generation = a.generation;
            drop(attachments);
            self.lost(session, generation, "too many messages behind a gap");
            return;
        }
        if a.live {
            flush(a);
            if !a.pending.is_empty() && !a.filling {
                a.filling = true;
                let (from, to) = (
                    a.expected,
                    a.pending.keys().next().copied().unwrap_or(a.expected),
                );
                let local = self.clone();
                tokio::spawn(async move { local.fill(session, from, to).await });
            }
        }
    }

    /// The connection can no longer be fed in order (what it misses is no
    /// longer in the log, or too much piled up behind a gap): close it
    /// with a retryable code, so the client resumes and learns from
    /// `Resumed.complete` whether history was lost. Never silence.
    fn lost(&self, session: SessionId, generation: u64, why: &str) {
        tracing::warn!(session = %session, why, "session stream broken; client told to resume");
        self.shut(
            session,
            generation,
            "messages were lost in transit; resume to continue",
        );
    }

    /// Closes the connection of an attachment (`unavailable`, retryable:
    /// the client resumes) but keeps the attachment, marked closed, until
    /// the connection's end is reported: then the session is detached and
    /// expires like any lost connection.
    pub(super) fn shut(&self, session: SessionId, generation: u64, reason: &str) {
        let mut attachments = self.lock();
        if let Some(a) = attachments
            .get_mut(&session)
            .filter(|a| a.generation == generation && !a.closed)
        {
            a.closed = true;
            a.pending.clear();
            a.sink.send_close(Some(ErrorCode::Unavailable), reason);
        }
    }

    /// Reads seqs `from..to` of `session` from its log and offers them.
    pub(super) async fn fill(self: Arc<Self>, session: SessionId, from: u64, to: u64) {
        let entries = read_log(&self.connection, session, from, to.saturating_sub(1)).await;
        let generation = {
            let mut attachments = self.lock();
            let Some(a) = attachments.get_mut(&session).filter(|a| !a.closed) else {
                return;
            };
            a.filling = false;
            a.generation
        };
        match entries {
            // The log no longer holds the start of the gap: it was trimmed.
            Ok(entries) if entries.first().is_none_or(|(seq, _)| *seq != from) => {
                self.lost(session, generation, "gap older than the log")
            }
            Ok(entries) => {
                for (seq, payload) in entries {
                    self.offer(session, seq, payload);
                }
            }
            Err(err) => tracing::warn!(session = %session, error = %err, "gap fill failed"),
        }
    }

    /// Catches every attached session up from its log (after a
    /// (re)subscribe, when pub/sub may have lost messages).
    pub(super) async fn catch_up(self: &Arc<Self>) {
        let sessions: Vec<(SessionId, u64, u64)> = self
            .lock()
            .iter()
            .filter(|(_, a)| !a.closed)
            .map(|(s, a)| (*s, a.expected, a.generation))
            .collect();
        for (session, from, generation) in sessions {
            match read_log(&self.connection, session, from, u64::MAX).await {
                Ok(entries) if entries.first().is_some_and(|(seq, _)| *seq > from) => {
                    self.lost(session, generation, "missed more than the log holds")
                }
                Ok(entries) => {
                    for (seq, payload) in entries {
                        self.offer(session, seq, payload);
                    }
                }
                Err(err) => tracing::warn!(session = %session, error = %err, "catch-up failed"),
            }
        }
    }

    /// A close published for a session attached here (generation `generation`,
    /// 0 = any).
    pub(super) fn close(
        &self,
        session: SessionId,
        generation: u64,
        code: Option<ErrorCode>,
        reason: &str,
    ) {
        let mut attachments = self.lock();
        let matches = attachments
            .get(&session)
            .is_some_and(|a| generation == 0 || a.generation == generation);
        if matches && let Some(a) = attachments.remove(&session) {
            a.sink.send_close(code, reason);
        }
    }

    /// This node was reaped while it stalled: the others detached its
    /// sessions, and nothing published for them reaches it any more. Close
    /// every attachment at once with a retryable code (clients resume, on
    /// any replica, from the logs: nothing is lost) and take a new name, so
    /// the reaper's late work on the old name cannot touch sessions
    /// attached afresh.
    pub(super) fn fence(&self) -> Arc<str> {
        self.fenced.store(true, Ordering::Release);
        let attachments: Vec<(SessionId, u64)> = self
            .lock()
            .iter()
            .map(|(s, a)| (*s, a.generation))
            .collect();
        tracing::warn!(
            node = %self.node(),
            sessions = attachments.len(),
            "this node was reaped while it stalled; its clients resume"
        );
        // The reaper detached them (and scheduled their end) under the old
        // name; the attachments go when their connections' ends arrive.
        for (session, generation) in attachments {
            self.shut(
                session,
                generation,
                "signal replica lost its registration; resume to continue",
            );
        }
        let name: Arc<str> = new_node_name().into();
        self.node.send_replace(name.clone());
        name
    }
}

/// A fresh, unique node name.
pub(super) fn new_node_name() -> String {
    format!("signal-{}", SessionId::random())
}

pub(super) fn flush(a: &mut Attachment) {
    while let Some(payload) = a.pending.remove(&a.expected) {
        send(&a.sink, a.expected, &payload);
        a.expected += 1;
    }
}

/// Entries `from..=to` of a session log as (seq, payload).
pub(super) async fn read_log(
    connection: &RedisConnection,
    session: SessionId,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let end = if to == u64::MAX {
        "+".to_owned()
    } else {
        format!("{to}-0")
    };
    let reply: Value = redis::cmd("XRANGE")
        .arg(keys::log(&session.to_string()))
        .arg(format!("{from}-0"))
        .arg(end)
        .query_async(&mut connection.clone())
        .await
        .map_err(|e| StoreError(e.to_string()))?;
    let entries: Vec<(String, HashMap<String, Vec<u8>>)> =
        redis::from_redis_value(reply).map_err(|e| StoreError(e.to_string()))?;
    Ok(entries
        .into_iter()
        .filter_map(|(id, mut fields)| {
            let seq = id.split('-').next()?.parse().ok()?;
            Some((seq, fields.remove("m")?))
        })
        .collect())
}

/// A node channel message, decoded (protobuf `NodeEvent` of the schema).
enum NodeEvent {
    Message {
        session: SessionId,
        seq: u64,
        payload: Vec<u8>,
    },
    Close {
        session: SessionId,
        generation: u64,
        code: Option<ErrorCode>,
        reason: String,
    },
}

fn parse_event(raw: &[u8]) -> Option<NodeEvent> {
    match pb::NodeEvent::decode(raw).ok()?.event? {
        pb::node_event::Event::Message(m) => Some(NodeEvent::Message {
            session: SessionId::parse(&m.session)?,
            seq: m.seq,
            payload: m.message,
        }),
        pb::node_event::Event::Close(c) => Some(NodeEvent::Close {
            session: SessionId::parse(&c.session)?,
            generation: c.generation,
            code: ErrorCode::of(c.code),
            reason: c.reason,
        }),
    }
}

/// Registers the node (or, with `renew`, refreshes its heartbeat; false
/// when it was reaped). Bypasses the breaker.
pub(super) async fn heartbeat(
    connection: &RedisConnection,
    node: &str,
    renew: bool,
) -> Result<bool, redis::RedisError> {
    let script = Script::new(if renew { RENEW } else { REGISTER });
    let registered: i64 = script
        .key(keys::NODES)
        .key(keys::alive(node))
        .arg(node)
        .arg(NODE_TTL.as_millis() as u64)
        .invoke_async(&mut connection.unguarded())
        .await?;
    Ok(registered == 1)
}

/// Refreshes the heartbeat until `stop` closes (its router is dropped); a
/// node that finds itself reaped is fenced and registers again under a new
/// name.
pub(super) async fn keep_alive(local: Arc<Local>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            _ = stop.changed() => return,
        }
        loop {
            let (node, fenced) = (local.node(), local.fenced.load(Ordering::Acquire));
            match heartbeat(&local.connection, &node, !fenced).await {
                Ok(true) => {
                    if fenced {
                        local.fenced.store(false, Ordering::Release);
                        tracing::info!(node = %node, "registered again after a fence");
                    }
                    break;
                }
                // Reaped: fence, then register the new name at once.
                Ok(false) => {
                    local.fence();
                }
                // A fenced node stays fenced (not ready) until it registers.
                Err(err) => {
                    tracing::warn!(error = %err, fenced, "node heartbeat failed");
                    break;
                }
            }
        }
    }
}

/// Keeps this node subscribed to its channel (following its name),
/// catching up from the logs after every (re)subscribe, until `stop`
/// closes (its router is dropped).
pub(super) async fn subscribe(
    client: redis::Client,
    local: Arc<Local>,
    subscribed: tokio::sync::oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut subscribed = Some(subscribed);
    let mut backoff = RESUBSCRIBE_MIN;
    let mut names = local.node.subscribe();
    loop {
        let channel = keys::channel(&names.borrow_and_update());
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            attempt = attempt => attempt,
            _ = stop.changed() => return,
        };
        match attempt {
            Ok(pubsub) => {
                backoff = RESUBSCRIBE_MIN;
                if let Some(tx) = subscribed.take() {
                    let _ = tx.send(());
                }
                local.catch_up().await;
                let mut messages = pubsub.into_on_message();
                let renamed = loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        // Renamed (fenced): subscribe to the new channel now.
                        _ = names.changed() => break true,
                        _ = stop.changed() => return,
                    };
                    let Some(message) = message else {
                        tracing::warn!(channel = %channel, "node subscription lost; resubscribing");
                        break false;
                    };
                    match parse_event(message.get_payload_bytes()) {
                        Some(NodeEvent::Message {
                            session,
                            seq,
                            payload,
                        }) => local.offer(session, seq, payload),
                        Some(NodeEvent::Close {
                            session,
                            generation,
                            code,
                            reason,
                        }) => local.close(session, generation, code, &reason),
                        None => tracing::warn!("malformed node event"),
                    }
                };
                if renamed {
                    continue;
                }
            }
            Err(err) => {
                tracing::warn!(channel = %channel, error = %err, "node subscription failed")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = names.changed() => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}
