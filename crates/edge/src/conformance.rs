//! An echo on the edge's own WebSocket stack, for the Autobahn conformance
//! cases (`scripts/autobahn.sh`, docs/security.md): the same handshake
//! checks, the same `websocket_config()` (frame and message limits,
//! masking), the same ends of a read (close codes for violations) and the
//! same close frames as a signaling connection; only what is done with a
//! message differs (it is sent back).
//!
//! Compiled only with the `conformance-echo` feature, which no package of
//! the workspace enables: the `conformance-echo` binary is built on its own
//! (`cargo build -p switchboard-edge --features conformance-echo`), and the
//! `switchboard` binary has no such route (a test checks it).

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

use crate::connection::{ReaderEnd, close_frame, end_of_read};

/// The path of the echo.
pub const PATH: &str = "/conformance/echo";

/// Sends every text and binary message back until the client closes.
pub(crate) async fn echo<S>(ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    while let Some(frame) = stream.next().await {
        let sent = match frame {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => sink.send(message).await,
            // Pongs (and the answer to a close) are queued by tungstenite:
            // flushing sends them.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => sink.flush().await,
            Ok(Message::Close(_)) => {
                let _ = sink.flush().await;
                break;
            }
            Err(err) => {
                if let ReaderEnd::Close(code, reason) = end_of_read(err) {
                    let _ = sink
                        .send(Message::Close(Some(close_frame(code, &reason))))
                        .await;
                }
                break;
            }
        };
        if sent.is_err() {
            break;
        }
    }
}
