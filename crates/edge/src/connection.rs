//! One WebSocket connection: a reader and a writer under one `select!`,
//! a bounded queue between signal and the writer, keepalive and auth
//! deadlines as named constants, and a close with a code and a reason.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use futures_util::{StreamExt, stream::SplitStream};
use switchboard_proto::{
    ConnId, ErrorCode, SignalError,
    limits::{AUTH_DEADLINE, KEEPALIVE_TIMEOUT, MAX_MESSAGE_BYTES, PING_INTERVAL},
    pb::{self, client_message::Message as In, server_message::Message as Out},
    validate,
    wire::{self, Format},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{self, Message},
};

use crate::{
    auth_client::AuthClient,
    conns::{ConnAuth, ConnHandle, Outbound},
    rate::TokenBucket,
    session_token::SessionToken,
    signal_link::SignalLink,
    writer::{FORMAT_BINARY, FORMAT_JSON, write_loop},
};

/// Messages queued for one client before it counts as a slow consumer.
/// Above signal's resume log (512), so a full replay fits. Slots are
/// pointer-sized and allocated as used.
pub const OUTBOUND_QUEUE: usize = 1024;
/// Over-rate messages tolerated (each one is dropped with an error) before
/// the connection is closed; the allowance refills one per second.
pub const RATE_STRIKES: u32 = 50;
/// How long the writer may take to flush a close after the reader ended.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// What a connection needs from the edge.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub link: SignalLink,
    pub auth: AuthClient,
    pub rate: RateLimit,
}

/// Per-connection message rate.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Sustained client messages per second.
    pub per_second: u32,
    /// Messages allowed in a burst above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: switchboard_proto::limits::MESSAGES_PER_SECOND,
            burst: switchboard_proto::limits::MESSAGE_BURST,
        }
    }
}

/// Why the reader stopped.
enum ReaderEnd {
    /// The socket failed or ended without a close frame.
    Gone,
    /// Close with this error (`None` = normal), after what is queued.
    Close(Option<ErrorCode>, String),
}

/// Serves one upgraded connection until it closes. `preauth` holds the
/// token and claims verified from an `Authorization` header at the upgrade.
pub async fn serve<S>(
    ws: WebSocketStream<S>,
    ctx: ConnectionContext,
    preauth: Option<(String, pb::Claims)>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (kill_tx, kill_rx) = watch::channel(None);
    let handle = ConnHandle {
        outbound: out_tx,
        kill: kill_tx,
        auth: Arc::default(),
        lane: 0,
    };
    let (conn, lane) = ctx.link.register(handle.clone());
    let format = Arc::new(AtomicU8::new(FORMAT_JSON));
    let (sink, mut stream) = ws.split();

    let now = std::time::Instant::now();
    let mut reader = Reader {
        conn,
        lane,
        ctx: ctx.clone(),
        handle: handle.clone(),
        format: format.clone(),
        preauth,
        joined: false,
        token: None,
        leave_reason: "disconnected",
        acked: 0,
        bucket: TokenBucket::new(ctx.rate.per_second, ctx.rate.burst, now),
        strikes: TokenBucket::new(1, RATE_STRIKES, now),
    };
    let writing = write_loop(sink, out_rx, kill_rx, shutdown, format);
    tokio::pin!(writing);
    let server_closed = {
        let reading = reader.run(&mut stream);
        tokio::pin!(reading);
        tokio::select! {
            end = &mut reading => match end {
                ReaderEnd::Close(code, reason) => {
                    handle.push(Outbound::Close(code, reason));
                    // Let the writer flush what is queued and the close frame.
                    let _ = tokio::time::timeout(CLOSE_FLUSH, &mut writing).await;
                    true
                }
                ReaderEnd::Gone => false,
            },
            () = &mut writing => true,
        }
    };
    if server_closed {
        // Finish the closing handshake: read (and discard) until the client
        // answers the close. Closing the socket with unread input would
        // make the kernel send RST, and the client could lose the close
        // frame and its code.
        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
        let _ = tokio::time::timeout(CLOSE_FLUSH, drain).await;
    }
    ctx.link.deregister(conn);
    // A revoked or expired token ends the session now; anything else
    // leaves it waiting for a resume.
    let killed = handle.kill.borrow().as_ref().map(|k| k.code);
    let leave_reason = match killed {
        Some(ErrorCode::TokenRevoked) => "revoked",
        Some(ErrorCode::TokenExpired) => "expired",
        _ => reader.leave_reason,
    };
    if reader.joined {
        let closed = pb::CloseSession {
            code: String::new(),
            reason: leave_reason.into(),
        };
        let _ = ctx
            .link
            .send(lane, conn, pb::edge_envelope::Event::Closed(closed))
            .await;
    }
    tracing::debug!(conn = %conn, "connection closed");
}

struct Reader {
    conn: ConnId,
    /// The signal lane this connection's session lives on.
    lane: usize,
    ctx: ConnectionContext,
    handle: ConnHandle,
    format: Arc<AtomicU8>,
    preauth: Option<(String, pb::Claims)>,
    /// Signal holds a session for this connection.
    joined: bool,
    /// The session's current token, its refresh and expiry times.
    token: Option<SessionToken>,
    /// What the room hears when the connection goes away.
    leave_reason: &'static str,
    /// The highest `ClientMessage.ack` forwarded to signal.
    acked: u64,
    bucket: TokenBucket,
    strikes: TokenBucket,
}

impl Reader {
    async fn run<S>(&mut self, stream: &mut SplitStream<WebSocketStream<S>>) -> ReaderEnd
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // One timer for whatever comes first: the auth deadline (before the
        // join), the keepalive timeout (after), the token refresh or its
        // expiry. Frames only note the time; the timer is re-armed when it
        // fires, so the hot path touches no timer.
        let mut heard = Instant::now();
        let timer = tokio::time::sleep_until(self.next_wakeup(heard));
        tokio::pin!(timer);
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = &mut timer => {
                    let now = Instant::now();
                    if now >= self.silence_deadline(heard) {
                        return if self.joined {
                            self.leave_reason = "timeout";
                            ReaderEnd::Close(Some(ErrorCode::KeepaliveTimeout), "no message within the keepalive timeout".into())
                        } else {
                            ReaderEnd::Close(Some(ErrorCode::Unauthenticated), "no join within the auth deadline".into())
                        };
                    }
                    if self.token.as_ref().is_some_and(|t| now >= t.expires_at()) {
                        self.leave_reason = "expired";
                        return ReaderEnd::Close(Some(ErrorCode::TokenExpired), "token expired".into());
                    }
                    if self.token.as_ref().and_then(SessionToken::refresh_at).is_some_and(|at| now >= at)
                        && let Some(end) = self.refresh().await
                    {
                        return end;
                    }
                    timer.as_mut().reset(self.next_wakeup(heard));
                    continue;
                }
            };
            let was_joined = self.joined;
            if was_joined {
                heard = Instant::now();
            }
            let (format, data) = match frame {
                None => return ReaderEnd::Gone,
                Some(Ok(Message::Text(text))) => (Format::Json, text.as_bytes().to_vec()),
                Some(Ok(Message::Binary(bytes))) => (Format::Binary, bytes.to_vec()),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                // Answer the client's close (tungstenite queued the reply;
                // the writer flushes it).
                Some(Ok(Message::Close(_))) => {
                    return ReaderEnd::Close(None, "closed by client".into());
                }
                Some(Err(tungstenite::Error::Capacity(err))) => {
                    return ReaderEnd::Close(Some(ErrorCode::MessageTooLarge), err.to_string());
                }
                // Framing violations are answered with their RFC 6455 close
                // code, not a bare TCP drop (which reads as a network
                // failure and makes clients resume).
                Some(Err(tungstenite::Error::Utf8(_))) => {
                    return ReaderEnd::Close(
                        Some(ErrorCode::InvalidUtf8),
                        "text frame is not valid utf-8".into(),
                    );
                }
                Some(Err(tungstenite::Error::Protocol(err))) => {
                    tracing::debug!(conn = %self.conn, error = %err, "websocket protocol violation");
                    return ReaderEnd::Close(
                        Some(ErrorCode::ProtocolError),
                        "websocket protocol violation".into(),
                    );
                }
                Some(Err(err)) => {
                    tracing::debug!(conn = %self.conn, error = %err, "websocket read failed");
                    return ReaderEnd::Gone;
                }
            };
            let binary = if format == Format::Binary {
                FORMAT_BINARY
            } else {
                FORMAT_JSON
            };
            self.format.store(binary, Ordering::Relaxed);
            let now = std::time::Instant::now();
            if !self.bucket.try_take(now) {
                if !self.strikes.try_take(now) {
                    return ReaderEnd::Close(
                        Some(ErrorCode::RateLimited),
                        "message rate exceeded".into(),
                    );
                }
                self.reply_error(
                    0,
                    SignalError::new(ErrorCode::RateLimited, "message dropped: rate exceeded"),
                );
                continue;
            }
            match wire::decode_client(format, &data) {
                Ok(message) => {
                    if let Some(end) = self.dispatch(message).await {
                        return end;
                    }
                }
                Err(err) => self.reply_error(err.request_id, err.error),
            }
            if self.joined != was_joined {
                // Joined (the keepalive starts now and the token's timers
                // exist) or left: re-arm for the new state.
                heard = Instant::now();
                timer.as_mut().reset(self.next_wakeup(heard));
            }
        }
    }

    /// When silence ends the connection: the auth deadline before the join
    /// (counted from the upgrade), the keepalive timeout after.
    fn silence_deadline(&self, heard: Instant) -> Instant {
        heard
            + if self.joined {
                KEEPALIVE_TIMEOUT
            } else {
                AUTH_DEADLINE
            }
    }

    /// The earliest moment the reader has something to do without a frame.
    fn next_wakeup(&self, heard: Instant) -> Instant {
        let mut at = self.silence_deadline(heard);
        if let Some(token) = &self.token {
            at = at.min(token.expires_at());
            if let Some(refresh) = token.refresh_at() {
                at = at.min(refresh);
            }
        }
        at
    }

    /// Answers with an error outside any session log (seq 0).
    fn reply_error(&self, request_id: u32, error: SignalError) {
        self.reply(Out::Error(error.to_proto(request_id)));
    }

    fn reply(&self, message: Out) {
        let message = pb::ServerMessage {
            seq: 0,
            message: Some(message),
        };
        self.handle.push(Outbound::Message(Box::new(message)));
    }

    /// Handles one parsed message; `Some` ends the connection.
    async fn dispatch(&mut self, message: pb::ClientMessage) -> Option<ReaderEnd> {
        let (id, seq) = (message.id, message.seq);
        if self.joined && message.ack > self.acked {
            // The client processed this far: signal trims the session's log.
            self.acked = message.ack;
            let acked = pb::edge_envelope::Event::Acked(pb::Acked { seq: message.ack });
            if let Err(code) = self.ctx.link.send(self.lane, self.conn, acked).await {
                return Some(ReaderEnd::Close(Some(code), "signal unavailable".into()));
            }
        }
        match message.message {
            // Keepalive is answered here: no need to bother signal.
            Some(In::Ping(ping)) => {
                self.reply(Out::Pong(pb::Pong { nonce: ping.nonce }));
                None
            }
            Some(In::Join(join)) if !self.joined => self.join(id, join).await,
            Some(In::Resume(resume)) if !self.joined => self.resume(id, resume).await,
            Some(In::Join(_) | In::Resume(_)) => {
                self.reply_error(
                    id,
                    SignalError::new(ErrorCode::AlreadyJoined, "this connection has a session"),
                );
                None
            }
            Some(_) if !self.joined => {
                self.reply_error(id, SignalError::new(ErrorCode::NotJoined, "join first"));
                None
            }
            Some(In::Signal(signal)) if is_offer(&signal) && !self.may_publish() => {
                let err = SignalError::new(
                    ErrorCode::PermissionDenied,
                    "the token does not grant publish",
                );
                self.reply_error(id, err);
                None
            }
            Some(other) => {
                let leaving = matches!(other, In::Leave(_));
                let forwarded = pb::ClientMessage {
                    id,
                    seq,
                    ack: 0,
                    message: Some(other),
                };
                if let Err(code) = self
                    .ctx
                    .link
                    .send(
                        self.lane,
                        self.conn,
                        pb::edge_envelope::Event::Message(forwarded),
                    )
                    .await
                {
                    return Some(ReaderEnd::Close(Some(code), "signal unavailable".into()));
                }
                if leaving {
                    // Signal closes the connection (1000) once the room knows.
                    self.joined = false;
                    self.token = None;
                }
                None
            }
            None => {
                self.reply_error(
                    id,
                    SignalError::new(ErrorCode::UnknownMessage, "unknown message type"),
                );
                None
            }
        }
    }

    fn may_publish(&self) -> bool {
        self.token.as_ref().is_some_and(|t| t.grants.publish)
    }

    /// The verified token of a join or resume: the one in the message, or
    /// the one from the upgrade's Authorization header.
    async fn authenticate(&mut self, token: &str) -> Result<(String, pb::Claims), SignalError> {
        match (self.preauth.take(), token) {
            (Some(preauth), "") => Ok(preauth),
            (_, token) => self
                .ctx
                .auth
                .verify(token)
                .await
                .map(|claims| (token.to_owned(), claims)),
        }
    }

    /// Answers a refused join or resume and ends the connection.
    fn refuse(&self, id: u32, err: SignalError) -> Option<ReaderEnd> {
        tracing::info!(conn = %self.conn, code = %err.code, "join or resume refused");
        self.reply_error(id, err.clone());
        Some(ReaderEnd::Close(Some(err.code), err.message))
    }

    /// The connection now has a session: remember its token (refresh,
    /// expiry, grants) and who holds it (revocation).
    fn start_session(&mut self, token: String, claims: pb::Claims) {
        let _ = self.handle.auth.set(ConnAuth::new(
            claims.subject,
            claims.auth_time,
            vec![claims.token_id, claims.chain],
        ));
        self.joined = true;
        self.token = Some(SessionToken::new(
            token,
            claims.expires_at,
            claims.grants.unwrap_or_default(),
        ));
    }

    /// Verifies the token, checks the room grant and opens the session.
    async fn join(&mut self, id: u32, join: pb::Join) -> Option<ReaderEnd> {
        let (token, claims) = match self.authenticate(&join.token).await {
            Ok(verified) => verified,
            Err(err) => return self.refuse(id, err),
        };
        let room = match granted_room(&claims, &join.room) {
            Ok(room) => room,
            Err(err) => return self.refuse(id, err),
        };
        let open = pb::OpenSession {
            request_id: id,
            identity: claims.subject.clone(),
            room,
            name: claims.name.clone(),
            attributes: join.attributes,
            token_expires_at: claims.expires_at,
            keepalive: Some(pb::Keepalive {
                interval_ms: PING_INTERVAL.as_millis() as u32,
                timeout_ms: KEEPALIVE_TIMEOUT.as_millis() as u32,
            }),
            limits: Some(pb::Limits {
                max_message_bytes: MAX_MESSAGE_BYTES as u32,
                messages_per_second: self.ctx.rate.per_second,
                burst: self.ctx.rate.burst,
                // Signal's to say.
                max_participants: 0,
            }),
        };
        if let Err(code) = self
            .ctx
            .link
            .send(self.lane, self.conn, pb::edge_envelope::Event::Open(open))
            .await
        {
            return self.refuse(id, SignalError::new(code, "signal unavailable"));
        }
        self.start_session(token, claims);
        None
    }

    /// Verifies the token and asks signal to continue the session; signal
    /// checks the resume token and that the token's subject owns it.
    async fn resume(&mut self, id: u32, resume: pb::Resume) -> Option<ReaderEnd> {
        let (token, claims) = match self.authenticate(&resume.token).await {
            Ok(verified) => verified,
            Err(err) => return self.refuse(id, err),
        };
        let request = pb::ResumeSession {
            request_id: id,
            session_id: resume.session_id,
            resume_token: resume.resume_token,
            last_seq: resume.last_seq,
            identity: claims.subject.clone(),
            room_grant: claims
                .grants
                .as_ref()
                .map(|g| g.room.clone())
                .unwrap_or_default(),
            token_expires_at: claims.expires_at,
        };
        if let Err(code) = self
            .ctx
            .link
            .send(
                self.lane,
                self.conn,
                pb::edge_envelope::Event::Resume(request),
            )
            .await
        {
            return self.refuse(id, SignalError::new(code, "signal unavailable"));
        }
        // If signal refuses, it closes the connection itself.
        self.start_session(token, claims);
        None
    }

    /// Refreshes the session's token and pushes it to the client through
    /// signal. `Some` ends the connection (the token was revoked).
    async fn refresh(&mut self) -> Option<ReaderEnd> {
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
                let _ = self
                    .ctx
                    .link
                    .send(
                        self.lane,
                        self.conn,
                        pb::edge_envelope::Event::Refreshed(refreshed),
                    )
                    .await;
                None
            }
            Err(err) if err.code == ErrorCode::TokenRevoked => {
                self.leave_reason = "revoked";
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

fn is_offer(signal: &pb::PeerSignal) -> bool {
    matches!(
        &signal.kind,
        Some(pb::peer_signal::Kind::Description(d)) if d.r#type == pb::session_description::Type::Offer as i32
    )
}

/// The room a join asks for, if the token grants it. Without an explicit
/// room the token must grant exactly one.
fn granted_room(claims: &pb::Claims, requested: &str) -> Result<String, SignalError> {
    let grant = claims
        .grants
        .as_ref()
        .map(|g| g.room.as_str())
        .unwrap_or("");
    let room = if requested.is_empty() {
        if grant.is_empty() || grant.contains('*') {
            return Err(SignalError::new(
                ErrorCode::BadRequest,
                "join.room is required unless the token grants exactly one room",
            ));
        }
        grant
    } else {
        requested
    };
    if !validate::room_granted(grant, room) {
        return Err(SignalError::new(
            ErrorCode::PermissionDenied,
            "the token does not grant this room",
        ));
    }
    Ok(room.to_owned())
}
