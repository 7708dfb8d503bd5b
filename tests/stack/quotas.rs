//! Per-identity join quota (signal, per replica): an identity rejoining in
//! a loop is refused `rate_limited` after its burst, others are not; a join
//! refused after its token checked out costs more.

use switchboard_proto::{
    pb::{self, client_message::Message as In, server_message::Message as Out},
    wire::Format,
};
use switchboard_signal::keyed_rate::{FAILED_JOIN_COST, JOIN_BURST, JOINS_PER_SECOND};
use switchboard_tests::{Stack, WsClient, description};

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

/// Messages into one room (signals and presence updates, per replica):
/// past the room's burst the sender is told each message was dropped; the
/// room next door is unaffected; the room's rate refills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_over_its_message_rate_is_told_and_others_are_not() {
    const BURST: u32 = 5;
    let stack = Stack::start_with(|config| {
        config.signal.join.messages_per_room = switchboard_signal::keyed_rate::Rate {
            per_second: 1,
            burst: BURST,
        };
    })
    .await;
    let join = |identity: &'static str, room: &'static str| {
        let stack = &stack;
        async move {
            let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
            client.join(&stack.token(identity, room)).await;
            client
        }
    };
    let mut alice = join("alice", "busy").await;
    let mut bob = join("bob", "busy").await;
    let mut carol = join("carol", "quiet").await;
    let mut dave = join("dave", "quiet").await;
    // Presence events of the joins are not messages of the room's rate;
    // what bob has seen so far is out of the way.
    const SENT: u32 = 20;
    for n in 0..SENT {
        alice
            .signal("bob", description(true, &format!("v=0\r\nn={n}\r\n")))
            .await;
    }
    let mut refused = 0;
    while refused < SENT - BURST - 1 {
        let error = alice.next_error().await;
        assert_eq!(error.code().as_str_name(), "rate_limited", "{error:?}");
        assert!(
            error
                .message
                .contains("this room is over its 1 messages a second"),
            "the room's rate, not the connection's: {}",
            error.message
        );
        refused += 1;
    }
    // Bob got the burst (and at most what refilled meanwhile), in order.
    for n in 0..BURST {
        let signal = bob.next_signal().await;
        assert_eq!(
            signal.kind,
            Some(description(true, &format!("v=0\r\nn={n}\r\n")))
        );
    }
    // The room next door relays as usual.
    carol.signal("dave", description(true, "v=0\r\n")).await;
    assert_eq!(dave.next_signal().await.from, "carol");
    let scrape = switchboard_tests::metrics::Scrape::of(&stack.health_url).await;
    assert!(
        scrape.value("switchboard_signal_room_rate_limited_messages_total") >= f64::from(refused),
        "counted"
    );
    // The rate refills: within a few seconds a signal passes again.
    let late = description(false, "v=0\r\nlate\r\n");
    let deadline = tokio::time::Instant::now() + switchboard_tests::DEADLINE;
    'refilled: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room's rate never refilled"
        );
        alice.signal("bob", late.clone()).await;
        while let Some(Ok(m)) = bob.next_within(std::time::Duration::from_millis(300)).await {
            if matches!(&m.message, Some(Out::Signal(s)) if s.kind.as_ref() == Some(&late)) {
                break 'refilled;
            }
        }
    }
    stack.shutdown().await;
}

/// Sessions per identity: past the maximum a join into another room is
/// refused `too_many_sessions` (others unaffected); a join into a room the
/// identity is in replaces that session and is not refused; a session that
/// ends gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_holds_at_most_its_maximum_of_sessions() {
    let stack = Stack::start_with(|config| config.signal.join.max_sessions_per_identity = 2).await;
    let url = stack.ws_url();
    let connect = || WsClient::connect(&url, Format::Json);
    let mut r1 = connect().await;
    r1.join(&stack.token("alice", "r1")).await;
    let mut r2 = connect().await;
    r2.join(&stack.token("alice", "r2")).await;
    let (code, message) = join_once(&stack, "alice", "r3").await.expect("refused");
    assert_eq!(code, "too_many_sessions", "{message}");
    assert!(message.contains("maximum of 2 sessions"), "{message}");
    assert_eq!(
        join_once(&stack, "bob", "r3").await,
        None,
        "another identity"
    );
    // Joining r1 again replaces the session there: not a third place.
    let mut again = connect().await;
    again.join(&stack.token("alice", "r1")).await;
    assert_eq!(r1.closed().await.code, 4409, "the replaced session");
    // Leaving r2 frees its place.
    r2.send(In::Leave(pb::Leave::default())).await;
    r2.closed().await;
    assert_eq!(join_once(&stack, "alice", "r3").await, None);
    stack.shutdown().await;
}

/// With Redis the maximum holds across replicas: two sessions on replica
/// one and a third on replica two is one too many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_maximum_holds_across_replicas() {
    let (_redis, _key, one, two) = crate::replicas::two_replicas_with(|config| {
        config.signal.join.max_sessions_per_identity = 2;
    })
    .await;
    let url1 = one.ws_url();
    let mut a = WsClient::connect(&url1, Format::Json).await;
    a.join(&one.token("alice", "r1")).await;
    let mut b = WsClient::connect(&url1, Format::Json).await;
    b.join(&one.token("alice", "r2")).await;
    let (code, message) = join_once(&two, "alice", "r3")
        .await
        .expect("refused on the other replica");
    assert_eq!(code, "too_many_sessions", "{message}");
    // A leave on replica one frees a place for replica two.
    b.send(In::Leave(pb::Leave::default())).await;
    b.closed().await;
    assert_eq!(join_once(&two, "alice", "r3").await, None);
    drop(a);
    one.shutdown().await;
    two.shutdown().await;
}
