//! One WebSocket connection: a reader and a writer under one `select!`, a
//! queue between signal and the writer bounded in messages and bytes, and a
//! close with a code and a reason. Generic over any `Sink + Stream` of
//! WebSocket messages, with every timer from [`ConnectionLimits`], so the
//! lifecycle runs under `tokio::time::pause()` in unit tests.
//!
//! - `reader`: frames in, the timer state machine, rate limit, dispatch.
//! - `session`: join, resume and refresh (authentication).
//! - `writer`: frames out, pings, write deadlines, the close frame.
//!
//! Authorization (what a token permits) is `switchboard_proto::grants`.

mod reader;
mod session;
#[cfg(test)]
mod tests;
mod writer;

use std::{
    sync::{Arc, atomic::AtomicU8},
    time::Duration,
};

use futures_util::{Sink, Stream, StreamExt};
use switchboard_proto::{
    ErrorCode, LeaveReason,
    limits::{AUTH_DEADLINE, KEEPALIVE_TIMEOUT, PING_INTERVAL},
    pb,
};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message};

use switchboard_proto::{auth_client::AuthClient, token_bucket::TokenBucket};

use crate::{
    conns::{ConnHandle, Kill, Outbound},
    revocations::RecentRevocations,
    signal_link::SignalLink,
};
pub use reader::Preauth;
use reader::Reader;
pub(crate) use reader::ReaderEnd;
pub use session::preauth;
use writer::{FORMAT_JSON, WriterEnd, write_loop};
#[cfg(feature = "conformance-echo")]
pub(crate) use {reader::end_of_read, writer::close_frame};

/// Messages queued for one client before it counts as a slow consumer.
/// Above signal's resume log (512), so a full replay fits. Slots are
/// pointer-sized and allocated as used.
pub const OUTBOUND_QUEUE: usize = 1024;
/// Over-rate messages tolerated (each one is dropped with an error) before
/// the connection is closed; the allowance refills one per second.
pub const RATE_STRIKES: u32 = 50;

/// What a connection needs from the edge.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub link: SignalLink,
    pub auth: AuthClient,
    pub limits: ConnectionLimits,
    pub revocations: RecentRevocations,
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

/// Limits and timers of every WebSocket connection (flags; the limits
/// table of docs/protocol.md).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub rate: RateLimit,
    /// Join (or Resume) must arrive this long after the upgrade.
    pub auth_deadline: Duration,
    /// How often the edge pings, and clients should send Ping.
    pub ping_interval: Duration,
    /// A joined connection silent this long is closed.
    pub keepalive_timeout: Duration,
    /// A frame the client's socket cannot take within this long closes the
    /// connection as a slow consumer (its session stays resumable).
    pub write_timeout: Duration,
    /// Bytes queued for one client before it is a slow consumer.
    pub outbound_bytes: usize,
    /// A token verified at the upgrade (Authorization header) and older
    /// than this at the join is verified again.
    pub preauth_max_age: Duration,
    /// How long the closing handshake may take.
    pub close_flush: Duration,
    /// When the edge drains, each connection is closed (1012, reconnect)
    /// after its own random delay below this, so the clients of a draining
    /// edge reach the others spread over this window, not in one storm.
    pub drain_spread: Duration,
}

/// Default [`ConnectionLimits::write_timeout`].
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionLimits::outbound_bytes`].
pub const OUTBOUND_BYTES: usize = 1024 * 1024;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            rate: RateLimit::default(),
            auth_deadline: AUTH_DEADLINE,
            ping_interval: PING_INTERVAL,
            keepalive_timeout: KEEPALIVE_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            outbound_bytes: OUTBOUND_BYTES,
            preauth_max_age: Duration::from_secs(1),
            close_flush: Duration::from_secs(2),
            drain_spread: Duration::ZERO,
        }
    }
}

/// Serves one upgraded connection until it closes. `preauth` holds the
/// token and claims verified from an `Authorization` header at the upgrade.
pub async fn serve<W>(
    ws: W,
    ctx: Arc<ConnectionContext>,
    preauth: Option<Preauth>,
    shutdown: watch::Receiver<bool>,
) where
    W: Stream<Item = Result<Message, tungstenite::Error>>
        + Sink<Message, Error = tungstenite::Error>
        + Unpin
        + Send
        + 'static,
{
    let _open = switchboard_proto::metrics::OpenConnection::new();
    let limits = ctx.limits;
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (kill_tx, kill_rx) = watch::channel(None);
    let handle = ConnHandle::new(out_tx, kill_tx, limits.outbound_bytes);
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
        // Boxed: most connections have none, and it is gone after the join.
        preauth: preauth.map(Box::new),
        joined: false,
        token: None,
        leave_reason: LeaveReason::Disconnected,
        acked: 0,
        bucket: TokenBucket::new(limits.rate.per_second, limits.rate.burst, now),
        strikes: TokenBucket::new(1, RATE_STRIKES, now),
        signals: 0,
    };
    let writing = write_loop(
        sink,
        out_rx,
        handle.clone(),
        kill_rx.clone(),
        shutdown,
        format,
        limits,
    );
    tokio::pin!(writing);
    let mut killed = kill_rx;
    let writer_end = {
        let reading = reader.run(&mut stream);
        tokio::pin!(reading);
        tokio::select! {
            biased;
            // Killed (revoked, slow consumer, link lost): nothing more from
            // this client reaches the room, even if the writer is stuck on
            // a socket that does not drain.
            () = was_killed(&mut killed) => flush(&mut writing, limits.close_flush).await,
            end = &mut reading => match end {
                ReaderEnd::Close(code, reason) => {
                    handle.push(Outbound::Close(code, reason));
                    // Let the writer flush what is queued and the close frame.
                    flush(&mut writing, limits.close_flush).await
                }
                ReaderEnd::Gone => WriterEnd::Failed,
                ReaderEnd::Killed => flush(&mut writing, limits.close_flush).await,
            },
            end = &mut writing => end,
        }
    };
    ctx.link.deregister(conn);
    // A revoked or expired token ends the session now; anything else
    // leaves it waiting for a resume.
    let leave_reason = match handle.kill.borrow().as_ref().map(|k| k.code) {
        Some(ErrorCode::TokenRevoked) => LeaveReason::Revoked,
        Some(ErrorCode::TokenExpired) => LeaveReason::Expired,
        _ => reader.leave_reason,
    };
    if reader.joined {
        let closed = pb::CloseSession {
            reason: leave_reason as i32,
        };
        let _ = Box::pin(
            ctx.link
                .send(lane, conn, pb::edge_envelope::Event::Closed(closed)),
        )
        .await;
    }
    if writer_end == WriterEnd::Flushed {
        // Finish the closing handshake: read (and discard) until the client
        // answers the close. Closing the socket with unread input would
        // make the kernel send RST, and the client could lose the close
        // frame and its code.
        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
        let _ = tokio::time::timeout(limits.close_flush, drain).await;
    }
    // Dropping the stream (and the writer with its sink) drops the socket.
    tracing::debug!(conn = %conn, "connection closed");
}

/// Waits for the writer to end, at most `deadline`; a writer that does not
/// end in time could not flush its close.
async fn flush(writing: impl Future<Output = WriterEnd>, deadline: Duration) -> WriterEnd {
    tokio::time::timeout(deadline, writing)
        .await
        .unwrap_or(WriterEnd::Failed)
}

/// Resolves once the connection is killed.
async fn was_killed(kill: &mut watch::Receiver<Option<Kill>>) {
    if kill.wait_for(Option::is_some).await.is_err() {
        std::future::pending::<()>().await;
    }
}
