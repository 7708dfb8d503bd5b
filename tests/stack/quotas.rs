//! Per-identity join quota (signal, per replica): an identity rejoining in
//! a loop is refused `rate_limited` after its burst, others are not; a join
//! refused after its token checked out costs more.

use switchboard_proto::{
    pb::{self, client_message::Message as In, server_message::Message as Out},
    wire::Format,
};
use switchboard_signal::keyed_rate::{FAILED_JOIN_COST, JOIN_BURST, JOINS_PER_SECOND};
use switchboard_tests::{Stack, WsClient};

/// One join on a fresh connection: the code of its refusal, or None.
async fn join_once(stack: &Stack, identity: &str, room: &str) -> Option<(String, String)> {
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    client
        .send(In::Join(Box::new(pb::Join {
            token: stack.token(identity, room),
            ..Default::default()
        })))
        .await;
    match client.recv().await.message {
        Some(Out::Joined(_)) => None,
        Some(Out::Error(e)) => Some((e.code().as_str_name().to_owned(), e.message)),
        other => panic!("expected joined or an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_rejoining_in_a_loop_is_slowed_down_and_others_are_not() {
    let stack = Stack::start().await;
    let start = std::time::Instant::now();
    let mut joined = 0;
    let mut refused = None;
    for _ in 0..(JOIN_BURST * 2) {
        match join_once(&stack, "bob", "r1").await {
            None => joined += 1,
            Some(refusal) => {
                refused = Some(refusal);
                break;
            }
        }
    }
    let (code, message) = refused.expect("refused before twice the burst");
    assert_eq!(code, "rate_limited", "{message}");
    assert!(
        message.contains("too many joins for this identity"),
        "{message}"
    );
    // The burst, plus what refilled while the loop ran.
    let refill = (start.elapsed().as_secs_f64() * f64::from(JOINS_PER_SECOND)).ceil() as u32;
    assert!(
        (JOIN_BURST..=JOIN_BURST + refill).contains(&joined),
        "{joined} joins before the refusal"
    );
    assert_eq!(
        join_once(&stack, "alice", "r1").await,
        None,
        "another identity"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_joins_cost_more() {
    let stack = Stack::start_with(|config| config.signal.join.max_participants = 1).await;
    assert_eq!(join_once(&stack, "alice", "full").await, None);
    let mut full = 0;
    let last = loop {
        match join_once(&stack, "mallory", "full").await {
            Some((code, _)) if code == "room_full" => full += 1,
            other => break other,
        }
        assert!(full < JOIN_BURST, "never slowed down");
    };
    assert_eq!(last.map(|(code, _)| code).as_deref(), Some("rate_limited"));
    // Each refusal took 1 + FAILED_JOIN_COST of the burst.
    let expected = (f64::from(JOIN_BURST) / (1.0 + FAILED_JOIN_COST)).ceil() as u32;
    assert!(
        (expected..=expected + 1).contains(&full),
        "{full} room_full refusals before rate_limited"
    );
    stack.shutdown().await;
}

/// The quota is configurable (`--joins-per-identity-per-second`,
/// `--join-burst-per-identity`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_quota_is_configurable() {
    let stack = Stack::start_with(|config| {
        config.signal.join.joins_per_identity = switchboard_signal::keyed_rate::Rate {
            per_second: 1,
            burst: 3,
        };
    })
    .await;
    for _ in 0..3 {
        assert_eq!(join_once(&stack, "bob", "r1").await, None);
    }
    let refused = join_once(&stack, "bob", "r1").await;
    assert_eq!(
        refused.map(|(code, _)| code).as_deref(),
        Some("rate_limited")
    );
    stack.shutdown().await;
}
