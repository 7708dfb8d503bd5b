//! Bad input gets a typed error, never a crash, and the session goes on
//! where it can.

use switchboard_proto::{
    pb::{self, client_message::Message as In, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{Stack, WsClient, description};
use tokio_tungstenite::tungstenite::Message;

fn error_of(message: &Out) -> Option<pb::Error> {
    if let Out::Error(e) = message {
        Some(e.clone())
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_messages_get_typed_errors_and_the_session_goes_on() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;

    alice
        .send_raw(Message::text("{\"id\": 5, \"signal\": {"))
        .await;
    let err = alice.recv_until(error_of).await;
    assert_eq!(
        (err.code().as_str_name(), err.retryable),
        ("bad_request", false)
    );

    alice
        .send_raw(Message::text(r#"{"id": 6, "teleport": {"to": "mars"}}"#))
        .await;
    let err = alice.recv_until(error_of).await;
    assert_eq!(
        (err.code().as_str_name(), err.request_id),
        ("unknown_message", 6)
    );

    alice
        .send_raw(Message::text(r#"{"id": 7, "signal": {"to": 42}}"#))
        .await;
    assert_eq!(
        alice.recv_until(error_of).await.code().as_str_name(),
        "bad_request"
    );

    let nul = alice.signal("bob", description(true, "v=0\u{0}evil")).await;
    let err = alice.recv_until(error_of).await;
    assert_eq!(
        (err.code().as_str_name(), err.request_id),
        ("bad_request", nul)
    );

    let empty = alice
        .send(In::Signal(pb::PeerSignal {
            to: "bob".into(),
            ..Default::default()
        }))
        .await;
    assert_eq!(alice.recv_until(error_of).await.request_id, empty);

    // Still joined and working.
    alice
        .signal("bob", description(true, "v=0 still-here"))
        .await;
    let got = bob.next_signal().await;
    assert_eq!(got.kind, Some(description(true, "v=0 still-here")));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_protobuf_is_a_typed_error() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Binary).await;
    alice.join(&stack.token("alice", "r1")).await;
    alice
        .send_raw(Message::binary(vec![0x5a, 0xff, 0x01]))
        .await;
    assert_eq!(
        alice.recv_until(error_of).await.code().as_str_name(),
        "bad_request"
    );
    // Room operations before a join are refused, not crashed on.
    let mut early = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let id = early.signal("alice", description(true, "v=0")).await;
    let err = early.recv_until(error_of).await;
    assert_eq!(
        (err.code().as_str_name(), err.request_id),
        ("not_joined", id)
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_close_with_1009_and_others_are_unaffected() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut big = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;
    big.join(&stack.token("big", "r1")).await;

    let sdp = "a".repeat(70 * 1024);
    big.signal("alice", description(true, &sdp)).await;
    let closed = big.closed().await;
    assert_eq!(closed.code, 1009, "{closed:?}");

    // A 16 MiB frame is refused from its header, without being buffered:
    // the edge closes with 1009 while the client is still writing, so the
    // client sees the close frame or, if its kernel got the reset first, an
    // aborted connection. Either way the connection ends at once.
    let mut huge = WsClient::connect(&stack.ws_url(), Format::Binary).await;
    let sent = huge
        .try_send_raw(Message::binary(vec![0u8; 16 * 1024 * 1024]))
        .await;
    let closed = huge.closed().await;
    assert!(
        closed.code == 1009 || (sent.is_err() && closed.code == 1006),
        "{closed:?}"
    );

    alice
        .signal("bob", description(true, "v=0 after-the-flood"))
        .await;
    let got = bob.next_signal().await.from;
    assert_eq!(got, "alice");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_is_throttled_then_closed_with_1008() {
    let stack = Stack::start().await;
    let mut flood = WsClient::connect(&stack.ws_url(), Format::Json).await;
    flood.join(&stack.token("flood", "r1")).await;
    for _ in 0..600 {
        flood.send(In::Ping(pb::Ping { nonce: 1 })).await;
    }
    let mut rate_errors = 0;
    let closed = loop {
        match flood.next().await {
            Ok(message) => {
                if let Some(Out::Error(e)) = message.message {
                    assert_eq!(e.code().as_str_name(), "rate_limited");
                    rate_errors += 1;
                }
            }
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert!(rate_errors > 0, "throttled before being closed");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permessage_deflate_is_never_negotiated() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Stack::start().await;
    let addr = stack.edge_url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nOrigin: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
        stack.edge_url
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut head = vec![0u8; 1024];
    let n = tokio::time::timeout(switchboard_tests::DEADLINE, tcp.read(&mut head))
        .await
        .expect("answer")
        .expect("read");
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        !head.contains("sec-websocket-extensions"),
        "compression must stay off: {head}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_refused_at_accept_and_existing_sessions_carry_on() {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue};
    // The session cap (tested on its own) is lifted to the accept cap here.
    let stack = Stack::start_with(|config| {
        config.edge.max_connections = 8;
        config.edge.max_sessions = Some(8);
    })
    .await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;
    // 6 more joined WebSocket sessions fill the edge: the cap counts
    // upgraded sockets, not only HTTP requests in progress.
    let mut held = Vec::new();
    for i in 0..6 {
        let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
        client.join(&stack.token(&format!("h{i}"), "r1")).await;
        held.push(client);
    }
    // 20 beyond, with a valid Origin (so nothing but the cap can refuse
    // them), are dropped at accept: no HTTP answer at all.
    let origin = stack.edge_url.clone();
    let mut refused = 0;
    for _ in 0..20 {
        let mut request = stack.ws_url().into_client_request().expect("request");
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(&origin).expect("origin"));
        let attempt = tokio::time::timeout(
            switchboard_tests::DEADLINE,
            tokio_tungstenite::connect_async(request),
        )
        .await
        .expect("answered or dropped in time");
        match attempt {
            Ok(_) => {}
            Err(tungstenite::Error::Http(response)) => {
                panic!(
                    "refused by HTTP {} rather than by the cap",
                    response.status()
                )
            }
            Err(_) => refused += 1,
        }
    }
    assert_eq!(
        refused, 20,
        "every connection over the cap is dropped at accept"
    );
    alice
        .signal("bob", description(true, "v=0 still-fine"))
        .await;
    let got = bob.next_signal().await.from;
    assert_eq!(got, "alice");
    // A slot frees when a session's socket closes.
    held.pop().expect("held").close().await;
    switchboard_tests::wait_until("a slot is free again", switchboard_tests::DEADLINE, || {
        let (url, origin) = (stack.ws_url(), origin.clone());
        async move {
            let mut request = url.into_client_request().expect("request");
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(&origin).expect("origin"));
            tokio_tungstenite::connect_async(request).await.is_ok()
        }
    })
    .await;
    drop(held);
    stack.shutdown().await;
}

/// Framing violations get a close frame with the code RFC 6455 names
/// (never a bare TCP drop, which clients take for a network failure and
/// resume): invalid UTF-8 in a text frame → 1007; reserved bits, an unknown
/// opcode or an unmasked client frame → 1002. Each session only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_violations_close_with_1007_or_1002() {
    use switchboard_tests::raw_frame;
    let stack = Stack::start().await;
    let mut other = WsClient::connect(&stack.ws_url(), Format::Json).await;
    other.join(&stack.token("other", "frames")).await;
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "invalid utf-8 in a text frame",
            raw_frame(0x81, &[0xff, 0xfe, 0x41], true),
            1007,
        ),
        (
            "a reserved bit set",
            raw_frame(0x81 | 0x40, b"{}", true),
            1002,
        ),
        ("an unknown opcode", raw_frame(0x83, b"{}", true), 1002),
        (
            "an unmasked client frame",
            raw_frame(0x81, b"{}", false),
            1002,
        ),
    ];
    for (i, (what, frame, code)) in cases.into_iter().enumerate() {
        let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
        client.join(&stack.token(&format!("c{i}"), "frames")).await;
        client.write_raw_bytes(&frame).await;
        let closed = client.closed().await;
        assert_eq!(closed.code, code, "{what}: {closed:?}");
    }
    // The other session is untouched.
    other.send(In::Ping(pb::Ping { nonce: 7 })).await;
    let pong = other
        .recv_until(|m| match m {
            Out::Pong(p) => Some(p.nonce),
            _ => None,
        })
        .await;
    assert_eq!(pong, 7);
}

/// A candidate flood (TEST-PLAN "abuse"): the peer receives at most the
/// sender's rate (burst and refill), the sender is told of each drop and
/// then closed 1008; an oversized candidate is refused and never relayed;
/// the peer and another room carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_flood_reaches_the_peer_only_within_the_rate() {
    use switchboard_proto::limits::{MAX_CANDIDATE_BYTES, MESSAGE_BURST, MESSAGES_PER_SECOND};
    use switchboard_tests::candidate;
    let stack = Stack::start().await;
    let mut mallory = WsClient::connect(&stack.ws_url(), Format::Json).await;
    mallory.join(&stack.token("mallory", "r1")).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Binary).await;
    bob.join(&stack.token("bob", "r1")).await;
    let (mut carol, mut dave) = (
        WsClient::connect(&stack.ws_url(), Format::Json).await,
        WsClient::connect(&stack.ws_url(), Format::Json).await,
    );
    carol.join(&stack.token("carol", "r2")).await;
    dave.join(&stack.token("dave", "r2")).await;

    // First an oversized candidate: refused, not relayed.
    let huge = format!(
        "candidate:1 1 udp 1 198.51.100.1 9 typ host {}",
        "x".repeat(MAX_CANDIDATE_BYTES)
    );
    mallory.signal("bob", candidate(&huge)).await;
    let refused = mallory.next_error().await;
    assert_eq!(refused.code().as_str_name(), "bad_request", "{refused:?}");

    let started = std::time::Instant::now();
    let line = "candidate:842163049 1 udp 1677729535 198.51.100.77 49152 typ srflx";
    for _ in 0..2_000 {
        if mallory
            .try_send_message(&pb::ClientMessage {
                message: Some(In::Signal(pb::PeerSignal {
                    to: "bob".into(),
                    kind: Some(candidate(line)),
                    ..Default::default()
                })),
                ..Default::default()
            })
            .await
            .is_err()
        {
            break; // closed under us
        }
    }
    let mut rate_errors = 0;
    let closed = loop {
        match mallory.next().await {
            Ok(message) => {
                if let Some(Out::Error(e)) = message.message {
                    assert_eq!(e.code().as_str_name(), "rate_limited", "{e:?}");
                    rate_errors += 1;
                }
            }
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert!(rate_errors > 0, "told of the drops before the close");
    // Bob got what the rate let through, and nothing oversized.
    let mut relayed = 0;
    while let Some(Ok(message)) = bob.next_within(std::time::Duration::from_millis(500)).await {
        if let Some(Out::Signal(signal)) = message.message {
            let Some(pb::peer_signal::Kind::Candidate(c)) = signal.kind else {
                panic!("only candidates were sent: {signal:?}");
            };
            assert_eq!(c.candidate, line, "the oversized one was never relayed");
            relayed += 1;
        }
    }
    let allowance = MESSAGE_BURST
        + (started.elapsed().as_secs_f64() * f64::from(MESSAGES_PER_SECOND)).ceil() as u32;
    assert!(
        relayed > 0 && relayed <= allowance,
        "{relayed} candidates relayed, allowance {allowance}"
    );
    // The peer and the room next door carry on.
    carol.signal("dave", description(true, "v=0\r\n")).await;
    assert_eq!(dave.next_signal().await.from, "carol");
    let mut eve = WsClient::connect(&stack.ws_url(), Format::Json).await;
    eve.join(&stack.token("eve", "r1")).await;
    eve.signal("bob", description(true, "v=0\r\n")).await;
    assert_eq!(bob.next_signal().await.from, "eve");
    stack.shutdown().await;
}

/// This process's resident memory (the stack runs in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// 64 clients each announce a 16 MiB frame (half of them plain, half
/// "compressed" with RSV1, a decompression bomb's shape) and stream 1 MiB of
/// it: each is closed from the header (1009: the length is checked before
/// anything else; compression is never negotiated either), and the process's memory does not
/// grow by what was announced (64 × 16 MiB = 1 GiB) nor by what was sent
/// (64 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_frames_and_compressed_bombs_cost_no_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Stack::start().await;
    let addr = stack.edge_url.trim_start_matches("http://").to_owned();
    let origin = stack.edge_url.clone();
    // Warm up (the first connection allocates the stack's lazy parts).
    let mut warm = WsClient::connect(&stack.ws_url(), Format::Json).await;
    warm.join(&stack.token("warm", "r1")).await;
    let before = rss_kib();
    let clients = (0..64u8).map(|i| {
        let (addr, origin) = (addr.clone(), origin.clone());
        async move {
            let mut tcp = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            let request = format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            );
            tcp.write_all(request.as_bytes()).await.expect("write");
            let mut head = [0u8; 1024];
            let n = tcp.read(&mut head).await.expect("read");
            assert!(head[..n].starts_with(b"HTTP/1.1 101"), "upgraded");
            // FIN + binary (+ RSV1 for the "compressed" half), masked, a
            // 64-bit length of 16 MiB.
            let first = if i % 2 == 0 { 0x82 } else { 0xC2 };
            let mut frame = vec![first, 0x80 | 127];
            frame.extend_from_slice(&(16u64 * 1024 * 1024).to_be_bytes());
            frame.extend_from_slice(&[1, 2, 3, 4]);
            let _ = tcp.write_all(&frame).await;
            let chunk = vec![0x5au8; 64 * 1024];
            for _ in 0..16 {
                if tcp.write_all(&chunk).await.is_err() {
                    break; // closed under us: the point
                }
            }
            // The close frame (or the end of the connection).
            let mut rest = Vec::new();
            let _ =
                tokio::time::timeout(switchboard_tests::DEADLINE, tcp.read_to_end(&mut rest)).await;
            let code = (rest.len() >= 4 && rest[0] == 0x88)
                .then(|| u16::from_be_bytes([rest[2], rest[3]]));
            (first, code)
        }
    });
    let outcomes = futures_util::future::join_all(clients).await;
    let after = rss_kib();
    for (first, code) in &outcomes {
        if let Some(code) = code {
            // Too large is seen first (1009); a small RSV1 frame is 1002
            // (`framing_violations_close_with_1007_or_1002`).
            assert!(
                *code == 1009 || (*first == 0xC2 && *code == 1002),
                "frame {first:#x} closed {code}"
            );
        }
    }
    assert!(
        outcomes.iter().filter(|(_, c)| c.is_some()).count() >= 32,
        "most saw their close frame: {outcomes:?}"
    );
    let grown = after.saturating_sub(before);
    eprintln!(
        "RSS before {before} KiB, after {after} KiB (+{grown} KiB) for 64 × 16 MiB announced"
    );
    assert!(grown < 32 * 1024, "memory grew by {grown} KiB");
    // The edge still serves.
    warm.send(In::Ping(pb::Ping { nonce: 9 })).await;
    warm.recv_until(|m| matches!(m, Out::Pong(_)).then_some(()))
        .await;
    stack.shutdown().await;
}
