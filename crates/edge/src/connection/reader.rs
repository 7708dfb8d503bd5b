//! The reading half of a connection: frames in, one timer for whatever
//! comes first (auth deadline, keepalive, token refresh and expiry), the
//! message rate, and dispatch of each parsed message.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use futures_util::{Stream, StreamExt};
use switchboard_proto::{
    ConnId, ErrorCode, LeaveReason, SignalError, pb,
    pb::{client_message::Message as In, server_message::Message as Out},
    wire::{self, Format},
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{
    ConnectionContext,
    writer::{FORMAT_BINARY, FORMAT_JSON},
};
use crate::{
    conns::{ConnHandle, Outbound},
    session_token::SessionToken,
};
use switchboard_proto::token_bucket::TokenBucket;

/// A token verified from the upgrade's `Authorization` header.
#[derive(Debug)]
pub struct Preauth {
    pub token: String,
    pub claims: pb::Claims,
    /// When it was verified.
    pub at: Instant,
}

/// Why the reader stopped.
pub enum ReaderEnd {
    /// The socket failed or ended without a close frame.
    Gone,
    /// Close with this error (`None` = normal), after what is queued.
    Close(Option<ErrorCode>, String),
    /// The connection was killed; the writer closes it.
    Killed,
}

/// A message against the rate limit.
enum Rate {
    Within,
    /// Over the rate: dropped with an error.
    Dropped,
    /// Over the rate too often: the connection ends.
    Exceeded(ReaderEnd),
}

pub struct Reader {
    pub conn: ConnId,
    /// The signal lane this connection's session lives on.
    pub lane: usize,
    pub ctx: Arc<ConnectionContext>,
    pub handle: ConnHandle,
    pub format: Arc<AtomicU8>,
    pub preauth: Option<Box<Preauth>>,
    /// Signal may hold a session for this connection.
    pub joined: bool,
    /// The session's current token, its refresh and expiry times.
    pub token: Option<SessionToken>,
    /// What the room hears when the connection goes away: disconnected or
    /// timeout (the session waits for a resume), expired or revoked (it
    /// ends).
    pub leave_reason: LeaveReason,
    /// The highest `ClientMessage.ack` forwarded to signal.
    pub acked: u64,
    pub bucket: TokenBucket,
    pub strikes: TokenBucket,
    /// Signals read so far (which of them are timed: `relay_probe`).
    pub signals: u32,
}

impl Reader {
    pub async fn run<S>(&mut self, stream: &mut S) -> ReaderEnd
    where
        S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
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
                    if let Some(end) = self.on_timer(heard).await {
                        return end;
                    }
                    timer.as_mut().reset(self.next_wakeup(heard));
                    continue;
                }
            };
            // A frame read after a kill (revocation) is not forwarded, even
            // if it was already buffered.
            if self.handle.kill.borrow().is_some() {
                return ReaderEnd::Killed;
            }
            let was_joined = self.joined;
            if was_joined {
                heard = Instant::now();
            }
            let (format, data) = match frame {
                None => return ReaderEnd::Gone,
                // The frame's own buffer, not a copy of it.
                Some(Ok(Message::Text(text))) => (Format::Json, bytes::Bytes::from(text)),
                Some(Ok(Message::Binary(bytes))) => (Format::Binary, bytes),
                // Control frames count against the rate too (each ping
                // costs a pong), silently: no error answers them.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    if let Some(end) = self.control_rate() {
                        return end;
                    }
                    continue;
                }
                // Answer the client's close (tungstenite queued the reply;
                // the writer flushes it).
                Some(Ok(Message::Close(_))) => {
                    return ReaderEnd::Close(None, "closed by client".into());
                }
                Some(Err(err)) => return end_of_read(err),
            };
            self.format.store(
                if format == Format::Binary {
                    FORMAT_BINARY
                } else {
                    FORMAT_JSON
                },
                Ordering::Relaxed,
            );
            match self.rate() {
                Rate::Within => {}
                Rate::Dropped => continue,
                Rate::Exceeded(end) => return end,
            }
            let metrics = switchboard_proto::metrics::metrics();
            match wire::decode_client(format, &data) {
                Ok(message) => {
                    metrics.message_in(switchboard_proto::metrics::in_kind(
                        message.message.as_ref(),
                    ));
                    if let Some(end) = self.dispatch(message).await {
                        return end;
                    }
                }
                Err(err) => {
                    // IN_KINDS: "invalid".
                    metrics.message_in(7);
                    self.reply_error(err.request_id, err.error);
                }
            }
            if self.joined != was_joined {
                // Joined (the keepalive starts now and the token's timers
                // exist) or left: re-arm for the new state.
                heard = Instant::now();
                timer.as_mut().reset(self.next_wakeup(heard));
            }
        }
    }

    /// The timer fired: a deadline passed, or the token is due a refresh.
    async fn on_timer(&mut self, heard: Instant) -> Option<ReaderEnd> {
        let now = Instant::now();
        if now >= self.silence_deadline(heard) {
            return Some(if self.joined {
                self.leave_reason = LeaveReason::Timeout;
                ReaderEnd::Close(
                    Some(ErrorCode::KeepaliveTimeout),
                    "no message within the keepalive timeout".into(),
                )
            } else {
                ReaderEnd::Close(
                    Some(ErrorCode::Unauthenticated),
                    "no join within the auth deadline".into(),
                )
            });
        }
        if self.token.as_ref().is_some_and(|t| now >= t.expires_at()) {
            self.leave_reason = LeaveReason::Expired;
            return Some(ReaderEnd::Close(
                Some(ErrorCode::TokenExpired),
                "token expired".into(),
            ));
        }
        if self
            .token
            .as_ref()
            .and_then(SessionToken::refresh_at)
            .is_some_and(|at| now >= at)
        {
            return Box::pin(self.refresh()).await;
        }
        None
    }

    /// Takes a control frame's share of the rate: over it, a strike (no
    /// answer); out of strikes, the end.
    fn control_rate(&mut self) -> Option<ReaderEnd> {
        let now = std::time::Instant::now();
        if self.bucket.try_take(now) || self.strikes.try_take(now) {
            return None;
        }
        switchboard_proto::metrics::metrics().rate_limited.inc();
        Some(ReaderEnd::Close(
            Some(ErrorCode::RateLimited),
            "message rate exceeded (control frames)".into(),
        ))
    }

    /// Takes the message's share of the rate.
    fn rate(&mut self) -> Rate {
        let now = std::time::Instant::now();
        if self.bucket.try_take(now) {
            return Rate::Within;
        }
        switchboard_proto::metrics::metrics().rate_limited.inc();
        if !self.strikes.try_take(now) {
            return Rate::Exceeded(ReaderEnd::Close(
                Some(ErrorCode::RateLimited),
                "message rate exceeded".into(),
            ));
        }
        self.reply_error(
            0,
            SignalError::new(ErrorCode::RateLimited, "message dropped: rate exceeded"),
        );
        Rate::Dropped
    }

    /// When silence ends the connection: the auth deadline before the join
    /// (counted from the upgrade), the keepalive timeout after.
    fn silence_deadline(&self, heard: Instant) -> Instant {
        let limits = &self.ctx.limits;
        heard
            + if self.joined {
                limits.keepalive_timeout
            } else {
                limits.auth_deadline
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
    pub fn reply_error(&self, request_id: u32, error: SignalError) {
        switchboard_proto::metrics::metrics().error(error.code);
        self.reply(Out::Error(error.to_proto(request_id)));
    }

    fn reply(&self, message: Out) {
        let message = pb::ServerMessage {
            seq: 0,
            message: Some(message),
        };
        self.handle.push(Outbound::Message(Box::new(message)));
    }

    /// Forwards `event` for this connection to signal.
    pub async fn forward(&self, event: pb::edge_envelope::Event) -> Result<(), ErrorCode> {
        self.ctx.link.send(self.lane, self.conn, event).await
    }

    /// Handles one parsed message; `Some` ends the connection.
    async fn dispatch(&mut self, mut message: pb::ClientMessage) -> Option<ReaderEnd> {
        if self.joined
            && let Some(In::Signal(signal)) = &mut message.message
        {
            // A sampled signal is timed and traced. Its edge span ends
            // here, before the hand-over to the link (held across the send
            // it would enlarge every connection's future).
            self.signals = self.signals.wrapping_add(1);
            drop(crate::relay_probe::stamp(signal, self.signals));
        }
        let (id, seq) = (message.id, message.seq);
        if self.joined && message.ack > self.acked {
            // The client processed this far: signal trims the session's log.
            self.acked = message.ack;
            let acked = pb::edge_envelope::Event::Acked(pb::Acked { seq: message.ack });
            // Boxed (once per keepalive): the message's own forward below
            // is the one the connection's future keeps room for.
            if let Err(code) = Box::pin(self.forward(acked)).await {
                return Some(ReaderEnd::Close(Some(code), "signal unavailable".into()));
            }
        }
        match message.message {
            // Keepalive is answered here: no need to bother signal.
            Some(In::Ping(ping)) => {
                self.reply(Out::Pong(pb::Pong { nonce: ping.nonce }));
                None
            }
            // Joins and resumes (a verify call each) are boxed: the
            // connection's future would otherwise carry their state for
            // the connection's whole life.
            Some(In::Join(join)) if !self.joined => Box::pin(self.join(id, *join)).await,
            Some(In::Resume(resume)) if !self.joined => Box::pin(self.resume(id, resume)).await,
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
            Some(other) => {
                // What the session may send (an offer needs `publish`) is
                // signal's to decide: the application's backend can change
                // it on the live session.
                let leaving = matches!(other, In::Leave(_));
                let forwarded = pb::ClientMessage {
                    id,
                    seq,
                    ack: 0,
                    message: Some(other),
                };
                if let Err(code) = self
                    .forward(pb::edge_envelope::Event::Message(forwarded))
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
}

/// A read error's end: framing violations are answered with their RFC 6455
/// close code, not a bare TCP drop (which reads as a network failure and
/// makes clients resume). The conformance echo ends the same way.
pub(crate) fn end_of_read(err: tungstenite::Error) -> ReaderEnd {
    match err {
        tungstenite::Error::Capacity(err) => {
            ReaderEnd::Close(Some(ErrorCode::MessageTooLarge), err.to_string())
        }
        tungstenite::Error::Utf8(_) => ReaderEnd::Close(
            Some(ErrorCode::InvalidUtf8),
            "text frame is not valid utf-8".into(),
        ),
        // A dropped socket is a network failure, not a violation.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => ReaderEnd::Gone,
        tungstenite::Error::Protocol(err) => {
            tracing::debug!(error = %err, "websocket protocol violation");
            ReaderEnd::Close(
                Some(ErrorCode::ProtocolError),
                "websocket protocol violation".into(),
            )
        }
        err => {
            tracing::debug!(error = %err, "websocket read failed");
            ReaderEnd::Gone
        }
    }
}
