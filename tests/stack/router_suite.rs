//! The Router behaviour suite: seq numbering, ordered delivery from any
//! node, detach, resume with replay, close and the log bound. Run against
//! the in-memory router (one node) and the Redis router with two nodes
//! sharing standalone Redis or a 3-master cluster.

use std::{sync::Arc, time::Duration};

use switchboard_proto::{ConnId, ErrorCode, SessionId, pb};
use switchboard_signal::link_queue::{LINK_QUEUE_BYTES, LinkReceiver, link_queue};
use switchboard_signal::{
    router::{
        Delivery, LOG_BYTES, LOG_CAPACITY, MemoryRouter, Origin, RedisRouter, ResumeRefused,
        Router, Sink,
    },
    store::RedisConnection,
};
use switchboard_tests::redis_server::{RedisCluster, RedisServer};

type Envelopes = LinkReceiver;

fn sink(conn: u64) -> (Sink, Envelopes) {
    sink_bounded(conn, LINK_QUEUE_BYTES)
}

fn sink_bounded(conn: u64, bytes: usize) -> (Sink, Envelopes) {
    let (tx, rx) = link_queue(bytes);
    (
        Sink {
            link: tx,
            conn: ConnId(conn),
        },
        rx,
    )
}

fn pong(nonce: u64) -> pb::server_message::Message {
    pb::server_message::Message::Pong(pb::Pong { nonce })
}

/// The next envelope, within a deadline.
async fn next(rx: &mut Envelopes) -> pb::signal_envelope::Event {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an envelope in time")
        .expect("link open")
        .0
        .event
        .expect("event")
}

async fn next_message(rx: &mut Envelopes) -> pb::ServerMessage {
    match next(rx).await {
        pb::signal_envelope::Event::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn nonce(message: &pb::ServerMessage) -> u64 {
    match &message.message {
        Some(pb::server_message::Message::Pong(p)) => p.nonce,
        other => panic!("expected a pong, got {other:?}"),
    }
}

/// `a` and `b` are two nodes (the same one for the in-memory router).
async fn suite(a: Arc<dyn Router>, b: Arc<dyn Router>) {
    let session = SessionId::random();
    let (sink_a, mut rx_a) = sink(1);
    a.open(session, sink_a.clone(), "token-1".into())
        .await
        .expect("open");
    // Until the session starts, deliveries are held; the first message of
    // start is seq 1, then what was held.
    assert_eq!(
        b.deliver(session, pong(8_888), None)
            .await
            .expect("deliver"),
        Some(Delivery::Held)
    );
    a.start(session, pong(7_777)).await.expect("start");
    for (seq, value) in [(1, 7_777), (2, 8_888)] {
        let message = next_message(&mut rx_a).await;
        assert_eq!((message.seq, nonce(&message)), (seq, value), "Joined first");
    }

    // Deliveries from both nodes, concurrently: seqs 1..=N without gaps,
    // each sender's messages in its order.
    let n = 100u64;
    let (from_a, from_b) = (a.clone(), b.clone());
    let ta = tokio::spawn(async move {
        for i in 0..n {
            from_a
                .deliver(session, pong(i), None)
                .await
                .expect("deliver")
                .expect("exists");
        }
    });
    let tb = tokio::spawn(async move {
        for i in 0..n {
            from_b
                .deliver(session, pong(1_000 + i), None)
                .await
                .expect("deliver")
                .expect("exists");
        }
    });
    ta.await.expect("a");
    tb.await.expect("b");
    let (mut last_a, mut last_b) = (None, None);
    for seq in 3..=2 * n + 2 {
        let message = next_message(&mut rx_a).await;
        assert_eq!(message.seq, seq, "seqs arrive in order without gaps");
        let value = nonce(&message);
        let last = if value >= 1_000 {
            &mut last_b
        } else {
            &mut last_a
        };
        assert!(last.is_none_or(|l| l < value), "FIFO per sender");
        *last = Some(value);
    }

    // Detach: deliveries are only logged.
    let generation = a
        .detach(session, &sink_a)
        .await
        .expect("detach")
        .expect("was attached");
    assert!(a.detached_since(session, generation).await.expect("state"));
    let (other, _) = sink(99);
    assert_eq!(
        a.detach(session, &other).await.expect("detach"),
        None,
        "only the attached sink detaches"
    );
    for i in 0..5 {
        b.deliver(session, pong(2_000 + i), None)
            .await
            .expect("deliver");
    }

    // Resume on the other node: refused with a wrong token or a future seq;
    // then Resumed, the 5 missed messages, and what follows.
    let (sink_b, mut rx_b) = sink(2);
    let first = pb::Resumed {
        session_id: session.to_string(),
        ..Default::default()
    };
    let wrong = b
        .resume(session, "nope", 2 * n + 2, sink_b.clone(), first.clone())
        .await
        .expect("call");
    assert_eq!(wrong, Err(ResumeRefused::BadToken));
    let future = b
        .resume(session, "token-1", 10 * n, sink_b.clone(), first.clone())
        .await
        .expect("call");
    assert_eq!(future, Err(ResumeRefused::FutureSeq));
    let resumed = b
        .resume(session, "token-1", 2 * n + 2, sink_b.clone(), first.clone())
        .await
        .expect("call")
        .expect("ok");
    assert!(resumed.complete);
    assert_eq!(resumed.replayed, 5);
    let head = next_message(&mut rx_b).await;
    assert_eq!(head.seq, 0);
    let Some(pb::server_message::Message::Resumed(r)) = head.message else {
        panic!("Resumed first")
    };
    assert_eq!(
        (r.resume_token.as_str(), r.complete),
        (resumed.resume_token.as_str(), true)
    );
    a.deliver(session, pong(3_000), None)
        .await
        .expect("deliver");
    for (seq, expected) in (2 * n + 3..).zip([2_000, 2_001, 2_002, 2_003, 2_004, 3_000]) {
        let message = next_message(&mut rx_b).await;
        assert_eq!((message.seq, nonce(&message)), (seq, expected));
    }
    // The spent token is refused.
    let (sink_c, mut rx_c) = sink(3);
    let replay = a
        .resume(session, "token-1", 2 * n + 2, sink_c.clone(), first.clone())
        .await
        .expect("call");
    assert_eq!(replay, Err(ResumeRefused::BadToken));
    // Taking over with the current token closes the previous connection.
    a.resume(session, &resumed.resume_token, 2 * n + 8, sink_c, first)
        .await
        .expect("call")
        .expect("ok");
    assert!(matches!(next(&mut rx_c).await, pb::signal_envelope::Event::Message(m) if m.seq == 0));
    match next(&mut rx_b).await {
        pb::signal_envelope::Event::Close(c) => {
            assert_eq!(c.code(), ErrorCode::SessionReplaced)
        }
        other => panic!("expected close, got {other:?}"),
    }

    // Close: the attached connection hears it, the session is gone.
    b.close(session, Some(ErrorCode::NotFound), "gone")
        .await
        .expect("close");
    match next(&mut rx_c).await {
        pb::signal_envelope::Event::Close(c) => {
            assert_eq!(
                (c.code().as_str_name(), c.message.as_str()),
                ("not_found", "gone")
            )
        }
        other => panic!("expected close, got {other:?}"),
    }
    assert_eq!(
        a.deliver(session, pong(1), None).await.expect("deliver"),
        None
    );

    // Exactly once: a message caused by (origin, client seq) is logged once,
    // however often the origin sends it again; other seqs and other
    // origins are not affected.
    let session = SessionId::random();
    let (sink_f, mut rx_f) = sink(6);
    a.open(session, sink_f, "t".into()).await.expect("open");
    a.start(session, pong(99)).await.expect("start");
    assert_eq!(next_message(&mut rx_f).await.seq, 1);
    let (one, two) = (SessionId::random(), SessionId::random());
    let origin = |session, seq| Some(Origin { session, seq });
    let sent = [
        (one, 1, Some(Delivery::Logged(2))),
        (one, 1, Some(Delivery::Duplicate)),
        (two, 1, Some(Delivery::Logged(3))),
        (one, 2, Some(Delivery::Logged(4))),
        (one, 1, Some(Delivery::Duplicate)),
        (one, 2, Some(Delivery::Duplicate)),
    ];
    for (i, (from, seq, expected)) in sent.into_iter().enumerate() {
        let got = b
            .deliver(session, pong(i as u64), origin(from, seq))
            .await
            .expect("deliver");
        assert_eq!(got, expected, "message {i}");
    }
    for (seq, value) in [(2, 0), (3, 2), (4, 3)] {
        let message = next_message(&mut rx_f).await;
        assert_eq!((message.seq, nonce(&message)), (seq, value));
    }
    // Big messages cross the node channel intact (multi-byte lengths).
    for size in [200, 5_000, 70_000] {
        let big = pb::server_message::Message::Error(pb::Error {
            message: "y".repeat(size),
            ..Default::default()
        });
        b.deliver(session, big.clone(), None)
            .await
            .expect("deliver");
        assert_eq!(next_message(&mut rx_f).await.message, Some(big));
    }
    a.close(session, None, "done").await.expect("close");

    // The log keeps only what the client did not acknowledge.
    let session = SessionId::random();
    let (sink_g, _rx_g) = sink(7);
    a.open(session, sink_g.clone(), "t".into())
        .await
        .expect("open");
    a.start(session, pong(0)).await.expect("start");
    for i in 1..=9 {
        b.deliver(session, pong(i), None).await.expect("deliver");
    }
    b.trim(session, 5).await.expect("trim");
    a.detach(session, &sink_g).await.expect("detach");
    let (sink_h, mut rx_h) = sink(8);
    let resumed = b
        .resume(session, "t", 3, sink_h, pb::Resumed::default())
        .await
        .expect("call")
        .expect("ok");
    assert!(
        !resumed.complete,
        "seqs 4 and 5 were acknowledged and dropped"
    );
    assert_eq!(resumed.replayed, 5);
    assert_eq!(next_message(&mut rx_h).await.seq, 0);
    assert_eq!(next_message(&mut rx_h).await.seq, 6);
    a.close(session, None, "done").await.expect("close");

    // The log is bounded in bytes: big messages keep less history.
    let session = SessionId::random();
    let (sink_i, _rx_i) = sink(9);
    a.open(session, sink_i.clone(), "t".into())
        .await
        .expect("open");
    a.start(session, pong(0)).await.expect("start");
    a.detach(session, &sink_i).await.expect("detach");
    let big = pb::server_message::Message::Error(pb::Error {
        message: "x".repeat(4096),
        ..Default::default()
    });
    for _ in 0..100 {
        b.deliver(session, big.clone(), None)
            .await
            .expect("deliver");
    }
    let (sink_j, _rx_j) = sink(10);
    let resumed = a
        .resume(session, "t", 0, sink_j, pb::Resumed::default())
        .await
        .expect("call")
        .expect("ok");
    assert!(!resumed.complete);
    assert!(
        resumed.replayed * 4096 <= LOG_BYTES + 4200,
        "{} messages of 4 KiB kept, over {LOG_BYTES} bytes",
        resumed.replayed
    );
    a.close(session, None, "done").await.expect("close");

    // The log is bounded: a long absence resumes incomplete.
    let session = SessionId::random();
    let (sink_d, _rx_d) = sink(4);
    a.open(session, sink_d.clone(), "t".into())
        .await
        .expect("open");
    a.start(session, pong(0)).await.expect("start");
    a.detach(session, &sink_d).await.expect("detach");
    for i in 0..(LOG_CAPACITY as u64 + 10) {
        b.deliver(session, pong(i), None).await.expect("deliver");
    }
    let (sink_e, mut rx_e) = sink(5);
    let first = pb::Resumed::default();
    let resumed = a
        .resume(session, "t", 0, sink_e, first)
        .await
        .expect("call")
        .expect("ok");
    assert!(!resumed.complete);
    assert_eq!(next_message(&mut rx_e).await.seq, 0);
    let oldest = next_message(&mut rx_e).await.seq;
    assert!(oldest > 1, "the oldest messages fell out of the log");
    a.close(session, None, "done").await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_router() {
    let router: Arc<dyn Router> = Arc::new(MemoryRouter::new());
    suite(router.clone(), router).await;
}

async fn two_nodes(urls: Vec<String>, pubsub: String) -> (Arc<dyn Router>, Arc<dyn Router>) {
    let ttl = Duration::from_secs(60);
    let a = RedisRouter::start(
        RedisConnection::connect(&urls).await.expect("connect"),
        &pubsub,
        Some("node-a".into()),
        ttl,
        ttl,
    );
    let b = RedisRouter::start(
        RedisConnection::connect(&urls).await.expect("connect"),
        &pubsub,
        Some("node-b".into()),
        ttl,
        ttl,
    );
    (a.await.expect("node a"), b.await.expect("node b"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_router_on_two_nodes() {
    let redis = RedisServer::start(false).await;
    let (a, b) = two_nodes(vec![redis.url()], redis.url()).await;
    suite(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_router_on_two_nodes() {
    let cluster = RedisCluster::start().await;
    let seeds = cluster.seeds();
    let (a, b) = two_nodes(seeds.clone(), seeds[1].clone()).await;
    suite(a, b).await;
}

/// A node whose pub/sub connection is down while a session receives more
/// than its log holds must not wedge the session: it either delivers
/// everything or closes the connection with a retryable code, and a resume
/// then says the history is incomplete. Never silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_older_than_the_log_is_reported_not_silent() {
    use switchboard_tests::redis_server::command;
    let redis = RedisServer::start(false).await;
    let (a, b) = two_nodes(vec![redis.url()], redis.url()).await;
    let session = SessionId::random();
    let (sink_a, mut rx_a) = sink(1);
    a.open(session, sink_a.clone(), "t".into())
        .await
        .expect("open");
    a.start(session, pong(0)).await.expect("start");
    assert_eq!(nonce(&next_message(&mut rx_a).await), 0);

    // Keep node a from resubscribing while its subscription is killed, so
    // everything published meanwhile is lost to pub/sub.
    let denied = command(redis.port, "ACL SETUSER default -subscribe").await;
    assert_eq!(denied.as_deref(), Some("+OK\r\n"));
    let killed = command(redis.port, "CLIENT KILL TYPE pubsub").await;
    let killed: u64 = killed
        .as_deref()
        .and_then(|r| r.trim().strip_prefix(':'))
        .and_then(|n| n.parse().ok())
        .expect("kill count");
    assert!(killed >= 2, "both nodes' subscriptions killed: {killed}");
    let total = LOG_CAPACITY as u64 + 100;
    for i in 1..=total {
        b.deliver(session, pong(i), None).await.expect("deliver");
    }
    let allowed = command(redis.port, "ACL SETUSER default +subscribe").await;
    assert_eq!(allowed.as_deref(), Some("+OK\r\n"));
    // One more, after the subscription is back.
    let later = tokio::spawn({
        let b = b.clone();
        async move { b.deliver(session, pong(total + 1), None).await }
    });

    let mut expected = 1;
    let closed = loop {
        match next(&mut rx_a).await {
            pb::signal_envelope::Event::Message(m) => {
                assert_eq!(nonce(&m), expected, "in order, no gap");
                expected += 1;
                if expected > total + 1 {
                    break None;
                }
            }
            pb::signal_envelope::Event::Close(c) => break Some(c),
        }
    };
    later.await.expect("later").expect("deliver");
    let closed = closed.expect("more than the log holds was lost: the connection is closed");
    let code = ErrorCode::of(closed.code).expect("a known code");
    assert!(code.retryable(), "the client is told to resume: {closed:?}");
    // When the connection's end is reported, the session is detached like
    // any lost connection (so it expires unless resumed), not left attached.
    assert!(
        a.detach(session, &sink_a).await.expect("detach").is_some(),
        "the session is detached when its closed connection ends"
    );
    // The resume says what was lost.
    let (sink_c, mut rx_c) = sink(3);
    let resumed = b
        .resume(session, "t", expected - 1, sink_c, pb::Resumed::default())
        .await
        .expect("call")
        .expect("ok");
    assert!(!resumed.complete, "history beyond the log is reported lost");
    assert_eq!(next_message(&mut rx_c).await.seq, 0);
}

/// The queue to an edge link is bounded in bytes: a connection whose
/// messages no longer fit is closed as a slow consumer (its session keeps
/// everything in its log), and the queue never holds more than its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_link_queue_closes_the_connection_not_the_link() {
    let router: Arc<dyn Router> = Arc::new(MemoryRouter::new());
    let (slow, mut rx) = sink_bounded(1, 16 * 1024);
    let session = SessionId::random();
    router
        .open(session, slow.clone(), "t".into())
        .await
        .expect("open");
    router.start(session, pong(0)).await.expect("start");
    // Nobody drains the link: 100 messages of ~1 KiB do not fit in 16 KiB.
    let payload = |i: u64| {
        pb::server_message::Message::Error(pb::Error {
            request_id: i as u32,
            message: "x".repeat(1_000),
            ..Default::default()
        })
    };
    for i in 1..=100 {
        router
            .deliver(session, payload(i), None)
            .await
            .expect("deliver")
            .expect("exists");
        assert!(slow.link.queued_bytes() <= 16 * 1024 + 1024 * 1024);
    }
    let mut messages = 0;
    let close = loop {
        match next(&mut rx).await {
            pb::signal_envelope::Event::Message(_) => messages += 1,
            pb::signal_envelope::Event::Close(c) => break c,
        }
    };
    assert!(messages < 20, "only what fits was queued: {messages}");
    assert_eq!(close.code(), ErrorCode::SlowConsumer, "{close:?}");
    // Everything is in the log: a resume gets the rest.
    let (fresh, mut rx2) = sink(2);
    router.detach(session, &slow).await.expect("detach");
    let resumed = router
        .resume(session, "t", messages, fresh, pb::Resumed::default())
        .await
        .expect("call")
        .expect("ok");
    assert!(resumed.complete);
    assert_eq!(resumed.replayed as u64, 101 - messages);
    assert_eq!(next_message(&mut rx2).await.seq, 0);
}

/// A Redis router's tasks (heartbeat, subscriber) have an owner: dropping
/// the router stops them, so its pub/sub connection goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_redis_router_stops_its_tasks() {
    use switchboard_tests::{redis_server::command, wait_until};
    let redis = RedisServer::start(false).await;
    let subscribers = |port: u16| async move {
        command(port, "CLIENT LIST TYPE pubsub")
            .await
            .map_or(usize::MAX, |r| r.matches("sub=1").count())
    };
    let router = RedisRouter::start(
        RedisConnection::connect(&[redis.url()])
            .await
            .expect("connect"),
        &redis.url(),
        None,
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
    .await
    .expect("router");
    assert_eq!(subscribers(redis.port).await, 1);
    drop(router);
    wait_until("the subscriber is gone", Duration::from_secs(5), || async {
        subscribers(redis.port).await == 0
    })
    .await;
}

/// A resume that fails after its script spent the resume token (here: the
/// node's bookkeeping write is refused) leaves no ghost attached to the
/// refused connection: the session is detached and due to end at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_fails_after_spending_its_token_leaves_no_ghost() {
    use switchboard_tests::redis_server::command;
    let redis = RedisServer::start(false).await;
    let (a, b) = two_nodes(vec![redis.url()], redis.url()).await;
    let session = SessionId::random();
    let (sink_a, _rx_a) = sink(1);
    a.open(session, sink_a.clone(), "t".into())
        .await
        .expect("open");
    a.start(session, pong(0)).await.expect("start");
    a.detach(session, &sink_a).await.expect("detach");
    assert!(a.due_expiries(u64::MAX / 2).await.expect("due").is_empty());

    let denied = command(redis.port, "ACL SETUSER default -sadd").await;
    assert_eq!(denied.as_deref(), Some("+OK\r\n"));
    let (sink_b, _rx_b) = sink(2);
    let failed = b
        .resume(session, "t", 1, sink_b, pb::Resumed::default())
        .await;
    let allowed = command(redis.port, "ACL SETUSER default +sadd").await;
    assert_eq!(allowed.as_deref(), Some("+OK\r\n"));
    assert!(
        failed.is_err(),
        "the resume failed after its script: {failed:?}"
    );

    let due = b.due_expiries(u64::MAX / 2).await.expect("due");
    assert_eq!(due.len(), 1, "the session is due to end: {due:?}");
    assert_eq!(due[0].session, session);
    assert!(
        b.detached_since(session, due[0].generation)
            .await
            .expect("state"),
        "detached, not attached to the refused connection"
    );
}
