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

use futures_util::{SinkExt, StreamExt, stream::SplitSink, stream::SplitStream};
use switchboard_proto::{
    ConnId, ErrorCode, SignalError,
    limits::{AUTH_DEADLINE, KEEPALIVE_TIMEOUT, MAX_MESSAGE_BYTES, PING_INTERVAL},
    pb::{self, client_message::Message as In, server_message::Message as Out},
    wire::{self, EncodedFrame, Format},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::{
    auth_client::AuthClient,
    conns::{ConnHandle, Kill, Outbound},
    rate::TokenBucket,
    signal_link::SignalLink,
};

/// Messages queued for one client before it counts as a slow consumer.
pub const OUTBOUND_QUEUE: usize = 256;
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
    /// The client closed or the socket failed: nothing more to say.
    Gone,
    /// Close with this error (`None` = normal).
    Close(Option<ErrorCode>, String),
}

const FORMAT_JSON: u8 = 0;
const FORMAT_BINARY: u8 = 1;

fn load_format(format: &AtomicU8) -> Format {
    if format.load(Ordering::Relaxed) == FORMAT_BINARY {
        Format::Binary
    } else {
        Format::Json
    }
}

/// Serves one upgraded connection until it closes. `preauth` holds claims
/// verified from an `Authorization` header at the upgrade.
pub async fn serve<S>(
    ws: WebSocketStream<S>,
    ctx: ConnectionContext,
    preauth: Option<pb::Claims>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (kill_tx, kill_rx) = watch::channel(None);
    let handle = ConnHandle {
        outbound: out_tx,
        kill: kill_tx,
    };
    let conn = ctx.link.register(handle.clone());
    let format = Arc::new(AtomicU8::new(FORMAT_JSON));
    let (sink, mut stream) = ws.split();

    let mut reader = Reader {
        conn,
        ctx: ctx.clone(),
        handle: handle.clone(),
        format: format.clone(),
        preauth,
        joined: false,
        bucket: TokenBucket::new(ctx.rate.per_second, ctx.rate.burst, std::time::Instant::now()),
        strikes: TokenBucket::new(1, RATE_STRIKES, std::time::Instant::now()),
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
    if reader.joined {
        let closed = pb::CloseSession {
            code: String::new(),
            reason: "disconnected".into(),
        };
        let _ = ctx
            .link
            .send(conn, pb::edge_envelope::Event::Closed(closed))
            .await;
    }
    tracing::debug!(conn = %conn, "connection closed");
}

struct Reader {
    conn: ConnId,
    ctx: ConnectionContext,
    handle: ConnHandle,
    format: Arc<AtomicU8>,
    preauth: Option<pb::Claims>,
    joined: bool,
    bucket: TokenBucket,
    strikes: TokenBucket,
}

impl Reader {
    async fn run<S>(&mut self, stream: &mut SplitStream<WebSocketStream<S>>) -> ReaderEnd
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut deadline = Instant::now() + AUTH_DEADLINE;
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = tokio::time::sleep_until(deadline) => {
                    return if self.joined {
                        ReaderEnd::Close(Some(ErrorCode::KeepaliveTimeout), "no message within the keepalive timeout".into())
                    } else {
                        ReaderEnd::Close(Some(ErrorCode::Unauthenticated), "no join within the auth deadline".into())
                    };
                }
            };
            if self.joined {
                deadline = Instant::now() + KEEPALIVE_TIMEOUT;
            }
            let (format, data) = match frame {
                None => return ReaderEnd::Gone,
                Some(Ok(Message::Text(text))) => (Format::Json, text.as_bytes().to_vec()),
                Some(Ok(Message::Binary(bytes))) => (Format::Binary, bytes.to_vec()),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_))) => return ReaderEnd::Gone,
                Some(Err(tungstenite::Error::Capacity(err))) => {
                    return ReaderEnd::Close(Some(ErrorCode::MessageTooLarge), err.to_string());
                }
                Some(Err(err)) => {
                    tracing::debug!(conn = %self.conn, error = %err, "websocket read failed");
                    return ReaderEnd::Gone;
                }
            };
            self.format.store(
                if format == Format::Binary {
                    FORMAT_BINARY
                } else {
                    FORMAT_JSON
                },
                Ordering::Relaxed,
            );
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
            let message = match wire::decode_client(format, &data) {
                Ok(message) => message,
                Err(err) => {
                    self.reply_error(err.request_id, err.error);
                    continue;
                }
            };
            if let Some(end) = self.dispatch(message).await {
                return end;
            }
            if self.joined && deadline > Instant::now() + KEEPALIVE_TIMEOUT {
                deadline = Instant::now() + KEEPALIVE_TIMEOUT;
            }
        }
    }

    /// Answers with an error outside any session log (seq 0).
    fn reply_error(&self, request_id: u32, error: SignalError) {
        self.reply(Out::Error(error.to_proto(request_id)));
    }

    fn reply(&self, message: Out) {
        self.handle
            .push(Outbound::Message(Box::new(pb::ServerMessage {
                seq: 0,
                message: Some(message),
            })));
    }

    /// Handles one parsed message; `Some` ends the connection.
    async fn dispatch(&mut self, message: pb::ClientMessage) -> Option<ReaderEnd> {
        let id = message.id;
        match message.message {
            // Keepalive is answered here: no need to bother signal.
            Some(In::Ping(ping)) => {
                self.reply(Out::Pong(pb::Pong { nonce: ping.nonce }));
                None
            }
            Some(In::Join(join)) if !self.joined => self.join(id, join).await,
            Some(In::Resume(_)) if !self.joined => {
                // Sessions end with their connection until resume lands, so
                // there is never a session to resume: the client must join.
                self.reply_error(
                    id,
                    SignalError::new(ErrorCode::NotFound, "no such session to resume"),
                );
                Some(ReaderEnd::Close(
                    Some(ErrorCode::NotFound),
                    "no such session to resume".into(),
                ))
            }
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
                let leaving = matches!(other, In::Leave(_));
                let forwarded = pb::ClientMessage {
                    id,
                    message: Some(other),
                };
                if let Err(code) = self
                    .ctx
                    .link
                    .send(self.conn, pb::edge_envelope::Event::Message(forwarded))
                    .await
                {
                    return Some(ReaderEnd::Close(Some(code), "signal unavailable".into()));
                }
                if leaving {
                    // Signal closes the connection (1000) once the room knows.
                    self.joined = false;
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

    async fn join(&mut self, id: u32, join: pb::Join) -> Option<ReaderEnd> {
        let claims = match (self.preauth.take(), join.token.as_str()) {
            (Some(claims), "") => Ok(claims),
            (_, token) => self.ctx.auth.verify(token).await,
        };
        let claims = match claims {
            Ok(claims) => claims,
            Err(err) => {
                tracing::info!(conn = %self.conn, code = %err.code, "join refused");
                self.reply_error(id, err.clone());
                return Some(ReaderEnd::Close(Some(err.code), err.message));
            }
        };
        let open = pb::OpenSession {
            request_id: id,
            identity: claims.subject,
            room: claims.room,
            name: claims.name,
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
            }),
        };
        if let Err(code) = self
            .ctx
            .link
            .send(self.conn, pb::edge_envelope::Event::Open(open))
            .await
        {
            self.reply_error(id, SignalError::new(code, "signal unavailable"));
            return Some(ReaderEnd::Close(Some(code), "signal unavailable".into()));
        }
        self.joined = true;
        None
    }
}

fn close_frame(code: Option<ErrorCode>, reason: &str) -> CloseFrame {
    let (code, text) = match code {
        None => (CloseCode::Normal, reason.to_owned()),
        Some(code) => (
            CloseCode::from(code.close_code()),
            format!("{code}: {reason}"),
        ),
    };
    // A close reason is at most 123 bytes; cut on a char boundary.
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: text[..end].to_owned().into(),
    }
}

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outbound: mpsc::Receiver<Outbound>,
    mut kill: watch::Receiver<Option<Kill>>,
    mut shutdown: watch::Receiver<bool>,
    format: Arc<AtomicU8>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let close = loop {
        tokio::select! {
            biased;
            killed = async { kill.wait_for(Option::is_some).await.ok().and_then(|k| k.clone()) } => {
                break killed.map(|k| close_frame(Some(k.code), &k.reason));
            }
            () = crate::stopped(&mut shutdown) => {
                break Some(close_frame(Some(ErrorCode::ShuttingDown), "edge is restarting; reconnect"));
            }
            item = outbound.recv() => match item {
                Some(Outbound::Message(message)) => {
                    let frame = match wire::encode_server(load_format(&format), &message) {
                        EncodedFrame::Text(text) => Message::text(text),
                        EncodedFrame::Binary(bytes) => Message::binary(bytes),
                    };
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                }
                Some(Outbound::Close(code, reason)) => break Some(close_frame(code, &reason)),
                None => break None,
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    };
    if let Some(frame) = close {
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}
