//! The node-local half of the Redis router: the connections attached to
//! this signal node, fed in seq order from its pub/sub channel, with gaps
//! filled from the session logs; and the node's heartbeat.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures_util::StreamExt;
use prost::Message as _;
use redis::Value;
use switchboard_proto::{ErrorCode, SessionId, pb};

use super::Sink;
use crate::store::{RedisConnection, StoreError};

/// Backoff bounds for the node's pub/sub subscription.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);
pub(super) fn log_key(sid: &str) -> String {
    format!("sb:{{{sid}}}:log")
}

/// Set of live signal nodes.
pub(super) const NODES: &str = "sb:nodes";
/// A node is dead once its heartbeat key has not been refreshed for this
/// long; it refreshes it every third of that.
pub(super) const NODE_TTL: Duration = Duration::from_secs(3);
pub(super) fn alive_key(node: &str) -> String {
    format!("sb:node:{node}:alive")
}

pub(super) fn channel(node: &str) -> String {
    format!("sb:node:{node}")
}

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
}

/// This node's attachments, fed by its pub/sub channel and by replays.
pub(super) struct Local {
    pub(super) attachments: Mutex<HashMap<SessionId, Attachment>>,
    pub(super) connection: RedisConnection,
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

    /// Takes message `seq` of `session`; hands out everything now in order,
    /// and starts a fill from the log when a gap shows.
    pub(super) fn offer(self: &Arc<Self>, session: SessionId, seq: u64, payload: Vec<u8>) {
        let mut attachments = self.lock();
        let Some(a) = attachments.get_mut(&session) else {
            return;
        };
        if seq < a.expected {
            return; // already delivered
        }
        a.pending.insert(seq, payload);
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

    /// Reads seqs `from..to` of `session` from its log and offers them.
    pub(super) async fn fill(self: Arc<Self>, session: SessionId, from: u64, to: u64) {
        let entries = read_log(&self.connection, session, from, to.saturating_sub(1)).await;
        if let Some(a) = self.lock().get_mut(&session) {
            a.filling = false;
        }
        match entries {
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
        let sessions: Vec<(SessionId, u64)> =
            self.lock().iter().map(|(s, a)| (*s, a.expected)).collect();
        for (session, from) in sessions {
            match read_log(&self.connection, session, from, u64::MAX).await {
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
        .arg(log_key(&session.to_string()))
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

/// Parses a node channel message.
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
    let (&kind, rest) = raw.split_first()?;
    let session = SessionId::parse(std::str::from_utf8(rest.get(..32)?).ok()?)?;
    let rest = rest.get(33..)?;
    let colon = rest.iter().position(|b| *b == b':')?;
    let number: u64 = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let tail = &rest[colon + 1..];
    match kind {
        b'M' => Some(NodeEvent::Message {
            session,
            seq: number,
            payload: tail.to_vec(),
        }),
        b'C' => {
            let text = std::str::from_utf8(tail).ok()?;
            let (code, reason) = text.split_once(':')?;
            Some(NodeEvent::Close {
                session,
                generation: number,
                code: ErrorCode::parse(code),
                reason: reason.to_owned(),
            })
        }
        _ => None,
    }
}

/// Registers the node and refreshes its heartbeat.
pub(super) async fn heartbeat(
    connection: &RedisConnection,
    node: &str,
) -> Result<(), redis::RedisError> {
    let mut conn = connection.clone();
    let _: () = redis::cmd("SET")
        .arg(alive_key(node))
        .arg(1)
        .arg("PX")
        .arg(NODE_TTL.as_millis() as u64)
        .query_async(&mut conn)
        .await?;
    let _: i64 = redis::cmd("SADD")
        .arg(NODES)
        .arg(node)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Refreshes the heartbeat until the process ends (a crashed node simply
/// stops, and the others reap it).
pub(super) async fn keep_alive(connection: RedisConnection, node: String) {
    loop {
        tokio::time::sleep(NODE_TTL / 3).await;
        if let Err(err) = heartbeat(&connection, &node).await {
            tracing::warn!(error = %err, "node heartbeat failed");
        }
    }
}

/// Keeps this node subscribed to its channel, catching up from the logs
/// after every (re)subscribe.
pub(super) async fn subscribe(
    client: redis::Client,
    channel: String,
    local: Arc<Local>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    let mut backoff = RESUBSCRIBE_MIN;
    loop {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match attempt.await {
            Ok(pubsub) => {
                backoff = RESUBSCRIBE_MIN;
                if let Some(tx) = subscribed.take() {
                    let _ = tx.send(());
                }
                local.catch_up().await;
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
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
                }
                tracing::warn!(channel = %channel, "node subscription lost; resubscribing");
            }
            Err(err) => {
                tracing::warn!(channel = %channel, error = %err, "node subscription failed")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}
