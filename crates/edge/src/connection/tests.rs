//! The connection lifecycle over an in-memory socket under paused time:
//! deadlines, keepalive, write timeouts, kills and the byte bound, with a
//! detached signal link whose lanes the test reads.

use std::time::Duration;

use switchboard_proto::{ErrorCode, LeaveReason, pb};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_tungstenite::{WebSocketStream, tungstenite::protocol::Role};

use super::{ConnectionContext, ConnectionLimits, Preauth, serve};
use switchboard_proto::auth_client::AuthClient;

use crate::{
    conns::{ConnHandle, Outbound},
    revocations::RecentRevocations,
    signal_link::{Queued, SignalLink},
};

/// A served connection and the client's raw end of its socket.
struct Harness {
    client: DuplexStream,
    link: SignalLink,
    lane: mpsc::Receiver<Queued>,
    revocations: RecentRevocations,
    served: JoinHandle<()>,
    _shutdown: watch::Sender<bool>,
}

fn limits() -> ConnectionLimits {
    ConnectionLimits::default()
}

fn claims(subject: &str) -> pb::Claims {
    pb::Claims {
        subject: subject.into(),
        token_id: format!("{subject}-jti"),
        chain: format!("{subject}-chain"),
        auth_time: 100,
        expires_at: crate::now_secs() + 3600,
        grants: Some(pb::Grants {
            room: "lobby".into(),
            publish: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Serves one connection; `socket_buffer` bounds each direction of the
/// in-memory socket (small: a client that does not read fills it fast).
fn start(limits: ConnectionLimits, socket_buffer: usize, preauth: Option<Preauth>) -> Harness {
    let (link, mut lanes) = SignalLink::detached(1);
    let (client, server) = tokio::io::duplex(socket_buffer);
    let revocations = RecentRevocations::default();
    let ctx = std::sync::Arc::new(ConnectionContext {
        link: link.clone(),
        // Never reached while the preauth is fresh.
        auth: AuthClient::new(
            switchboard_proto::grpc::Dial::new(
                "http://127.0.0.1:9",
                None,
                &switchboard_proto::mtls::PeerName::auth(),
            )
            .expect("dial"),
            None,
        ),
        limits,
        revocations: revocations.clone(),
    });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let served = tokio::spawn(async move {
        let ws = WebSocketStream::from_raw_socket(
            server,
            Role::Server,
            Some(crate::http::websocket_config()),
        )
        .await;
        serve(ws, ctx, preauth, shutdown).await;
    });
    Harness {
        client,
        link,
        lane: lanes.remove(0),
        revocations,
        served,
        _shutdown: shutdown_tx,
    }
}

fn fresh_preauth(subject: &str) -> Preauth {
    super::preauth(format!("{subject}-token"), claims(subject))
}

/// A masked client text frame.
fn text_frame(payload: &str) -> Vec<u8> {
    let payload = payload.as_bytes();
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let mask = [1u8, 2, 3, 4];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads server frames (never answering pings) until the close frame;
/// returns its code and reason.
async fn read_close(client: &mut DuplexStream) -> (u16, String) {
    loop {
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await.expect("frame head");
        let len = match head[1] & 0x7f {
            126 => client.read_u16().await.expect("len") as usize,
            127 => client.read_u64().await.expect("len") as usize,
            n => n as usize,
        };
        let mut payload = vec![0; len];
        client.read_exact(&mut payload).await.expect("payload");
        if head[0] & 0x0f == 0x8 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
}

fn join_frame() -> Vec<u8> {
    text_frame(r#"{"id":1,"join":{"room":"lobby"}}"#)
}

/// The next event sent towards signal.
async fn next_event(lane: &mut mpsc::Receiver<Queued>) -> pb::edge_envelope::Event {
    let (envelope, _) = lane.recv().await.expect("lane open");
    envelope.event.expect("event")
}

async fn joined(h: &mut Harness) {
    h.client.write_all(&join_frame()).await.expect("write");
    let event = next_event(&mut h.lane).await;
    assert!(
        matches!(event, pb::edge_envelope::Event::Open(_)),
        "{event:?}"
    );
}

fn only_handle(link: &SignalLink) -> ConnHandle {
    let mut handles = link.handles();
    assert_eq!(handles.len(), 1);
    handles.remove(0)
}

/// A big message from signal for the client.
fn big_message(bytes: usize) -> Outbound {
    Outbound::Message(Box::new(pb::ServerMessage {
        seq: 1,
        message: Some(pb::server_message::Message::Error(pb::Error {
            message: "x".repeat(bytes),
            ..Default::default()
        })),
    }))
}

#[tokio::test(start_paused = true)]
async fn no_join_within_the_auth_deadline_closes_unauthenticated() {
    let limits = ConnectionLimits {
        auth_deadline: Duration::from_secs(7),
        ..limits()
    };
    let mut h = start(limits, 64 * 1024, None);
    let start = Instant::now();
    let (code, reason) = read_close(&mut h.client).await;
    assert_eq!(code, ErrorCode::Unauthenticated.close_code(), "{reason}");
    assert!(reason.contains("auth deadline"), "{reason}");
    assert_eq!(start.elapsed().as_secs(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_silent_joined_client_is_closed_at_the_keepalive_timeout() {
    let limits = ConnectionLimits {
        ping_interval: Duration::from_secs(5),
        keepalive_timeout: Duration::from_secs(20),
        ..limits()
    };
    let mut h = start(limits, 64 * 1024, Some(fresh_preauth("alice")));
    joined(&mut h).await;
    let start = Instant::now();
    // Pings arrive every 5 s; the client never answers anything.
    let (code, reason) = read_close(&mut h.client).await;
    assert_eq!(code, ErrorCode::KeepaliveTimeout.close_code(), "{reason}");
    assert_eq!(start.elapsed().as_secs(), 20);
    // The session waits for a resume: the room hears "timeout".
    match next_event(&mut h.lane).await {
        pb::edge_envelope::Event::Closed(closed) => {
            assert_eq!(closed.reason(), LeaveReason::Timeout)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_is_dropped_at_the_write_timeout() {
    let limits = ConnectionLimits {
        write_timeout: Duration::from_secs(3),
        ..limits()
    };
    let mut h = start(limits, 4096, Some(fresh_preauth("alice")));
    joined(&mut h).await;
    let handle = only_handle(&h.link);
    let start = Instant::now();
    // Far more than the socket holds, far less than the queue bound.
    for _ in 0..16 {
        handle.push(big_message(8 * 1024));
    }
    tokio::time::timeout(Duration::from_secs(60), &mut h.served)
        .await
        .expect("the connection ended")
        .expect("no panic");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    let killed = handle.kill.borrow().clone().expect("killed");
    assert_eq!(
        (killed.code, killed.reason.as_str()),
        (ErrorCode::SlowConsumer, "write timed out")
    );
    // Released: deregistered, nothing queued; the session is resumable.
    assert_eq!(h.link.connections(), 0);
    assert_eq!(h.link.queued_bytes(), 0);
    match next_event(&mut h.lane).await {
        pb::edge_envelope::Event::Closed(closed) => {
            assert_eq!(closed.reason(), LeaveReason::Disconnected)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_outbound_queue_is_bounded_in_bytes() {
    let limits = ConnectionLimits {
        write_timeout: Duration::from_secs(3600),
        outbound_bytes: 64 * 1024,
        ..limits()
    };
    let mut h = start(limits, 4096, Some(fresh_preauth("alice")));
    joined(&mut h).await;
    let handle = only_handle(&h.link);
    // 12 × 8 KiB: a dozen messages (far under the count bound) but more
    // bytes than the bound, with the socket full after the first.
    for _ in 0..12 {
        handle.push(big_message(8 * 1024));
    }
    let killed = handle.kill.borrow().clone().expect("killed");
    assert_eq!(
        (killed.code, killed.reason.as_str()),
        (ErrorCode::SlowConsumer, "outbound queue full")
    );
    // The writer cannot flush a close into a full socket: the connection
    // is dropped after the close deadline, not at the write timeout.
    tokio::time::timeout(Duration::from_secs(10), &mut h.served)
        .await
        .expect("the connection ended")
        .expect("no panic");
    assert_eq!(h.link.queued_bytes(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_killed_client_that_does_not_read_relays_nothing_more() {
    let limits = ConnectionLimits {
        write_timeout: Duration::from_secs(3600),
        ..limits()
    };
    let mut h = start(limits, 4096, Some(fresh_preauth("mallory")));
    joined(&mut h).await;
    let handle = only_handle(&h.link);
    // Its socket is full: the writer is parked inside a send.
    for _ in 0..4 {
        handle.push(big_message(8 * 1024));
    }
    tokio::task::yield_now().await;
    handle.kill(ErrorCode::TokenRevoked, "token revoked");
    // It keeps sending; none of it may reach signal.
    let signal = r#"{"id":2,"signal":{"to":"bob","candidate":{"candidate":"candidate:1 1 udp 1 10.0.0.1 9 typ host"}}}"#;
    for _ in 0..20 {
        let _ = h.client.write_all(&text_frame(signal)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), &mut h.served)
        .await
        .expect("the connection ended")
        .expect("no panic");
    let mut events = Vec::new();
    while let Ok((envelope, _)) = h.lane.try_recv() {
        events.push(envelope.event.expect("event"));
    }
    assert!(
        matches!(events.as_slice(), [pb::edge_envelope::Event::Closed(c)] if c.reason() == LeaveReason::Revoked),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_revocation_that_arrived_during_verification_refuses_the_join() {
    let mut h = start(limits(), 64 * 1024, Some(fresh_preauth("mallory")));
    // Applied to the live connections before this one was registered.
    h.revocations.record(pb::Revocation {
        target: Some(pb::revocation::Target::Subject(pb::SubjectRevocation {
            subject: "mallory".into(),
            before: 200,
        })),
        ..Default::default()
    });
    h.client.write_all(&join_frame()).await.expect("write");
    let (code, reason) = read_close(&mut h.client).await;
    assert_eq!(code, ErrorCode::TokenRevoked.close_code(), "{reason}");
    assert!(reason.starts_with("token_revoked"), "{reason}");
    h.served.await.expect("no panic");
    assert!(h.lane.try_recv().is_err(), "signal never heard of it");
}

#[tokio::test(start_paused = true)]
async fn a_stale_preauthenticated_token_is_verified_again_at_the_join() {
    let mut h = start(limits(), 64 * 1024, Some(fresh_preauth("alice")));
    tokio::time::advance(Duration::from_secs(2)).await;
    // Auth is unreachable here, so the second verification fails.
    h.client.write_all(&join_frame()).await.expect("write");
    let (code, reason) = read_close(&mut h.client).await;
    assert_eq!(code, ErrorCode::Unavailable.close_code(), "{reason}");
    h.served.await.expect("no panic");
    assert!(h.lane.try_recv().is_err(), "signal never heard of it");
}

/// Every connection's task holds its future for the connection's life:
/// the cold paths (join, resume, token refresh, the goodbye to signal) are
/// boxed, so an idle connection does not carry their state (the tonic call
/// of a join alone is kilobytes).
#[tokio::test]
async fn an_idle_connection_s_future_is_small() {
    let (link, _lanes) = SignalLink::detached(1);
    let (_client, server) = tokio::io::duplex(1024);
    let ctx = std::sync::Arc::new(ConnectionContext {
        link,
        auth: AuthClient::new(
            switchboard_proto::grpc::Dial::new(
                "http://127.0.0.1:9",
                None,
                &switchboard_proto::mtls::PeerName::auth(),
            )
            .expect("dial"),
            None,
        ),
        limits: limits(),
        revocations: RecentRevocations::default(),
    });
    let ws = WebSocketStream::from_raw_socket(
        server,
        Role::Server,
        Some(crate::http::websocket_config()),
    )
    .await;
    let (_stop, shutdown) = watch::channel(false);
    let served = serve(ws, ctx, None, shutdown);
    let size = std::mem::size_of_val(&served);
    // 7,096 bytes before the cold paths were boxed.
    assert!(size <= 4096, "the connection future is {size} bytes");
}

/// A masked client ping frame.
fn ping_frame() -> Vec<u8> {
    vec![0x89, 0x80, 1, 2, 3, 4]
}

#[tokio::test(start_paused = true)]
async fn a_ping_flood_counts_against_the_message_rate() {
    let limits = ConnectionLimits {
        rate: super::RateLimit {
            per_second: 1,
            burst: 5,
        },
        ..ConnectionLimits::default()
    };
    let mut h = start(limits, 1 << 20, Some(fresh_preauth("alice")));
    joined(&mut h).await;
    // Each ping costs a pong; past the rate and its strikes, the
    // connection is closed like any other flood.
    let flood: Vec<u8> = (0..(5 + super::RATE_STRIKES as usize + 10))
        .flat_map(|_| ping_frame())
        .collect();
    h.client.write_all(&flood).await.expect("write");
    let (code, reason) = read_close(&mut h.client).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("rate"), "{reason}");
}
