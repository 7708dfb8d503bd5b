//! Clients that stop reading. One that *never* reads again (a small receive
//! buffer, nothing read) while its room is busy is dropped within the write
//! deadline — only it, with its memory released — and everyone else keeps
//! getting their messages; one that is revoked while not reading relays
//! nothing more.

use std::time::Duration;

use switchboard_proto::{
    pb::{self, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{DEADLINE, Stack, WsClient, candidate, description, wait_until};
use tokio::time::Instant;

const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

async fn busy_stack() -> Stack {
    Stack::start_with(|config| {
        config.edge.connection.rate = switchboard_edge::RateLimit {
            per_second: 1_000_000,
            burst: 1_000_000,
        };
        config.edge.connection.write_timeout = WRITE_TIMEOUT;
        // The room's message quota is not what is tested here: the flood
        // would meet it before the slow consumer's deadline.
        config.signal.join.messages_per_room = switchboard_signal::keyed_rate::Rate {
            per_second: 1_000_000,
            burst: 1_000_000,
        };
    })
    .await
}

/// Alice sends `to_bob` to bob and bob reads it: how long that took.
async fn round_trip(alice: &mut WsClient, bob: &mut WsClient, tag: &str) -> Duration {
    let sent = Instant::now();
    alice.signal("bob", description(true, tag)).await;
    let got = bob
        .recv_until(|m| match m {
            Out::Signal(s) => Some(s.kind.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, Some(description(true, tag)), "bob kept up");
    sent.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_alone() {
    let stack = busy_stack().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut stalled = WsClient::connect_small_buffer(&stack.ws_url(), 4096, Format::Json).await;
    alice.join(&stack.token("alice", "busy")).await;
    bob.join(&stack.token("bob", "busy")).await;
    stalled.join(&stack.token("stalled", "busy")).await;
    bob.barrier().await;
    assert_eq!(stack.link.connections(), 3);

    // 8 KiB offers to the stalled client, which never reads again, and a
    // round trip to bob every 16 of them; until the edge lets go of it.
    let sdp = "a".repeat(8 * 1024);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut i = 0;
    while stack.link.connections() == 3 {
        assert!(
            started.elapsed() < WRITE_TIMEOUT + DEADLINE,
            "the stalled client is still connected after {:?}",
            started.elapsed()
        );
        alice.signal("stalled", description(true, &sdp)).await;
        if i % 16 == 0 {
            slowest = slowest.max(round_trip(&mut alice, &mut bob, &format!("bob-{i}")).await);
        }
        i += 1;
    }
    // Its memory is released: no connection holds queued bytes for it.
    wait_until("the stalled queue released", DEADLINE, || {
        let bytes = stack.link.queued_bytes();
        async move { bytes == 0 }
    })
    .await;

    // Alice and bob are still fine, and were all along.
    slowest = slowest.max(round_trip(&mut alice, &mut bob, "after").await);
    assert!(
        slowest < Duration::from_secs(1),
        "bob's slowest round trip {slowest:?}"
    );
    // The stalled client's socket is gone: reading now ends without the
    // close handshake the edge could not deliver.
    let closed = loop {
        match stalled.next().await {
            Ok(_) => continue,
            Err(closed) => break closed,
        }
    };
    assert!(
        closed.code == 1006 || closed.reason.starts_with("slow_consumer"),
        "{closed:?}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_client_that_does_not_read_relays_nothing_more() {
    let stack = busy_stack().await;
    let mut auth = stack.auth_client().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut mallory = WsClient::connect_small_buffer(&stack.ws_url(), 4096, Format::Json).await;
    // A second connection of mallory's that reads: it shows when the
    // revocation has reached the edge.
    let mut witness = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "room")).await;
    bob.join(&stack.token("bob", "room")).await;
    mallory.join(&stack.token("mallory", "room")).await;
    witness.join(&stack.token("mallory", "elsewhere")).await;
    alice.barrier().await;

    // Fill mallory's socket until the edge queues for it: its writer is
    // stuck in a send (and still under the queue's byte bound).
    let sdp = "a".repeat(8 * 1024);
    let started = Instant::now();
    while stack.link.queued_bytes() < 64 * 1024 {
        assert!(started.elapsed() < DEADLINE, "mallory's queue never grew");
        for _ in 0..16 {
            alice.signal("mallory", description(true, &sdp)).await;
        }
        alice.barrier().await;
    }

    // While stuck, mallory's messages still reach the room (the control
    // for the assertion at the end).
    mallory
        .signal(
            "alice",
            candidate("candidate:0 1 udp 1 10.0.0.1 9 typ host"),
        )
        .await;
    let from = alice
        .recv_until(|m| match m {
            Out::Signal(s) => Some(s.from.clone()),
            _ => None,
        })
        .await;
    assert_eq!(from, "mallory");

    auth.revoke_user(stack.with_api_credential(pb::RevokeUserRequest {
        subject: "mallory".into(),
    }))
    .await
    .expect("revoke user");
    let closed = witness.closed().await;
    assert_eq!(closed.code, 4401, "{closed:?}");

    // Mallory keeps sending; nothing of it may reach alice.
    for n in 1..10 {
        let message = pb::ClientMessage {
            id: 100 + n,
            seq: 0,
            ack: 0,
            message: Some(pb::client_message::Message::Signal(pb::PeerSignal {
                to: "alice".into(),
                kind: Some(candidate(&format!(
                    "candidate:{n} 1 udp 1 10.0.0.1 9 typ host"
                ))),
                ..Default::default()
            })),
        };
        if mallory.try_send_message(&message).await.is_err() {
            break;
        }
    }
    bob.signal("alice", description(true, "marker")).await;
    let mut from_mallory = Vec::new();
    loop {
        let Some(Ok(message)) = alice.next_within(Duration::from_secs(1)).await else {
            break;
        };
        if let Some(Out::Signal(signal)) = message.message
            && signal.from == "mallory"
        {
            from_mallory.push(signal.kind);
        }
    }
    assert!(
        from_mallory.is_empty(),
        "relayed after the revocation: {from_mallory:?}"
    );
    stack.shutdown().await;
}
