//! SDP and ICE relay between participants of one room.

use switchboard_proto::{
    pb::{self, peer_signal::Kind, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{Stack, WsClient, candidate, description};

fn signal_of(message: &Out) -> Option<pb::PeerSignal> {
    match message {
        Out::Signal(signal) => Some(signal.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_answer_and_candidates_reach_only_their_target_in_order() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut carol = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;
    carol.join(&stack.token("carol", "r1")).await;

    alice
        .signal("bob", description(true, "v=0 offer-from-alice"))
        .await;
    for i in 0..20 {
        alice
            .signal(
                "bob",
                candidate(&format!(
                    "candidate:{i} 1 udp 1 127.0.0.1 {} typ host",
                    5000 + i
                )),
            )
            .await;
    }
    alice
        .signal("bob", Kind::EndOfCandidates(pb::EndOfCandidates {}))
        .await;

    let offer = bob.recv_until(signal_of).await;
    assert_eq!(offer.from, "alice");
    assert_eq!(offer.to, "bob");
    assert_eq!(
        offer.kind,
        Some(description(true, "v=0 offer-from-alice")),
        "sdp relayed unmodified"
    );
    for i in 0..20 {
        let got = bob.recv_until(signal_of).await;
        let Some(Kind::Candidate(c)) = got.kind else {
            panic!("expected candidate {i}, got {got:?}")
        };
        assert!(
            c.candidate.starts_with(&format!("candidate:{i} ")),
            "candidate {i} out of order: {}",
            c.candidate
        );
    }
    let end = bob.recv_until(signal_of).await;
    assert_eq!(
        end.kind,
        Some(Kind::EndOfCandidates(pb::EndOfCandidates {}))
    );

    bob.signal("alice", description(false, "v=0 answer-from-bob"))
        .await;
    let answer = alice.recv_until(signal_of).await;
    assert_eq!(
        (answer.from.as_str(), answer.kind),
        ("bob", Some(description(false, "v=0 answer-from-bob")))
    );

    // Carol saw presence only, never a signal meant for someone else.
    let seen = carol.barrier().await;
    assert!(
        seen.iter()
            .all(|m| !matches!(m.message, Some(Out::Signal(_)))),
        "carol received a signal not addressed to her: {seen:?}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_from_is_replaced_by_the_authenticated_sender() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;

    alice
        .send(pb::client_message::Message::Signal(pb::PeerSignal {
            to: "bob".into(),
            from: "carol".into(),
            kind: Some(description(true, "v=0")),
            probe: None,
        }))
        .await;
    let got = bob.recv_until(signal_of).await;
    assert_eq!(got.from, "alice");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_in_another_room_looks_exactly_like_a_missing_one() {
    let stack = Stack::start().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut mallory = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;
    mallory.join(&stack.token("mallory", "r2")).await;

    let to_other_room = mallory.signal("bob", description(true, "v=0 sneaky")).await;
    let other_room = mallory.next_error().await;
    let to_nobody = mallory
        .signal("nobody", description(true, "v=0 sneaky"))
        .await;
    let missing = mallory.next_error().await;
    assert_eq!(other_room.request_id, to_other_room);
    assert_eq!(missing.request_id, to_nobody);
    assert_eq!(
        (other_room.code().as_str_name(), other_room.message.as_str()),
        ("not_found", "no such participant in this room")
    );
    assert_eq!(
        (other_room.code, other_room.message),
        (missing.code, missing.message)
    );

    // Bob got nothing from mallory: his barrier sees no signal.
    let seen = bob.barrier().await;
    assert!(
        seen.iter()
            .all(|m| !matches!(m.message, Some(Out::Signal(_)))),
        "{seen:?}"
    );
    // Signalling oneself is refused the same way.
    alice.signal("alice", description(true, "v=0")).await;
    let own = alice.next_error().await;
    assert_eq!(
        (own.code().as_str_name(), own.message.as_str()),
        ("not_found", "no such participant in this room")
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_binary_clients_interoperate_in_one_room() {
    let stack = Stack::start().await;
    let mut text = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut binary = WsClient::connect(&stack.ws_url(), Format::Binary).await;
    text.join(&stack.token("text", "mixed")).await;
    let joined = binary.join(&stack.token("binary", "mixed")).await;
    assert_eq!(
        joined
            .participants
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        ["text"]
    );

    text.signal("binary", description(true, "v=0 from-json"))
        .await;
    let got = binary.recv_until(signal_of).await;
    assert_eq!(
        (got.from.as_str(), got.kind),
        ("text", Some(description(true, "v=0 from-json")))
    );
    binary
        .signal("text", description(false, "v=0 from-protobuf"))
        .await;
    let got = text.recv_until(signal_of).await;
    assert_eq!(
        (got.from.as_str(), got.kind),
        ("binary", Some(description(false, "v=0 from-protobuf")))
    );
    stack.shutdown().await;
}
