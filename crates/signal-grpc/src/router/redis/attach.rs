//! Who holds a session: a node's bookkeeping of the sessions attached to
//! it, taking a session over on resume, and closing it wherever it is.

use std::collections::BTreeMap;

use prost::Message as _;
use switchboard_proto::{ErrorCode, SessionId, pb};

use super::{RedisRouter, failed, log_key, out_key};
use crate::{
    router::{
        Lost, Resumed, Router, Sink,
        redis_node::{Attachment, flush, read_log},
    },
    store::{StoreError, keys},
};

impl RedisRouter {
    /// Notes that this node holds `sid` (for reaping if it dies).
    pub(super) async fn track(&self, node: &str, sid: &str) -> Result<(), StoreError> {
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
    pub(super) async fn untrack(&self, node: &str, sid: &str) {
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
    pub(super) async fn check_fence(&self, node: &str, session: SessionId, generation: u64) {
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
            let deadline = crate::router::now_ms() + self.resume_window.as_millis() as u64;
            let _ = self
                .schedule_expiry(session, generation, deadline, Lost::Disconnected)
                .await;
        }
    }

    pub(super) async fn publish_close(
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
                code: code.map_or(0, |c| c as i32),
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

/// What the RESUME script granted.
pub(super) struct Granted {
    /// The new attachment generation.
    pub(super) generation: u64,
    /// The session's next seq (what it was sent so far + 1).
    pub(super) next_seq: u64,
    /// Where the session was attached before ('' = detached), and as which
    /// generation.
    pub(super) old_node: String,
    pub(super) old_gen: u64,
    pub(super) last_seq: u64,
    pub(super) next_token: String,
}

impl RedisRouter {
    /// The rest of a resume after the RESUME script: attach locally, replay
    /// the log. `Ok(None)`: taken over again meanwhile.
    pub(super) async fn attach_resumed(
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

    pub(super) async fn close_session(
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
