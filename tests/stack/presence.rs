//! Joining, the participant list with negotiation roles, presence events,
//! leaving and disconnecting.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use switchboard_proto::{
    pb::{self, client_message::Message as In, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{Stack, WsClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_reply_lists_participants_with_one_polite_side_per_pair() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined_a = alice.join(&stack.token("alice", "r1")).await;
    assert!(joined_a.participants.is_empty());
    assert_eq!(joined_a.session_id.len(), 32, "128-bit session id in hex");
    assert_eq!(joined_a.room, "r1");
    let keepalive = joined_a.keepalive.expect("keepalive");
    assert!(keepalive.interval_ms > 0 && keepalive.timeout_ms > keepalive.interval_ms);
    assert_eq!(
        joined_a.limits.expect("limits").max_message_bytes,
        64 * 1024
    );

    let mut attrs = HashMap::new();
    attrs.insert("audio".to_string(), "on".to_string());
    let joined_b = bob
        .join_with(&stack.token("bob", "r1"), attrs.clone())
        .await;
    assert_ne!(joined_a.session_id, joined_b.session_id);
    assert_eq!(joined_b.participants.len(), 1);
    let alice_seen_by_bob = &joined_b.participants[0];
    assert_eq!(alice_seen_by_bob.id, "alice");
    assert_eq!(alice_seen_by_bob.name, "alice (test)");

    let bob_seen_by_alice = alice
        .recv_until(|m| {
            if let Out::ParticipantJoined(j) = m {
                j.participant.clone()
            } else {
                None
            }
        })
        .await;
    assert_eq!(bob_seen_by_alice.id, "bob");
    assert_eq!(bob_seen_by_alice.attributes, attrs);
    assert_ne!(
        alice_seen_by_bob.polite, bob_seen_by_alice.polite,
        "exactly one side is polite"
    );
    assert!(
        bob_seen_by_alice.polite,
        "alice < bob, so alice is polite towards bob"
    );

    // Presence updates reach the others.
    let mut muted = HashMap::new();
    muted.insert("audio".to_string(), "off".to_string());
    bob.send(
        switchboard_proto::pb::client_message::Message::UpdatePresence(
            switchboard_proto::pb::UpdatePresence {
                attributes: muted.clone(),
            },
        ),
    )
    .await;
    let updated = alice
        .recv_until(|m| {
            if let Out::ParticipantUpdated(u) = m {
                u.participant.clone()
            } else {
                None
            }
        })
        .await;
    assert_eq!((updated.id.as_str(), &updated.attributes), ("bob", &muted));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_disconnect_are_announced() {
    // A lost connection is announced once the resume window passes.
    let stack =
        Stack::start_with(|config| config.signal.join.resume_window = Duration::from_millis(300))
            .await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let carol = WsClient::connect(&stack.ws_url(), Format::Binary).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;
    let mut carol = carol;
    carol.join(&stack.token("carol", "r1")).await;

    bob.send(switchboard_proto::pb::client_message::Message::Leave(
        Default::default(),
    ))
    .await;
    let closed = bob.closed().await;
    assert_eq!(closed.code, 1000, "leave closes normally: {closed:?}");
    let left = alice.next_left().await;
    assert_eq!(
        (left.participant_id.as_str(), left.reason().as_str_name()),
        ("bob", "left")
    );

    carol.drop_abruptly();
    let dropped = Instant::now();
    let left = alice.next_left().await;
    assert_eq!(
        (left.participant_id.as_str(), left.reason().as_str_name()),
        ("carol", "disconnected")
    );
    assert!(
        dropped.elapsed() >= Duration::from_millis(300),
        "announced before the resume window passed"
    );

    // A newcomer sees only alice.
    let mut dave = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = dave.join(&stack.token("dave", "r1")).await;
    assert_eq!(
        joined
            .participants
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_join_with_the_same_identity_replaces_the_first() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob_old = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob_old.join(&stack.token("bob", "r1")).await;
    let mut bob_new = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = bob_new.join(&stack.token("bob", "r1")).await;
    assert_eq!(
        joined
            .participants
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );

    let closed = bob_old.closed().await;
    assert_eq!(closed.code, 4409);
    assert!(closed.reason.starts_with("session_replaced"), "{closed:?}");
    let left = alice.next_left().await;
    assert_eq!(
        (left.participant_id.as_str(), left.reason().as_str_name()),
        ("bob", "replaced")
    );

    // Signals now reach the new session.
    alice
        .signal("bob", switchboard_tests::description(true, "v=0"))
        .await;
    let got = bob_new.next_signal().await.from;
    assert_eq!(got, "alice");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_refuses_the_next_join_with_room_full() {
    let stack = Stack::start_with(|c| c.signal.join.max_participants = 2).await;
    let mut a = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = a.join(&stack.token("a", "small")).await;
    assert_eq!(joined.limits.expect("limits").max_participants, 2);
    let mut b = WsClient::connect(&stack.ws_url(), Format::Json).await;
    b.join(&stack.token("b", "small")).await;
    let mut c = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let id = c
        .send(In::Join(Box::new(pb::Join {
            token: stack.token("c", "small"),
            ..Default::default()
        })))
        .await;
    let err = c.next_error().await;
    assert_eq!(
        (err.request_id, err.code().as_str_name()),
        (id, "room_full")
    );
    let closed = c.closed().await;
    assert_eq!(closed.code, 4429, "{closed:?}");
    // The same identity may still join again (replacing its session).
    let mut a2 = WsClient::connect(&stack.ws_url(), Format::Json).await;
    a2.join(&stack.token("a", "small")).await;
}

/// A client that closes (without leave) gets its close frame answered: the
/// closing handshake completes (a browser sees a clean close), and the
/// session waits for a resume rather than ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_answered_and_keeps_the_session() {
    use tokio_tungstenite::tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    };
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "closing")).await;
    bob.join(&stack.token("bob", "closing")).await;
    alice
        .recv_until(|m| matches!(m, Out::ParticipantJoined(_)).then_some(()))
        .await;
    bob.send_raw(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await;
    let closed = bob.closed().await;
    assert_eq!(closed.code, 1000, "the server echoes the close: {closed:?}");
    // No leave: the room hears only that bob is reconnecting (the resume
    // window is 60 s), nobody left.
    let (who, connection) = next_connection(&mut alice).await;
    assert_eq!(
        (who.as_str(), connection),
        ("bob", pb::Connection::Reconnecting)
    );
    let heard = alice
        .next_within(std::time::Duration::from_millis(300))
        .await;
    assert!(heard.is_none(), "nobody left: {heard:?}");
    stack.shutdown().await;
}

/// The next `participantUpdated` (skipping other messages): (id, connection).
async fn next_connection(client: &mut WsClient) -> (String, pb::Connection) {
    client
        .recv_until(|m| match m {
            Out::ParticipantUpdated(u) => u
                .participant
                .as_ref()
                .map(|p| (p.id.clone(), p.connection())),
            _ => None,
        })
        .await
}

/// A lost connection is told to the room at once (`reconnecting`), not a
/// resume window later, and its resume too (`connected`): a tile can say
/// the truth while nobody knows yet whether the participant comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_announced_at_once_and_its_resume_too() {
    let stack =
        Stack::start_with(|config| config.signal.join.resume_window = Duration::from_secs(60))
            .await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    let bob_token = stack.token("bob", "r1");
    let joined = bob.join(&bob_token).await;
    let last_seq = bob.last_seq;

    bob.drop_abruptly();
    let dropped = Instant::now();
    let (who, connection) = next_connection(&mut alice).await;
    assert_eq!(
        (who.as_str(), connection),
        ("bob", pb::Connection::Reconnecting)
    );
    assert!(
        dropped.elapsed() < Duration::from_secs(2),
        "told after {:?}",
        dropped.elapsed()
    );

    let mut again = WsClient::connect(&stack.ws_url(), Format::Json).await;
    again
        .resume(
            &joined.session_id,
            &joined.resume_token,
            last_seq,
            &bob_token,
        )
        .await
        .expect("resumed");
    let (who, connection) = next_connection(&mut alice).await;
    assert_eq!(
        (who.as_str(), connection),
        ("bob", pb::Connection::Connected)
    );
    stack.shutdown().await;
}
