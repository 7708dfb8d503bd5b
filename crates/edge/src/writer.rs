//! The writing half of a connection: encodes queued messages in the
//! client's format, sends WebSocket pings, and ends with a close frame.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use futures_util::{SinkExt, stream::SplitSink};
use switchboard_proto::{
    ErrorCode,
    limits::PING_INTERVAL,
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
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::conns::{Kill, Outbound};

pub const FORMAT_JSON: u8 = 0;
pub const FORMAT_BINARY: u8 = 1;

fn load_format(format: &AtomicU8) -> Format {
    if format.load(Ordering::Relaxed) == FORMAT_BINARY {
        Format::Binary
    } else {
        Format::Json
    }
}

pub(crate) fn close_frame(code: Option<ErrorCode>, reason: &str) -> CloseFrame {
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

pub(crate) async fn write_loop<S>(
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
