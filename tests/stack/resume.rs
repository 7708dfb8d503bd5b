//! Session resume: a client whose connection dropped continues its session
//! on a new connection and gets every message it missed exactly once, in
//! order; resume credentials cannot be replayed or used by someone else.

use std::time::Duration;

use switchboard_proto::{
    pb::{self, client_message::Message as In, peer_signal::Kind, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{Stack, WsClient, description};

fn sdp_of(message: &Out) -> Option<String> {
    match message {
        Out::Signal(pb::PeerSignal {
            kind: Some(Kind::Description(d)),
            ..
        }) => Some(d.sdp.clone()),
        _ => None,
    }
}

/// Joins alice and bob; returns them with bob's session id, resume token
/// and access token.
async fn pair(stack: &Stack, format: Format) -> (WsClient, WsClient, String, String, String) {
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), format).await;
    alice.join(&stack.token("alice", "r1")).await;
    let bob_token = stack.token("bob", "r1");
    let joined = bob.join(&bob_token).await;
    alice
        .recv_until(|m| matches!(m, Out::ParticipantJoined(_)).then_some(()))
        .await;
    (
        alice,
        bob,
        joined.session_id,
        joined.resume_token,
        bob_token,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_nothing_lost_duplicated_or_reordered() {
    let stack = Stack::start().await;
    for format in [Format::Json, Format::Binary] {
        let (mut alice, mut bob, session, resume_token, bob_token) = pair(&stack, format).await;
        // A steady stream of numbered offers; bob's socket dies mid-stream.
        for i in 0..10 {
            alice
                .signal("bob", description(true, &format!("m{i}")))
                .await;
        }
        for i in 0..5 {
            assert_eq!(bob.recv_until(sdp_of).await, format!("m{i}"));
        }
        let last_seq = bob.last_seq;
        bob.drop_abruptly();
        for i in 10..30 {
            alice
                .signal("bob", description(true, &format!("m{i}")))
                .await;
        }

        let mut bob = WsClient::connect(&stack.ws_url(), format).await;
        let resumed = bob
            .resume(&session, &resume_token, last_seq, &bob_token)
            .await
            .expect("resumed");
        assert!(
            resumed.complete,
            "every missed message was still in the log"
        );
        assert_ne!(
            resumed.resume_token, resume_token,
            "resume tokens are single-use"
        );
        assert_eq!(
            resumed
                .participants
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>(),
            ["alice"]
        );
        for i in 30..35 {
            alice
                .signal("bob", description(true, &format!("m{i}")))
                .await;
        }
        // Exactly m5..m34, in order (the client also checks seq +1 steps).
        for i in 5..35 {
            assert_eq!(
                bob.recv_until(sdp_of).await,
                format!("m{i}"),
                "format {format:?}"
            );
        }
        // Nothing more, and the room never saw bob leave.
        let extra = bob.barrier().await;
        assert!(
            extra
                .iter()
                .all(|m| sdp_of(m.message.as_ref().expect("message")).is_none()),
            "{extra:?}"
        );
        let seen = alice.barrier().await;
        assert!(
            !seen
                .iter()
                .any(|m| matches!(m.message, Some(Out::ParticipantLeft(_)))),
            "{seen:?}"
        );
        // Leave for the next round.
        bob.send(pb::client_message::Message::Leave(Default::default()))
            .await;
        assert_eq!(bob.closed().await.code, 1000);
        alice.close().await;
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_credentials_cannot_be_replayed_or_borrowed() {
    let stack = Stack::start().await;
    let (_alice, bob, session, resume_token, bob_token) = pair(&stack, Format::Json).await;
    let last_seq = bob.last_seq;
    bob.drop_abruptly();

    // Mallory has bob's session id and resume token but her own token.
    let mut mallory = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let err = mallory
        .resume(
            &session,
            &resume_token,
            last_seq,
            &stack.token("mallory", "r1"),
        )
        .await;
    let refusal = err.expect_err("refused");
    assert_eq!(
        (refusal.code().as_str_name(), refusal.message.as_str()),
        ("not_found", "no such session to resume")
    );
    assert_eq!(mallory.closed().await.code, 4404);

    // A wrong resume token, then a made-up session.
    let mut guess = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let err = guess
        .resume(
            &session,
            "0123456789abcdef0123456789abcdef",
            last_seq,
            &bob_token,
        )
        .await;
    let refusal = err.expect_err("refused");
    assert_eq!(
        (refusal.code().as_str_name(), refusal.message.as_str()),
        ("not_found", "no such session to resume")
    );
    let mut guess = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let err = guess
        .resume(
            "0123456789abcdef0123456789abcdef",
            &resume_token,
            last_seq,
            &bob_token,
        )
        .await;
    let refusal = err.expect_err("refused");
    assert_eq!(
        (refusal.code().as_str_name(), refusal.message.as_str()),
        ("not_found", "no such session to resume")
    );

    // Bob resumes fine; replaying the spent token afterwards is refused.
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let resumed = bob
        .resume(&session, &resume_token, last_seq, &bob_token)
        .await
        .expect("resumed");
    let mut replay = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let err = replay
        .resume(&session, &resume_token, last_seq, &bob_token)
        .await;
    let refusal = err.expect_err("spent");
    assert_eq!(
        (refusal.code().as_str_name(), refusal.message.as_str()),
        ("not_found", "no such session to resume")
    );
    // The current token still works, and takes the session over from the
    // connection holding it (which is told why).
    let mut takeover = WsClient::connect(&stack.ws_url(), Format::Json).await;
    takeover
        .resume(&session, &resumed.resume_token, bob.last_seq, &bob_token)
        .await
        .expect("takeover");
    let closed = bob.closed().await;
    assert_eq!(closed.code, 4409, "{closed:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_window_the_session_is_gone_and_the_room_saw_it_leave() {
    let stack =
        Stack::start_with(|config| config.signal.join.resume_window = Duration::from_millis(200))
            .await;
    let (mut alice, bob, session, resume_token, bob_token) = pair(&stack, Format::Json).await;
    let last_seq = bob.last_seq;
    bob.drop_abruptly();
    let left = alice.next_left().await;
    assert_eq!(left.participant_id, "bob");
    let mut late = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let err = late
        .resume(&session, &resume_token, last_seq, &bob_token)
        .await;
    let refusal = err.expect_err("expired");
    assert_eq!(
        (refusal.code().as_str_name(), refusal.message.as_str()),
        ("not_found", "no such session to resume")
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_larger_than_the_log_is_reported_as_incomplete() {
    let stack = Stack::start_with(|config| {
        config.edge.connection.rate = switchboard_edge::RateLimit {
            per_second: 100_000,
            burst: 100_000,
        };
    })
    .await;
    let (mut alice, bob, session, resume_token, bob_token) = pair(&stack, Format::Json).await;
    let last_seq = bob.last_seq;
    bob.drop_abruptly();
    let overflow = switchboard_signal::router::LOG_CAPACITY + 10;
    for i in 0..overflow {
        alice
            .signal("bob", description(true, &format!("m{i}")))
            .await;
    }
    alice.barrier().await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let resumed = bob
        .resume(&session, &resume_token, last_seq, &bob_token)
        .await
        .expect("resumed");
    assert!(
        !resumed.complete,
        "the oldest missed messages fell out of the log"
    );
    stack.shutdown().await;
}

/// What the client acknowledged (`ack` on a Ping) is dropped from its
/// session's log: a connected, idle session holds no history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_leave_the_log() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let token = stack.token("alice", "acks");
    let joined = alice.join(&token).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    bob.join(&stack.token("bob", "acks")).await;
    for i in 0..5 {
        bob.signal("alice", description(true, &format!("n={i}")))
            .await;
    }
    for _ in 0..5 {
        alice.next_signal().await;
    }
    let acked = alice.last_seq;
    alice
        .send_message(&pb::ClientMessage {
            id: 0,
            seq: 0,
            ack: acked,
            message: Some(In::Ping(pb::Ping { nonce: 1 })),
        })
        .await;
    // Ordered after the ack on the session's path.
    alice.barrier().await;
    let last_seq = alice.last_seq;
    alice.drop_abruptly();
    let mut again = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let resumed = again
        .resume(&joined.session_id, &joined.resume_token, acked - 2, &token)
        .await
        .expect("resumed");
    assert!(
        !resumed.complete,
        "seqs up to {acked} were acknowledged, so the log no longer has them"
    );
    // Everything after the ack is still there (the seq check goes on from
    // where the log now starts).
    again.last_seq = acked;
    let first = again.recv().await;
    assert_eq!(first.seq, acked + 1, "replay starts after the ack");
    assert!(last_seq > acked);
}
