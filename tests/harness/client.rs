//! A WebSocket test client speaking the browser protocol, JSON or binary.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_proto::{
    pb::{self, client_message::Message as In, server_message::Message as Out},
    wire::{self, EncodedFrame, Format},
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::wait::DEADLINE;

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub format: Format,
    next_id: u32,
    /// Highest seq seen.
    pub last_seq: u64,
}

/// A handshake the edge refused: its HTTP status, body and Retry-After.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<String>,
}

impl Refused {
    fn of(response: &tungstenite::http::Response<Option<Vec<u8>>>) -> Self {
        Self {
            status: response.status().as_u16(),
            body: response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
            retry_after: response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// How [`WsClient::connect_socket`] makes its socket.
#[derive(Debug, Default, Clone)]
pub struct SocketOptions {
    /// SO_RCVBUF in bytes.
    pub recv_buffer: Option<u32>,
    /// Source address (e.g. 127.0.0.2) to connect from.
    pub source: Option<std::net::IpAddr>,
    /// An `X-Forwarded-For` header to send.
    pub forwarded_for: Option<String>,
}

impl WsClient {
    /// Connects with the edge's own origin.
    pub async fn connect(ws_url: &str, format: Format) -> Self {
        let origin = ws_url
            .replacen("ws://", "http://", 1)
            .trim_end_matches("/ws")
            .to_owned();
        Self::connect_with(ws_url, Some(&origin), None, format)
            .await
            .expect("handshake accepted")
    }

    /// Connects with a chosen Origin and optional bearer token.
    pub async fn connect_with(
        ws_url: &str,
        origin: Option<&str>,
        bearer: Option<&str>,
        format: Format,
    ) -> Result<Self, Refused> {
        let mut request = ws_url.into_client_request().expect("request");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).expect("origin"));
        }
        if let Some(token) = bearer {
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("auth"),
            );
        }
        Self::handshake(tokio_tungstenite::connect_async(request), format).await
    }

    /// Connects with the edge's own origin over a socket whose receive
    /// buffer is `recv_buffer` bytes: a client that never reads fills it
    /// at once.
    pub async fn connect_small_buffer(ws_url: &str, recv_buffer: u32, format: Format) -> Self {
        let options = SocketOptions {
            recv_buffer: Some(recv_buffer),
            ..SocketOptions::default()
        };
        Self::connect_socket(ws_url, &options, format)
            .await
            .expect("handshake accepted")
    }

    /// Connects with the edge's own origin over a socket made as `options`
    /// say (source address, receive buffer, X-Forwarded-For).
    pub async fn connect_socket(
        ws_url: &str,
        options: &SocketOptions,
        format: Format,
    ) -> Result<Self, Refused> {
        let origin = ws_url
            .replacen("ws://", "http://", 1)
            .trim_end_matches("/ws")
            .to_owned();
        let mut request = ws_url.into_client_request().expect("request");
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(&origin).expect("origin"));
        if let Some(hops) = &options.forwarded_for {
            request.headers_mut().insert(
                "x-forwarded-for",
                HeaderValue::from_str(hops).expect("x-forwarded-for"),
            );
        }
        let addr = request
            .uri()
            .authority()
            .expect("authority")
            .as_str()
            .to_owned();
        let addr: std::net::SocketAddr = addr.parse().expect("socket address");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(bytes) = options.recv_buffer {
            socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        }
        if let Some(source) = options.source {
            socket
                .bind(std::net::SocketAddr::new(source, 0))
                .expect("bind source address");
        }
        let stream = socket.connect(addr).await.expect("connect");
        let handshake = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
        Self::handshake(handshake, format).await
    }

    /// Waits for `handshake` (with the deadline): a client, or the refusal.
    async fn handshake<R>(
        handshake: impl std::future::Future<
            Output = Result<(WebSocketStream<MaybeTlsStream<TcpStream>>, R), tungstenite::Error>,
        >,
        format: Format,
    ) -> Result<Self, Refused> {
        match tokio::time::timeout(DEADLINE, handshake).await {
            Ok(Ok((ws, _))) => Ok(Self {
                ws,
                format,
                next_id: 1,
                last_seq: 0,
            }),
            Ok(Err(tungstenite::Error::Http(response))) => Err(Refused::of(&response)),
            Ok(Err(err)) => panic!("websocket handshake failed: {err}"),
            Err(_) => panic!("websocket handshake timed out"),
        }
    }

    /// Sends `message` with a fresh request id; returns the id.
    pub async fn send(&mut self, message: In) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_with_id(id, message).await;
        id
    }

    pub async fn send_with_id(&mut self, id: u32, message: In) {
        self.send_message(&pb::ClientMessage {
            id,
            seq: 0,
            ack: 0,
            message: Some(message),
        })
        .await;
    }

    /// Sends a whole client message as it is (id and seq included).
    pub async fn send_message(&mut self, message: &pb::ClientMessage) {
        let frame = wire::encode_client(self.format, message);
        let frame = match frame {
            EncodedFrame::Text(text) => Message::text(text),
            EncodedFrame::Binary(bytes) => Message::binary(bytes),
        };
        self.send_raw(frame).await;
    }

    /// Sends a whole client message; fails if the connection is gone.
    pub async fn try_send_message(
        &mut self,
        message: &pb::ClientMessage,
    ) -> Result<(), tungstenite::Error> {
        let frame = match wire::encode_client(self.format, message) {
            EncodedFrame::Text(text) => Message::text(text),
            EncodedFrame::Binary(bytes) => Message::binary(bytes),
        };
        self.ws.send(frame).await
    }

    /// Writes `bytes` straight to the socket, under the WebSocket layer
    /// (hand-made frames: invalid UTF-8, reserved bits, bad opcodes).
    pub async fn write_raw_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        match self.ws.get_mut() {
            MaybeTlsStream::Plain(socket) => socket.write_all(bytes).await.expect("write"),
            _ => panic!("raw bytes need a plain socket"),
        }
    }

    pub async fn send_raw(&mut self, frame: Message) {
        self.ws.send(frame).await.expect("send");
    }

    /// Sends a frame the server may refuse mid-write.
    pub async fn try_send_raw(&mut self, frame: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(frame).await
    }

    /// The next server message; panics on close or after the deadline.
    pub async fn recv(&mut self) -> pb::ServerMessage {
        match self.next().await {
            Ok(message) => message,
            Err(closed) => panic!("connection closed while waiting for a message: {closed:?}"),
        }
    }

    /// The next server message, or how the connection closed.
    pub async fn next(&mut self) -> Result<pb::ServerMessage, Closed> {
        self.next_within(DEADLINE)
            .await
            .expect("timed out waiting for a frame")
    }

    /// The next server message, or how the connection closed; `None` when
    /// nothing came within `within`.
    pub async fn next_within(
        &mut self,
        within: Duration,
    ) -> Option<Result<pb::ServerMessage, Closed>> {
        let until = tokio::time::Instant::now() + within;
        Some(loop {
            let frame = tokio::time::timeout_at(until, self.ws.next()).await.ok()?;
            let (format, data) = match frame {
                Some(Ok(Message::Text(text))) => (Format::Json, text.as_bytes().to_vec()),
                Some(Ok(Message::Binary(bytes))) => (Format::Binary, bytes.to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    break Err(Closed { code, reason });
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    break Err(Closed {
                        code: 1006,
                        reason: "abnormal".into(),
                    });
                }
            };
            assert_eq!(format, self.format, "server answered in another format");
            let message = wire::decode_server(format, &data).expect("server frame decodes");
            if message.seq > 0 {
                assert_eq!(message.seq, self.last_seq + 1, "seq must increase by one");
                self.last_seq = message.seq;
            }
            break Ok(message);
        })
    }

    /// Skips messages until one matches `pick`.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&Out) -> Option<T>) -> T {
        loop {
            let message = self.recv().await;
            if let Some(found) = message.message.as_ref().and_then(&mut pick) {
                return found;
            }
        }
    }

    /// The next peer signal (skipping other messages).
    pub async fn next_signal(&mut self) -> pb::PeerSignal {
        self.recv_until(|m| {
            if let Out::Signal(s) = m {
                Some(s.clone())
            } else {
                None
            }
        })
        .await
    }

    /// The next error (skipping other messages).
    pub async fn next_error(&mut self) -> pb::Error {
        self.recv_until(|m| {
            if let Out::Error(e) = m {
                Some(e.clone())
            } else {
                None
            }
        })
        .await
    }

    /// The next `participantLeft` (skipping other messages).
    pub async fn next_left(&mut self) -> pb::ParticipantLeft {
        self.recv_until(|m| {
            if let Out::ParticipantLeft(l) = m {
                Some(l.clone())
            } else {
                None
            }
        })
        .await
    }

    /// Waits for the close frame (skipping messages before it).
    pub async fn closed(&mut self) -> Closed {
        loop {
            if let Err(closed) = self.next().await {
                return closed;
            }
        }
    }

    /// Joins with `token`; returns the Joined reply.
    pub async fn join(&mut self, token: &str) -> pb::Joined {
        self.join_with(token, Default::default()).await
    }

    pub async fn join_with(
        &mut self,
        token: &str,
        attributes: std::collections::HashMap<String, String>,
    ) -> pb::Joined {
        let id = self
            .send(In::Join(Box::new(pb::Join {
                token: token.into(),
                attributes,
                room: String::new(),
                traceparent: String::new(),
            })))
            .await;
        let message = self.recv().await;
        match message.message {
            Some(Out::Joined(joined)) => {
                assert_eq!(joined.request_id, id);
                assert_eq!(message.seq, 1, "Joined is the first message of a session");
                joined
            }
            other => panic!("expected joined, got {other:?}"),
        }
    }

    /// Resumes a session on this (new) connection, continuing the seq
    /// check from `last_seq`. Returns the Resumed reply, or the error.
    pub async fn resume(
        &mut self,
        session_id: &str,
        resume_token: &str,
        last_seq: u64,
        token: &str,
    ) -> Result<pb::Resumed, pb::Error> {
        self.last_seq = last_seq;
        let id = self
            .send(In::Resume(pb::Resume {
                session_id: session_id.into(),
                resume_token: resume_token.into(),
                last_seq,
                token: token.into(),
            }))
            .await;
        let message = self.recv().await;
        match message.message {
            Some(Out::Resumed(resumed)) => {
                assert_eq!(
                    (resumed.request_id, message.seq),
                    (id, 0),
                    "Resumed answers the request, seq 0"
                );
                Ok(resumed)
            }
            Some(Out::Error(error)) => {
                assert_eq!(error.request_id, id);
                Err(error)
            }
            other => panic!("expected resumed, got {other:?}"),
        }
    }

    /// Sends a signal to `to`; returns the request id.
    pub async fn signal(&mut self, to: &str, kind: pb::peer_signal::Kind) -> u32 {
        self.send(In::Signal(pb::PeerSignal {
            to: to.into(),
            from: String::new(),
            kind: Some(kind),
            probe: None,
        }))
        .await
    }

    /// Round trip through signal on this session's path: everything signal
    /// queued for this client before the barrier arrives before its Ack.
    /// (It updates presence, which others see as ParticipantUpdated.)
    pub async fn barrier(&mut self) -> Vec<pb::ServerMessage> {
        let id = self
            .send(In::UpdatePresence(pb::UpdatePresence::default()))
            .await;
        let mut before = Vec::new();
        loop {
            let message = self.recv().await;
            if let Some(Out::Ack(ack)) = &message.message
                && ack.request_id == id
            {
                return before;
            }
            before.push(message);
        }
    }

    /// Closes the socket abruptly (no close frame).
    pub fn drop_abruptly(self) {
        drop(self.ws);
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// An SDP offer or answer.
pub fn description(offer: bool, sdp: &str) -> pb::peer_signal::Kind {
    let r#type = if offer {
        pb::session_description::Type::Offer
    } else {
        pb::session_description::Type::Answer
    };
    pb::peer_signal::Kind::Description(pb::SessionDescription {
        r#type: r#type as i32,
        sdp: sdp.into(),
    })
}

/// A trickle-ICE candidate.
pub fn candidate(line: &str) -> pb::peer_signal::Kind {
    pb::peer_signal::Kind::Candidate(pb::IceCandidate {
        candidate: line.into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    })
}

/// A client frame (masked, as clients must) with the given first byte
/// (FIN, RSV bits, opcode) and payload; `masked: false` breaks the rule.
pub fn raw_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first, payload.len() as u8 | if masked { 0x80 } else { 0 }];
    if masked {
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}
