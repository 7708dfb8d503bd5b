//! The writing half of a connection: encodes queued messages in the
//! client's format, sends WebSocket pings, and ends with a close frame.
//! Every send has a deadline: a client whose socket does not take a frame
//! in time is a slow consumer, and its connection is dropped.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use switchboard_proto::{
    ErrorCode,
    wire::{self, EncodedFrame, Format},
};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_tungstenite::tungstenite::{
    self, Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

use super::ConnectionLimits;
use crate::conns::{ConnHandle, Kill, Outbound};

/// How the writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterEnd {
    /// The close frame (if any) is out: the closing handshake may finish.
    Flushed,
    /// The socket failed or did not take a frame in time: drop it.
    Failed,
}

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

/// A uniformly random delay below `spread` (zero for zero).
fn jitter(spread: Duration) -> Duration {
    let micros = spread.as_micros().min(u128::from(u64::MAX)) as u64;
    if micros == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(rand::random_range(0..micros))
}

pub(crate) async fn write_loop<S>(
    mut sink: S,
    mut outbound: mpsc::Receiver<Outbound>,
    handle: ConnHandle,
    mut kill: watch::Receiver<Option<Kill>>,
    mut shutdown: watch::Receiver<bool>,
    format: Arc<AtomicU8>,
    limits: ConnectionLimits,
) -> WriterEnd
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let deadline = limits.write_timeout;
    let mut ping =
        tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
    // Frames written together: everything already queued when the writer
    // wakes goes out in one flush (one syscall for a burst, not one per
    // frame), up to these bounds.
    let mut frames: Vec<Message> = Vec::new();
    // The drain: this connection's turn comes a random delay after the
    // edge starts draining (ConnectionLimits::drain_spread); meanwhile it
    // keeps relaying.
    let drain_turn = async move {
        crate::stopped(&mut shutdown).await;
        tokio::time::sleep(jitter(limits.drain_spread)).await;
    };
    tokio::pin!(drain_turn);
    let close = loop {
        let first = tokio::select! {
            biased;
            killed = async { kill.wait_for(Option::is_some).await.ok().and_then(|k| k.clone()) } => {
                break killed.map(|k| close_frame(Some(k.code), &k.reason));
            }
            () = &mut drain_turn => {
                break Some(close_frame(Some(ErrorCode::ShuttingDown), "edge is draining; reconnect"));
            }
            item = outbound.recv() => match item {
                Some(item) => {
                    handle.dequeued(&item);
                    match item {
                        Outbound::Message(message) => encode(&message, &format),
                        Outbound::Close(code, reason) => break Some(close_frame(code, &reason)),
                    }
                }
                None => break None,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        let mut bytes = first.len();
        frames.push(first);
        let mut closing = None;
        while frames.len() < MAX_COALESCED_FRAMES && bytes < MAX_COALESCED_BYTES {
            let Ok(item) = outbound.try_recv() else { break };
            handle.dequeued(&item);
            match item {
                Outbound::Message(message) => {
                    let frame = encode(&message, &format);
                    bytes += frame.len();
                    frames.push(frame);
                }
                Outbound::Close(code, reason) => {
                    closing = Some(close_frame(code, &reason));
                    break;
                }
            }
        }
        if let Some(end) = send(&mut sink, &mut frames, deadline, &handle).await {
            return end;
        }
        if closing.is_some() {
            break closing;
        }
    };
    if let Some(frame) = &close {
        switchboard_proto::metrics::metrics().close(u16::from(frame.code));
    }
    // A close the client started was answered by tungstenite already: a
    // send error here is no reason to skip the flush below.
    if let Some(frame) = close
        && tokio::time::timeout(deadline, sink.send(Message::Close(Some(frame))))
            .await
            .is_err()
    {
        return WriterEnd::Failed;
    }
    match tokio::time::timeout(deadline, sink.close()).await {
        Ok(_) => WriterEnd::Flushed,
        Err(_) => WriterEnd::Failed,
    }
}

/// Most frames, and bytes, written in one flush.
const MAX_COALESCED_FRAMES: usize = 64;
const MAX_COALESCED_BYTES: usize = 64 * 1024;

fn encode(message: &switchboard_proto::pb::ServerMessage, format: &AtomicU8) -> Message {
    note_session(message);
    let metrics = switchboard_proto::metrics::metrics();
    metrics.message_out(switchboard_proto::metrics::out_kind(
        message.message.as_ref(),
    ));
    match wire::encode_server(load_format(format), message) {
        EncodedFrame::Text(text) => Message::text(text),
        EncodedFrame::Binary(bytes) => Message::binary(bytes),
    }
}

/// The connection's log span (`conn`, current while it is served) learns
/// its session and room as the client does.
fn note_session(message: &switchboard_proto::pb::ServerMessage) {
    use switchboard_proto::pb::server_message::Message as Out;
    let (session, room) = match &message.message {
        Some(Out::Joined(joined)) => (Some(&joined.session_id), Some(&joined.room)),
        Some(Out::Resumed(resumed)) => (Some(&resumed.session_id), None),
        Some(Out::Moved(moved)) => (None, Some(&moved.room)),
        _ => return,
    };
    let span = tracing::Span::current();
    if let Some(session) = session {
        span.record("session", session.as_str());
    }
    if let Some(room) = room {
        span.record("room", room.as_str());
    }
}

/// Writes `frames` (draining it) and flushes them within `deadline`; `Some`
/// ends the writer.
async fn send<S>(
    sink: &mut S,
    frames: &mut Vec<Message>,
    deadline: std::time::Duration,
    handle: &ConnHandle,
) -> Option<WriterEnd>
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let mut sending = std::pin::pin!(async {
        for frame in frames.drain(..) {
            sink.feed(frame).await?;
        }
        sink.flush().await
    });
    // The common case, a socket that takes the frames at once, arms no
    // timer (and the timer's state is boxed, off the connection's future).
    if let Some(sent) = futures_util::FutureExt::now_or_never(&mut sending) {
        return sent.err().map(|_| WriterEnd::Failed);
    }
    match Box::pin(tokio::time::timeout(deadline, sending)).await {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(WriterEnd::Failed),
        Err(_) => {
            tracing::debug!("client did not take a frame within the write timeout");
            handle.kill(ErrorCode::SlowConsumer, "write timed out");
            Some(WriterEnd::Failed)
        }
    }
}
