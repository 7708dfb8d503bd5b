//! Authentication of a connection's session: join, resume and token
//! refresh. The connection is registered as its identity *before* signal
//! hears of the session, and checked against the revocations that arrived
//! while its token was being verified.

use switchboard_proto::{
    ErrorCode, LeaveReason, SignalError,
    limits::MAX_MESSAGE_BYTES,
    pb::{self, edge_envelope::Event},
    trace,
};
use tokio::time::Instant;
use tracing::Instrument;

use super::reader::{Preauth, Reader, ReaderEnd};
use crate::{conns::ConnAuth, session_token::SessionToken};

impl Reader {
    /// The verified token of a join or resume: the one in the message, or
    /// the one from the upgrade's Authorization header (verified again if
    /// it is no longer fresh, so a revocation since counts).
    async fn authenticate(&mut self, token: &str) -> Result<(String, pb::Claims), SignalError> {
        let preauth = self.preauth.take().map(|p| *p);
        let token = match (preauth, token) {
            (Some(p), "") if p.at.elapsed() <= self.ctx.limits.preauth_max_age => {
                return Ok((p.token, p.claims));
            }
            (Some(Preauth { token, .. }), "") => token,
            (_, token) => token.to_owned(),
        };
        let claims = self.ctx.auth.verify(&token).await?;
        Ok((token, claims))
    }

    /// Answers a refused join or resume and ends the connection.
    fn refuse(&self, id: u32, err: SignalError) -> Option<ReaderEnd> {
        tracing::info!(conn = %self.conn, code = %err.code, "join or resume refused");
        self.reply_error(id, err.clone());
        Some(ReaderEnd::Close(Some(err.code), err.message))
    }

    /// The connection is about to have a session: remember who holds it
    /// (revocation) and its token (refresh, expiry). Fails if a
    /// revocation that arrived meanwhile covers it.
    fn start_session(&mut self, token: String, claims: pb::Claims) -> Result<(), SignalError> {
        let auth = self.handle.auth.get_or_init(|| {
            ConnAuth::new(
                claims.subject.clone(),
                claims.auth_time,
                vec![claims.token_id.clone(), claims.chain.clone()],
            )
        });
        // Registered first, checked second: a revocation is either in the
        // recent list now or will find this connection in the map.
        if self.ctx.revocations.any_revokes(auth) {
            return Err(SignalError::new(ErrorCode::TokenRevoked, "token revoked"));
        }
        // From here signal may hold a session: the connection's end tells it.
        self.joined = true;
        self.token = Some(SessionToken::new(token, claims.expires_at));
        Ok(())
    }

    /// Verifies the token, checks the room grant and opens the session.
    /// A sampled join is traced: `edge.join`, with the verification and
    /// signal's `signal.join` as its children.
    pub(super) async fn join(&mut self, id: u32, join: pb::Join) -> Option<ReaderEnd> {
        let span = trace::continue_or_start("edge.join", "server", &join.traceparent);
        let verified = match &span {
            Some(span) => {
                // The connection's log lines carry the join's trace id.
                if let Some(id) = trace::record_trace_id(span) {
                    tracing::Span::current().record("trace_id", tracing::field::display(id));
                }
                self.authenticate(&join.token)
                    .instrument(span.clone())
                    .await
            }
            None => self.authenticate(&join.token).await,
        };
        let (token, claims) = match verified {
            Ok(verified) => verified,
            Err(err) => return self.refuse(id, err),
        };
        let room = match switchboard_proto::grants::granted_room(&claims, &join.room) {
            Ok(room) => room,
            Err(err) => return self.refuse(id, err),
        };
        let limits = &self.ctx.limits;
        let open = pb::OpenSession {
            request_id: id,
            room,
            attributes: join.attributes,
            // Signal verifies it again: it trusts no identity from the edge.
            token: token.clone(),
            keepalive: Some(pb::Keepalive {
                interval_ms: limits.ping_interval.as_millis() as u32,
                timeout_ms: limits.keepalive_timeout.as_millis() as u32,
            }),
            limits: Some(pb::Limits {
                max_message_bytes: MAX_MESSAGE_BYTES as u32,
                messages_per_second: limits.rate.per_second,
                burst: limits.rate.burst,
                // Signal's to say.
                max_participants: 0,
            }),
            traceparent: span.as_ref().map(trace::traceparent).unwrap_or_default(),
        };
        self.open(id, token, claims, Event::Open(Box::new(open)))
            .await
    }

    /// Verifies the token and asks signal to continue the session; signal
    /// checks the resume token and that the token's subject owns it.
    pub(super) async fn resume(&mut self, id: u32, resume: pb::Resume) -> Option<ReaderEnd> {
        let (token, claims) = match self.authenticate(&resume.token).await {
            Ok(verified) => verified,
            Err(err) => return self.refuse(id, err),
        };
        let request = pb::ResumeSession {
            request_id: id,
            session_id: resume.session_id,
            resume_token: resume.resume_token,
            last_seq: resume.last_seq,
            token: token.clone(),
        };
        // If signal refuses, it closes the connection itself.
        self.open(id, token, claims, Event::Resume(Box::new(request)))
            .await
    }

    /// Starts the session and sends signal the join or resume.
    async fn open(
        &mut self,
        id: u32,
        token: String,
        claims: pb::Claims,
        event: Event,
    ) -> Option<ReaderEnd> {
        if let Err(err) = self.start_session(token, claims) {
            self.leave_reason = LeaveReason::Revoked;
            self.joined = false;
            return self.refuse(id, err);
        }
        if let Err(code) = self.forward(event).await {
            return self.refuse(id, SignalError::new(code, "signal unavailable"));
        }
        None
    }

    /// Refreshes the session's token and pushes it to the client through
    /// signal. `Some` ends the connection (the token was revoked).
    pub(super) async fn refresh(&mut self) -> Option<ReaderEnd> {
        let token = self.token.as_mut()?;
        match self.ctx.auth.refresh(token.token()).await {
            Ok(fresh) => {
                if let Some(auth) = self.handle.auth.get() {
                    auth.add_token(fresh.token_id.clone());
                }
                token.replace(fresh.token.clone(), fresh.expires_at);
                let refreshed = pb::TokenRefresh {
                    token: fresh.token,
                    expires_at: fresh.expires_at,
                };
                let _ = self.forward(Event::Refreshed(refreshed)).await;
                None
            }
            Err(err) if err.code == ErrorCode::TokenRevoked => {
                self.leave_reason = LeaveReason::Revoked;
                Some(ReaderEnd::Close(Some(err.code), err.message))
            }
            Err(err) if err.code.retryable() && err.code != ErrorCode::TokenExpired => {
                tracing::debug!(conn = %self.conn, code = %err.code, "token refresh failed; retrying");
                token.retry_later();
                None
            }
            Err(err) => {
                // E.g. the maximum session lifetime: the session ends when
                // the current token expires.
                tracing::debug!(conn = %self.conn, code = %err.code, "token not refreshed");
                token.stop_refreshing();
                None
            }
        }
    }
}

/// A token verified at the upgrade, now.
pub fn preauth(token: String, claims: pb::Claims) -> Preauth {
    Preauth {
        token,
        claims,
        at: Instant::now(),
    }
}
