//! The Redis [`Router`]: any replica delivers to any session.
//!
//! Per session (hash tag `{<session id>}`, one cluster slot; every key is
//! in [`crate::store::keys`]):
//! - `sb:{<sid>}:out`, a hash: `next_seq`, the resume token's digest, the
//!   `node` the session is attached to (empty = detached), the attachment
//!   `gen`, the log's size and the exactly-once marks;
//! - `sb:{<sid>}:log`, a stream holding at most [`LOG_CAPACITY`] messages
//!   and [`LOG_BYTES`] bytes, less what the client acknowledged; entry id
//!   `<seq>-0`, so a replay is an `XRANGE` by seq.
//!
//! Delivery is one script on the session's slot: take the next seq, append
//! to the log, and `PUBLISH` the message on the attached node's channel
//! `sb:node:<node>`. The node hands messages to its local connection in
//! seq order; a gap (pub/sub is at-most-once: a dropped subscriber loses
//! messages) is filled from the log, and after every (re)subscribe every
//! local session is caught up from its log. So the log, not pub/sub, is
//! what makes delivery lossless.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use prost::Message as _;
use redis::Script;
use switchboard_proto::{ErrorCode, LeaveReason, SessionId, pb};
use tokio::sync::watch;

use super::redis_scripts::{
    APPEND, DELIVER, DELIVER_MANY, DELIVER_TO, DETACH, DETACH_FROM_NODE, NODE_MESSAGE, OPEN,
    RESUME, START, TRIM,
};
use super::{
    Delivery, Expiry, Lost, Origin, ResumeRefused, Resumed, Router, Sink, new_resume_token,
    redis_node::{Attachment, CLAIM_DEAD, Local, heartbeat, keep_alive, new_node_name, subscribe},
};
use crate::store::{
    RedisConnection, StoreError,
    keys::{self, EXPIRIES, NODES},
};

/// Messages and bytes kept per session for resume (as in memory).
pub const LOG_CAPACITY: usize = super::LOG_CAPACITY;
pub const LOG_BYTES: usize = super::LOG_BYTES;

/// What Redis keeps of a resume token: its digest (the token itself is a
/// credential and never stored). An empty token stays empty (refused).
fn token_digest(token: &str) -> String {
    use sha1::{Digest, Sha1};
    if token.is_empty() {
        return String::new();
    }
    hex::encode(Sha1::digest(token.as_bytes()))
}

mod attach;

use attach::Granted;

fn out_key(sid: &str) -> String {
    keys::outbox(sid)
}

fn log_key(sid: &str) -> String {
    keys::log(sid)
}

/// Sessions and delivery over Redis, as one node (its name changes when it
/// is fenced).
pub struct RedisRouter {
    connection: RedisConnection,
    ttl: Duration,
    /// How long a detached session waits for a resume.
    resume_window: Duration,
    local: Arc<Local>,
    open: Script,
    start: Script,
    deliver: Script,
    deliver_many: Script,
    trim: Script,
    detach: Script,
    resume: Script,
    detach_from_node: Script,
    claim_dead: Script,
    /// The heartbeat and subscriber tasks watch it: dropping the router
    /// drops it, and they stop.
    _stop: watch::Sender<bool>,
}

impl std::fmt::Debug for RedisRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRouter")
            .field("node", &self.local.node())
            .finish_non_exhaustive()
    }
}

impl RedisRouter {
    /// A router for a node named `node` (unique per signal process; `None`
    /// picks one). `pubsub_url` is a Redis URL to subscribe through (any
    /// cluster node will do: a cluster forwards PUBLISH to every node). Key
    /// lifetime `ttl` is refreshed on every delivery; `resume_window` is
    /// how long a session it detaches itself waits for a resume. Its
    /// heartbeat and subscriber tasks stop when the router is dropped.
    pub async fn start(
        connection: RedisConnection,
        pubsub_url: &str,
        node: Option<String>,
        ttl: Duration,
        resume_window: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let client =
            crate::store::redis_client(pubsub_url).map_err(|e| StoreError(e.to_string()))?;
        let node: Arc<str> = node.unwrap_or_else(new_node_name).into();
        let local = Arc::new(Local {
            attachments: Mutex::default(),
            connection: connection.clone(),
            node: watch::Sender::new(node.clone()),
            fenced: AtomicBool::new(false),
        });
        heartbeat(&connection, &node, false).await.map_err(failed)?;
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(keep_alive(local.clone(), stop_rx.clone()));
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(subscribe(client, local.clone(), subscribed_tx, stop_rx));
        subscribed_rx
            .await
            .map_err(|_| StoreError("node subscription failed".into()))?;
        Ok(Arc::new(Self {
            connection,
            ttl,
            resume_window,
            local,
            open: Script::new(OPEN),
            start: Script::new(&format!("{NODE_MESSAGE}{APPEND}{START}")),
            deliver: Script::new(&format!("{NODE_MESSAGE}{APPEND}{DELIVER_TO}{DELIVER}")),
            deliver_many: Script::new(&format!("{NODE_MESSAGE}{APPEND}{DELIVER_TO}{DELIVER_MANY}")),
            trim: Script::new(TRIM),
            detach: Script::new(DETACH),
            resume: Script::new(RESUME),
            detach_from_node: Script::new(DETACH_FROM_NODE),
            claim_dead: Script::new(CLAIM_DEAD),
            _stop: stop,
        }))
    }

    /// This node's current name.
    pub fn node(&self) -> Arc<str> {
        self.local.node()
    }

    fn conn(&self) -> RedisConnection {
        self.connection.clone()
    }
}

/// A delivery script's arguments: the session, its message encoded (seq
/// unset: the script numbers it) and the origin ('' and 0 for none).
fn delivery_args(
    session: SessionId,
    message: pb::server_message::Message,
    origin: Option<Origin>,
) -> (String, Vec<u8>, String, u64) {
    let payload = pb::ServerMessage {
        seq: 0,
        message: Some(message),
    }
    .encode_to_vec();
    let (origin_session, origin_seq) = origin
        .map(|o| (o.session.to_string(), o.seq))
        .unwrap_or_default();
    (session.to_string(), payload, origin_session, origin_seq)
}

/// What a delivery script's seq says.
fn delivery(seq: i64) -> Delivery {
    match seq {
        0 => Delivery::Held,
        seq if seq < 0 => Delivery::Duplicate,
        seq => Delivery::Logged(seq as u64),
    }
}

fn failed(err: redis::RedisError) -> StoreError {
    StoreError(err.to_string())
}

#[async_trait]
impl Router for RedisRouter {
    async fn open(
        &self,
        session: SessionId,
        sink: Sink,
        resume_token: String,
    ) -> Result<(), StoreError> {
        let sid = session.to_string();
        let node = self.local.node();
        self.local.lock().insert(
            session,
            Attachment {
                sink,
                generation: 1,
                expected: 1,
                live: true,
                pending: BTreeMap::new(),
                filling: false,
                closed: false,
            },
        );
        let opened: Result<i64, _> = self
            .open
            .key(out_key(&sid))
            .key(log_key(&sid))
            .key(keys::held(&sid))
            .arg(token_digest(&resume_token))
            .arg(&*node)
            .arg(self.ttl.as_secs().max(1))
            .invoke_async(&mut self.conn())
            .await;
        if let Err(err) = opened {
            self.local.lock().remove(&session);
            return Err(failed(err));
        }
        self.track(&node, &sid).await?;
        self.check_fence(&node, session, 1).await;
        Ok(())
    }

    async fn deliver(
        &self,
        session: SessionId,
        message: pb::server_message::Message,
        origin: Option<Origin>,
    ) -> Result<Option<Delivery>, StoreError> {
        let (sid, payload, origin_session, origin_seq) = delivery_args(session, message, origin);
        let seq: Option<i64> = self
            .deliver
            .key(out_key(&sid))
            .key(log_key(&sid))
            .key(keys::held(&sid))
            .arg(&sid)
            .arg(payload)
            .arg(self.ttl.as_secs().max(1))
            .arg(LOG_CAPACITY)
            .arg(origin_session)
            .arg(origin_seq)
            .arg(LOG_BYTES)
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(seq.map(delivery))
    }

    async fn deliver_many(
        &self,
        items: Vec<(SessionId, pb::server_message::Message, Option<Origin>)>,
    ) -> Vec<Result<Option<Delivery>, StoreError>> {
        // A cluster keeps each session's keys in its own slot: one script
        // cannot touch several; deliver them one by one there.
        if items.len() < 2 || self.connection.is_cluster() {
            let mut results = Vec::with_capacity(items.len());
            for (session, message, origin) in items {
                results.push(self.deliver(session, message, origin).await);
            }
            return results;
        }
        let count = items.len();
        let mut call = self.deliver_many.prepare_invoke();
        call.arg(self.ttl.as_secs().max(1))
            .arg(LOG_CAPACITY)
            .arg(LOG_BYTES);
        for (session, message, origin) in items {
            let (sid, payload, origin_session, origin_seq) =
                delivery_args(session, message, origin);
            call.key(out_key(&sid))
                .key(log_key(&sid))
                .key(keys::held(&sid))
                .arg(&sid)
                .arg(payload)
                .arg(origin_session)
                .arg(origin_seq);
        }
        match call
            .invoke_async::<Vec<Option<i64>>>(&mut self.conn())
            .await
        {
            Ok(seqs) if seqs.len() == count => {
                seqs.into_iter().map(|seq| Ok(seq.map(delivery))).collect()
            }
            Ok(_) => (0..count)
                .map(|_| Err(StoreError("redis: short reply to a delivery".into())))
                .collect(),
            Err(err) => {
                let err = failed(err);
                (0..count).map(|_| Err(err.clone())).collect()
            }
        }
    }

    async fn start(
        &self,
        session: SessionId,
        first: pb::server_message::Message,
    ) -> Result<(), StoreError> {
        let sid = session.to_string();
        let payload = pb::ServerMessage {
            seq: 0,
            message: Some(super::for_log(&first)),
        }
        .encode_to_vec();
        // The session was opened here: its connection gets the whole first
        // message now, and the (secret-free) logged copy is skipped.
        if let Some(a) = self.local.lock().get_mut(&session)
            && a.expected == 1
        {
            a.sink
                .send(pb::signal_envelope::Event::Message(pb::ServerMessage {
                    seq: 1,
                    message: Some(first),
                }));
            a.expected = 2;
        }
        let _: Option<i64> = self
            .start
            .key(out_key(&sid))
            .key(log_key(&sid))
            .key(keys::held(&sid))
            .arg(&sid)
            .arg(payload)
            .arg(self.ttl.as_secs().max(1))
            .arg(LOG_CAPACITY)
            .arg(LOG_BYTES)
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn trim(&self, session: SessionId, seq: u64) -> Result<(), StoreError> {
        let sid = session.to_string();
        let _: i64 = self
            .trim
            .key(out_key(&sid))
            .key(log_key(&sid))
            .arg(seq)
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn detach(&self, session: SessionId, sink: &Sink) -> Result<Option<u64>, StoreError> {
        let generation = {
            let attachments = self.local.lock();
            match attachments.get(&session) {
                Some(a) if a.sink.same(sink) => a.generation,
                _ => return Ok(None),
            }
        };
        let (sid, node) = (session.to_string(), self.local.node());
        let detached: Option<u64> = self
            .detach
            .key(out_key(&sid))
            .arg(&*node)
            .arg(generation)
            .invoke_async(&mut self.conn())
            .await
            .map_err(failed)?;
        {
            let mut attachments = self.local.lock();
            if attachments
                .get(&session)
                .is_some_and(|a| a.generation == generation)
            {
                attachments.remove(&session);
            }
        }
        if detached.is_some() {
            self.untrack(&node, &sid).await;
        }
        Ok(detached)
    }

    async fn schedule_expiry(
        &self,
        session: SessionId,
        generation: u64,
        deadline_ms: u64,
        reason: Lost,
    ) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("ZADD")
            .arg(EXPIRIES)
            .arg(deadline_ms)
            .arg(format!(
                "{session}:{generation}:{}",
                reason.leave_reason().as_str_name()
            ))
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn due_expiries(&self, now_ms: u64) -> Result<Vec<Expiry>, StoreError> {
        let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(EXPIRIES)
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(100)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        let mut claimed = Vec::new();
        for member in due {
            // ZREM succeeds for exactly one replica: that one ends it.
            let removed: i64 = redis::cmd("ZREM")
                .arg(EXPIRIES)
                .arg(&member)
                .query_async(&mut self.conn())
                .await
                .map_err(failed)?;
            let mut parts = member.splitn(3, ':');
            let parsed = (|| {
                Some(Expiry {
                    session: SessionId::parse(parts.next()?)?,
                    generation: parts.next()?.parse().ok()?,
                    reason: Lost::from_reason(
                        LeaveReason::from_str_name(parts.next().unwrap_or_default())
                            .unwrap_or(LeaveReason::Disconnected),
                    ),
                })
            })();
            if let (1, Some(entry)) = (removed, parsed) {
                claimed.push(entry);
            }
        }
        Ok(claimed)
    }

    async fn reap_dead_nodes(&self, deadline_ms: u64) -> Result<usize, StoreError> {
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(NODES)
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        let me = self.local.node();
        let mut detached = 0;
        for node in nodes.into_iter().filter(|n| **n != *me) {
            // Exactly one replica claims a node whose heartbeat lapsed, and
            // atomically with the node's own renewal: a node that renews is
            // not reaped, a reaped node finds out at its next beat.
            let claimed: i64 = self
                .claim_dead
                .key(NODES)
                .key(keys::alive(&node))
                .arg(&node)
                .invoke_async(&mut self.conn())
                .await
                .map_err(failed)?;
            if claimed == 0 {
                continue;
            }
            let sessions: Vec<String> = redis::cmd("SMEMBERS")
                .arg(keys::node_sessions(&node))
                .query_async(&mut self.conn())
                .await
                .map_err(failed)?;
            for sid in sessions {
                let generation: Option<u64> = self
                    .detach_from_node
                    .key(out_key(&sid))
                    .arg(&node)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(failed)?;
                if let (Some(generation), Some(session)) = (generation, SessionId::parse(&sid)) {
                    self.schedule_expiry(session, generation, deadline_ms, Lost::Disconnected)
                        .await?;
                    detached += 1;
                }
            }
            let _: i64 = redis::cmd("DEL")
                .arg(keys::node_sessions(&node))
                .query_async(&mut self.conn())
                .await
                .map_err(failed)?;
            tracing::warn!(node = %node, sessions = detached, "reaped a dead signal node");
        }
        Ok(detached)
    }

    async fn detached_since(
        &self,
        session: SessionId,
        generation: u64,
    ) -> Result<bool, StoreError> {
        let (node, current): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(out_key(&session.to_string()))
            .arg("node")
            .arg("gen")
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(node.as_deref() == Some("") && current == Some(generation))
    }

    async fn resume(
        &self,
        session: SessionId,
        resume_token: &str,
        last_seq: u64,
        sink: Sink,
        first: pb::Resumed,
    ) -> Result<Result<Resumed, ResumeRefused>, StoreError> {
        let sid = session.to_string();
        let next_token = new_resume_token();
        let node = self.local.node();
        let (status, old_node, old_gen, generation, next_seq): (String, String, u64, u64, u64) =
            self.resume
                .key(out_key(&sid))
                .arg(token_digest(resume_token))
                .arg(token_digest(&next_token))
                .arg(last_seq)
                .arg(&*node)
                .invoke_async(&mut self.conn())
                .await
                .map_err(failed)?;
        match status.as_str() {
            "ok" => {}
            "badtoken" => return Ok(Err(ResumeRefused::BadToken)),
            "future" => return Ok(Err(ResumeRefused::FutureSeq)),
            _ => return Ok(Err(ResumeRefused::Unknown)),
        }
        // The token is spent: from here a failure must not leave a ghost
        // session attached to a connection that was refused. Detach it and
        // let it expire.
        let granted = Granted {
            generation,
            next_seq,
            old_node,
            old_gen,
            last_seq,
            next_token,
        };
        let replayed = self
            .attach_resumed(session, &node, &granted, sink, first)
            .await;
        match replayed {
            Ok(Some(resumed)) => {
                self.check_fence(&node, session, generation).await;
                Ok(Ok(resumed))
            }
            Ok(None) => Ok(Err(ResumeRefused::BadToken)),
            Err(err) => {
                self.local.lock().remove(&session);
                let detached: Result<Option<u64>, _> = self
                    .detach
                    .key(out_key(&sid))
                    .arg(&*node)
                    .arg(generation)
                    .invoke_async(&mut self.conn())
                    .await;
                // Its client cannot resume it (the new token never reached
                // it): the next sweep ends it and the room hears it left.
                if let Ok(Some(generation)) = detached {
                    let _ = self
                        .schedule_expiry(session, generation, super::now_ms(), Lost::Disconnected)
                        .await;
                }
                Err(err)
            }
        }
    }

    async fn close(
        &self,
        session: SessionId,
        code: Option<ErrorCode>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.close_session(session, code, reason).await
    }

    fn fenced(&self) -> bool {
        self.local.fenced.load(Ordering::Acquire)
    }
}
