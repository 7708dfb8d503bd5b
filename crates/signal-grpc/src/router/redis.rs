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
use switchboard_proto::{ErrorCode, SessionId, pb};
use tokio::sync::watch;

use super::{
    Delivery, Expiry, Lost, Origin, ResumeRefused, Resumed, Router, Sink, new_resume_token,
    redis_node::{
        Attachment, CLAIM_DEAD, Local, flush, heartbeat, keep_alive, new_node_name, read_log,
        subscribe,
    },
};
use crate::store::{
    RedisConnection, StoreError,
    keys::{self, EXPIRIES, NODES},
};

/// Messages and bytes kept per session for resume (as in memory).
pub const LOG_CAPACITY: usize = super::LOG_CAPACITY;
pub const LOG_BYTES: usize = super::LOG_BYTES;

/// Lua: `NodeEvent { message: NodeMessage { session, seq, message } }` as
/// protobuf (the schema's, field numbers fixed there).
const NODE_MESSAGE: &str = r#"
local function varint(n)
  local out = {}
  while n >= 128 do
    table.insert(out, string.char(n % 128 + 128))
    n = math.floor(n / 128)
  end
  table.insert(out, string.char(n))
  return table.concat(out)
end
local function node_message(sid, seq, payload)
  local inner = '\10' .. varint(#sid) .. sid .. '\16' .. varint(seq) .. '\26' .. varint(#payload) .. payload
  return '\10' .. varint(#inner) .. inner
end
"#;

/// Lua: appends `payload` to the log (KEYS[2]) as the session's next seq,
/// keeping `log_bytes` in the outbox (KEYS[1]), trims the oldest entries
/// past `maxlen` messages or `maxbytes` bytes (never the newest), and
/// publishes to the attached `node`. Returns the seq.
const APPEND: &str = r#"
local function append(sid, payload, node, maxlen, maxbytes)
  local seq = redis.call('HINCRBY', KEYS[1], 'next_seq', 1) - 1
  redis.call('XADD', KEYS[2], seq .. '-0', 'm', payload)
  local bytes = redis.call('HINCRBY', KEYS[1], 'log_bytes', #payload)
  local len = redis.call('XLEN', KEYS[2])
  while len > 1 and (len > maxlen or bytes > maxbytes) do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', KEYS[2], oldest[1])
    bytes = redis.call('HINCRBY', KEYS[1], 'log_bytes', -#oldest[2][2])
    len = len - 1
  end
  if node and node ~= '' then
    redis.call('PUBLISH', 'sb:node:' .. node, node_message(sid, seq, payload))
  end
  return seq
end
"#;

/// KEYS out, log. ARGV seq. Drops every logged message through seq.
const TRIM: &str = r#"
local bound = ARGV[1] .. '-0'
while true do
  local oldest = redis.call('XRANGE', KEYS[2], '-', bound, 'COUNT', 1)[1]
  if not oldest then return 1 end
  redis.call('XDEL', KEYS[2], oldest[1])
  redis.call('HINCRBY', KEYS[1], 'log_bytes', -#oldest[2][2])
end
"#;

/// What Redis keeps of a resume token: its digest (the token itself is a
/// credential and never stored). An empty token stays empty (refused).
fn token_digest(token: &str) -> String {
    use sha1::{Digest, Sha1};
    if token.is_empty() {
        return String::new();
    }
    hex::encode(Sha1::digest(token.as_bytes()))
}

fn out_key(sid: &str) -> String {
    keys::outbox(sid)
}

fn log_key(sid: &str) -> String {
    keys::log(sid)
}

/// KEYS out. ARGV node. Detaches the session if it is attached to `node`;
/// returns the new generation, or false.
const DETACH_FROM_NODE: &str = r#"
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'node', '')
return redis.call('HINCRBY', KEYS[1], 'gen', 1)
"#;

/// KEYS out, log, held. ARGV token, node, ttl. The session is not started:
/// deliveries are held until START.
const OPEN: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'next_seq', 1, 'token', ARGV[1], 'node', ARGV[2], 'gen', 1, 'started', 0)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// KEYS out, log, held. ARGV sid, first payload, ttl, maxlen, maxbytes.
/// Logs the first message as seq 1, then every held one, publishing each.
const START: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'started', 1)
local node = redis.call('HGET', KEYS[1], 'node')
local maxlen, maxbytes = tonumber(ARGV[4]), tonumber(ARGV[5])
append(ARGV[1], ARGV[2], node, maxlen, maxbytes)
for _, payload in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  append(ARGV[1], payload, node, maxlen, maxbytes)
end
redis.call('DEL', KEYS[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"#;

/// KEYS out, log, held. ARGV sid, payload, ttl, maxlen, origin sid ('' =
/// none), origin client seq, maxbytes. Returns the seq, 0 when held (not
/// started), -1 for a duplicate of what this origin already delivered, or
/// false.
const DELIVER: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[5] ~= '' then
  local field = 'c:' .. ARGV[5]
  local last = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if tonumber(ARGV[6]) <= last then return -1 end
  redis.call('HSET', KEYS[1], field, ARGV[6])
end
if redis.call('HGET', KEYS[1], 'started') == '0' then
  redis.call('RPUSH', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  return 0
end
local node = redis.call('HGET', KEYS[1], 'node')
local seq = append(ARGV[1], ARGV[2], node, tonumber(ARGV[4]), tonumber(ARGV[7]))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return seq
"#;

/// KEYS out. ARGV node, gen. Returns the new gen, or false.
const DETACH: &str = r#"
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return false end
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[2] then return false end
redis.call('HSET', KEYS[1], 'node', '')
return redis.call('HINCRBY', KEYS[1], 'gen', 1)
"#;

/// KEYS out. ARGV token, new token, last_seq, node. Returns
/// {status, old node, old gen, new gen, next_seq}.
const RESUME: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', '', 0, 0, 0} end
local v = redis.call('HMGET', KEYS[1], 'token', 'next_seq', 'node', 'gen')
if ARGV[1] == '' or v[1] ~= ARGV[1] then return {'badtoken', '', 0, 0, 0} end
if tonumber(ARGV[3]) >= tonumber(v[2]) then return {'future', '', 0, 0, 0} end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'node', ARGV[4])
return {'ok', v[3], tonumber(v[4]), gen, tonumber(v[2])}
"#;

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
        let client = redis::Client::open(pubsub_url).map_err(|e| StoreError(e.to_string()))?;
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
            deliver: Script::new(&format!("{NODE_MESSAGE}{APPEND}{DELIVER}")),
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

    /// Notes that this node holds `sid` (for reaping if it dies).
    async fn track(&self, node: &str, sid: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: i64 = redis::cmd("SADD")
            .arg(keys::node_sessions(node))
            .arg(sid)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        let _: i64 = redis::cmd("EXPIRE")
            .arg(keys::node_sessions(node))
            .arg(self.ttl.as_secs().max(1))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// The session is no longer attached to `node` (best effort: a stale
    /// entry is harmless, the set expires, and the reaper deletes it).
    async fn untrack(&self, node: &str, sid: &str) {
        let removed: Result<i64, _> = redis::cmd("SREM")
            .arg(keys::node_sessions(node))
            .arg(sid)
            .query_async(&mut self.conn())
            .await;
        if let Err(err) = removed {
            tracing::debug!(error = %err, "untracking a session failed");
        }
    }

    /// Whether this node was fenced since it attached a session as `node`:
    /// then the attachment is closed (the client resumes).
    async fn check_fence(&self, node: &str, session: SessionId, generation: u64) {
        if *self.local.node() == *node {
            return;
        }
        self.local.shut(
            session,
            generation,
            "signal replica lost its registration; resume to continue",
        );
        // Attached under the old name, perhaps after the reaper read that
        // name's sessions: detach it here so it expires unless resumed.
        let detached: Result<Option<u64>, _> = self
            .detach
            .key(out_key(&session.to_string()))
            .arg(node)
            .arg(generation)
            .invoke_async(&mut self.conn())
            .await;
        if let Ok(Some(generation)) = detached {
            let deadline = super::now_ms() + self.resume_window.as_millis() as u64;
            let _ = self
                .schedule_expiry(session, generation, deadline, Lost::Disconnected)
                .await;
        }
    }

    async fn publish_close(
        &self,
        node: &str,
        session: SessionId,
        generation: u64,
        code: Option<ErrorCode>,
        reason: &str,
    ) {
        if *node == *self.local.node() {
            self.local.close(session, generation, code, reason);
            return;
        }
        let event = pb::NodeEvent {
            event: Some(pb::node_event::Event::Close(pb::NodeClose {
                session: session.to_string(),
                generation,
                code: code.map(ErrorCode::as_str).unwrap_or("").to_owned(),
                reason: reason.to_owned(),
            })),
        }
        .encode_to_vec();
        let published: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(keys::channel(node))
            .arg(event)
            .query_async(&mut self.conn())
            .await;
        if let Err(err) = published {
            tracing::warn!(session = %session, error = %err, "close for another node not published");
        }
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
        let sid = session.to_string();
        let payload = pb::ServerMessage {
            seq: 0,
            message: Some(message),
        }
        .encode_to_vec();
        let (origin_session, origin_seq) = origin
            .map(|o| (o.session.to_string(), o.seq))
            .unwrap_or_default();
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
        Ok(seq.map(|seq| match seq {
            0 => Delivery::Held,
            seq if seq < 0 => Delivery::Duplicate,
            seq => Delivery::Logged(seq as u64),
        }))
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
            .arg(format!("{session}:{generation}:{}", reason.as_str()))
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
                    reason: Lost::from_reason(parts.next().unwrap_or_default()),
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

/// What the RESUME script granted.
struct Granted {
    /// The new attachment generation.
    generation: u64,
    /// The session's next seq (what it was sent so far + 1).
    next_seq: u64,
    /// Where the session was attached before ('' = detached), and as which
    /// generation.
    old_node: String,
    old_gen: u64,
    last_seq: u64,
    next_token: String,
}

impl RedisRouter {
    /// The rest of a resume after the RESUME script: attach locally, replay
    /// the log. `Ok(None)`: taken over again meanwhile.
    async fn attach_resumed(
        &self,
        session: SessionId,
        node: &str,
        granted: &Granted,
        sink: Sink,
        mut first: pb::Resumed,
    ) -> Result<Option<Resumed>, StoreError> {
        let Granted {
            generation,
            next_seq,
            ref old_node,
            old_gen,
            last_seq,
            ref next_token,
        } = *granted;
        let sid = session.to_string();
        self.track(node, &sid).await?;
        if !old_node.is_empty() {
            if old_node != node {
                self.untrack(old_node, &sid).await;
            }
            self.publish_close(
                old_node,
                session,
                old_gen,
                Some(ErrorCode::SessionReplaced),
                "session resumed on another connection",
            )
            .await;
        }
        // Attach first (holding live messages), then replay from the log:
        // anything published before the attachment existed is in the log.
        self.local.lock().insert(
            session,
            Attachment {
                sink: sink.clone(),
                generation,
                expected: last_seq + 1,
                live: false,
                pending: BTreeMap::new(),
                filling: false,
                closed: false,
            },
        );
        let entries = read_log(&self.connection, session, last_seq + 1, u64::MAX).await?;
        let complete = entries
            .first()
            .map_or(next_seq == last_seq + 1, |(seq, _)| *seq == last_seq + 1);
        first.resume_token = next_token.to_owned();
        first.complete = complete;
        let mut attachments = self.local.lock();
        let Some(a) = attachments
            .get_mut(&session)
            .filter(|a| a.generation == generation)
        else {
            // Taken over again meanwhile.
            return Ok(None);
        };
        sink.send(pb::signal_envelope::Event::Message(pb::ServerMessage {
            seq: 0,
            message: Some(pb::server_message::Message::Resumed(first)),
        }));
        if let Some((oldest, _)) = entries.first() {
            // Incomplete: continue from the oldest message still logged.
            a.expected = a.expected.max(*oldest);
        }
        let replayed = entries.len();
        for (seq, payload) in entries {
            a.pending.insert(seq, payload);
        }
        a.live = true;
        flush(a);
        Ok(Some(Resumed {
            resume_token: next_token.to_owned(),
            complete,
            replayed,
        }))
    }

    async fn close_session(
        &self,
        session: SessionId,
        code: Option<ErrorCode>,
        reason: &str,
    ) -> Result<(), StoreError> {
        let sid = session.to_string();
        let (node, generation): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(out_key(&sid))
            .arg("node")
            .arg("gen")
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        if let (Some(node), Some(generation)) = (node, generation)
            && !node.is_empty()
        {
            self.publish_close(&node, session, generation, code, reason)
                .await;
            self.untrack(&node, &sid).await;
        }
        let _: i64 = redis::cmd("DEL")
            .arg(out_key(&sid))
            .arg(log_key(&sid))
            .arg(keys::held(&sid))
            .query_async(&mut self.conn())
            .await
            .map_err(failed)?;
        Ok(())
    }
}
