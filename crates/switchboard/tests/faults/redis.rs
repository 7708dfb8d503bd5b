//! Redis killed, restarted and paused.

use std::time::{Duration, Instant};

use crate::{
    cluster::*,
    replica::{Streams, signal},
};
use switchboard_proto::{
    pb::{peer_signal::Kind, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{DEADLINE, WsClient, description, http, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_refused_fast_then_recovered_from() {
    let mut cluster = Cluster::start("30").await;
    let edge0 = ws(cluster.edge(0));
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    let alice_token = token("alice", "outage");
    let alice_joined = alice.join(&alice_token).await;
    let mut bob = WsClient::connect(&edge0, Format::Json).await;
    bob.join(&token("bob", "outage")).await;
    let health = SignalHealth::connect(&cluster).await;

    // kill -9 Redis: readiness drops, liveness stays, requests fail fast.
    let started = Instant::now();
    cluster._redis.kill9().await;
    wait_until("signal reports not serving", DEADLINE, || {
        let health = health.clone();
        async move { health.serving().await == Some(false) }
    })
    .await;
    let not_ready_after = started.elapsed();
    assert_eq!(
        http::request(cluster.edge(0).url("edge"), "GET", "/health/live", "")
            .await
            .0,
        200
    );
    // A numbered stream during the outage: every message is refused with an
    // error the sender sees (or delivered) — none vanishes silently.
    let sent = Instant::now();
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(
            alice
                .signal("bob", description(true, &format!("n={n}")))
                .await,
        );
    }
    let mut refused = Vec::new();
    while refused.len() < ids.len() {
        let err = alice.next_error().await;
        assert_eq!(
            (err.code().as_str_name(), err.retryable),
            ("unavailable", true),
            "{err:?}"
        );
        refused.push(err.request_id);
    }
    let refused_in = sent.elapsed();
    assert_eq!(refused, ids, "each message refused, in order");
    assert!(
        refused_in < Duration::from_secs(5),
        "refused in {refused_in:?}"
    );
    eprintln!("redis outage: sent 20, refused 20 (unavailable), delivered 0, silently lost 0");

    // Redis returns (empty: nothing persisted): ready again by itself.
    let restarted = Instant::now();
    cluster._redis.restart().await;
    wait_until("signal serving again", Duration::from_secs(20), || {
        let health = health.clone();
        async move { health.serving().await == Some(true) }
    })
    .await;
    let ready_after = restarted.elapsed();
    eprintln!(
        "redis restart: not ready after {not_ready_after:?}, 20 relays refused within {refused_in:?}, \
         ready again {ready_after:?} after the restart"
    );
    // The data is gone with Redis, the replicas' registrations with it:
    // each replica finds itself unregistered and closes its connections
    // with a retryable code (never silence); alice's resume is refused (her
    // session is gone), so her client joins again.
    let closed = alice.closed().await;
    assert_eq!(closed.code, 1013, "{closed:?}");
    assert!(closed.reason.contains("resume"), "{closed:?}");
    let mut again = WsClient::connect(&edge0, Format::Json).await;
    let refused = again
        .resume(
            &alice_joined.session_id,
            &alice_joined.resume_token,
            alice.last_seq,
            &alice_token,
        )
        .await
        .expect_err("the session is gone");
    let refusal = refused;
    assert_eq!(
        (refusal.code().as_str_name(), refusal.message.as_str()),
        ("not_found", "no such session to resume")
    );
    // New sessions work.
    let mut carol = WsClient::connect(&edge0, Format::Json).await;
    carol.join(&token("carol", "after")).await;
    let mut dave = WsClient::connect(&edge0, Format::Json).await;
    dave.join(&token("dave", "after")).await;
    carol.signal("dave", description(true, "n=0")).await;
    let got = dave.next_signal().await.from;
    assert_eq!(got, "carol");
    drop(bob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_opens_the_circuit_and_closes_it_when_back() {
    let cluster = Cluster::start("30").await;
    let edge0 = ws(cluster.edge(0));
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "paused")).await;
    let mut bob = WsClient::connect(&edge0, Format::Json).await;
    bob.join(&token("bob", "paused")).await;
    // Bob's Joined is sent before signal has finished the join (announced
    // to the room, last): pausing Redis before then fails the rest of it,
    // and bob is refused (1013) after his Joined. Wait for the end of it.
    alice
        .recv_until(|m| {
            matches!(m, Out::ParticipantJoined(p) if p.participant.as_ref().is_some_and(|p| p.id == "bob"))
                .then_some(())
        })
        .await;
    let health = SignalHealth::connect(&cluster).await;
    let signal = |pid: u32, sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };

    // SIGSTOP: Redis accepts nothing and answers nothing.
    let pid = cluster._redis.pid();
    let paused = Instant::now();
    signal(pid, "-STOP");
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(
            alice
                .signal("bob", description(true, &format!("n=paused-{n}")))
                .await,
        );
    }
    let first = alice.next_error().await;
    let opened_after = paused.elapsed();
    let mut refused = vec![first.request_id];
    while refused.len() < ids.len() {
        let err = alice.next_error().await;
        assert_eq!(err.code().as_str_name(), "unavailable");
        refused.push(err.request_id);
    }
    let all_refused_after = paused.elapsed();
    assert_eq!(first.code().as_str_name(), "unavailable");
    assert_eq!(refused, ids);
    assert!(
        opened_after < Duration::from_secs(3),
        "circuit opened after {opened_after:?}"
    );
    wait_until("signal not serving", DEADLINE, || {
        let health = health.clone();
        async move { health.serving().await == Some(false) }
    })
    .await;

    // SIGCONT: the probe closes the circuit and signal is ready again; the
    // sessions (still in Redis) carry on.
    let resumed = Instant::now();
    signal(pid, "-CONT");
    wait_until("signal serving again", DEADLINE, || {
        let health = health.clone();
        async move { health.serving().await == Some(true) }
    })
    .await;
    let closed_after = resumed.elapsed();
    for n in 0..10 {
        alice
            .signal("bob", description(true, &format!("n={n}")))
            .await;
    }
    for n in 0..10 {
        let got = bob.next_signal().await;
        let Some(Kind::Description(d)) = got.kind else {
            panic!("{got:?}")
        };
        assert_eq!(
            d.sdp,
            format!("n={n}"),
            "nothing from the pause leaks through, nothing after it is lost"
        );
    }
    eprintln!(
        "redis paused: circuit open after {opened_after:?} (first request), 10 of 10 refused within \
         {all_refused_after:?}, ready again {closed_after:?} after SIGCONT, 10 of 10 delivered after"
    );
}

/// Redis paused (`SIGSTOP`) for 30 s under streaming senders, as
/// TEST-PLAN says: requests fail fast with a retryable error once the
/// breaker opens; when Redis returns, both replicas find their heartbeats
/// lapsed (each may reap the other and is then fenced) and their clients
/// resume. Every message is delivered or refused with an error its sender
/// saw: none is silently lost, none duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_for_thirty_seconds_loses_nothing_silently() {
    let cluster = Cluster::start("60").await;
    let pid = cluster._redis.pid();
    let streams = Streams {
        pairs: 10,
        count: 800,
        every: Duration::from_millis(50),
        edges: vec![ws(cluster.edge(0)), ws(cluster.edge(1))],
    };
    let health = SignalHealth::connect(&cluster).await;
    let fault = async {
        signal(pid, "-STOP");
        let paused = Instant::now();
        wait_until("signal not serving", DEADLINE, || {
            let health = health.clone();
            async move { health.serving().await == Some(false) }
        })
        .await;
        let not_ready = paused.elapsed();
        tokio::time::sleep_until((paused + Duration::from_secs(30)).into()).await;
        signal(pid, "-CONT");
        let resumed = Instant::now();
        wait_until("signal serving again", DEADLINE, || {
            let health = health.clone();
            async move { health.serving().await == Some(true) }
        })
        .await;
        eprintln!(
            "redis paused 30 s: not ready after {not_ready:?}, ready again {:?} after SIGCONT",
            resumed.elapsed()
        );
    };
    let tally = streams.run(&cluster, "paused-30", fault).await;
    eprintln!("redis paused 30 s: {tally:?}");
    assert!(tally.refused > 0, "the pause was felt: {tally:?}");
    tally.assert_exactly_once("redis paused 30 s");
}

/// A drain while Redis answers nothing (SIGSTOP): the signal replica and
/// the edge in front of it still exit on SIGTERM within their deadlines
/// (every Redis call has its own deadline and the circuit opens; nothing
/// in the shutdown waits on Redis for longer), and the clients are told
/// to reconnect rather than left hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_during_a_redis_outage_ends_within_its_deadline() {
    let mut cluster = Cluster::start("30").await;
    let edge0 = ws(cluster.edge(0));
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "outage-drain")).await;
    let mut bob = WsClient::connect(&edge0, Format::Json).await;
    bob.join(&token("bob", "outage-drain")).await;
    alice
        .recv_until(|m| {
            matches!(m, Out::ParticipantJoined(p) if p.participant.as_ref().is_some_and(|p| p.id == "bob"))
                .then_some(())
        })
        .await;
    let pid = cluster._redis.pid();
    let stop = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    stop("-STOP");
    // Something in flight towards the stopped Redis when the drain starts.
    alice
        .signal("bob", description(true, "n=during-outage"))
        .await;

    // Signal: its gRPC drain (5 s) plus Redis calls bounded at 1 s each.
    let signal = cluster.signals[0].take().expect("signal running");
    let (status, took) = signal.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "signal exit status {status:?}");
    assert!(
        took <= switchboard_proto::grpc::DRAIN_DEADLINE + Duration::from_secs(5),
        "signal took {took:?} to drain with Redis stopped"
    );
    // The edge (--drain-seconds 3): its clients are told to reconnect.
    let edge = cluster.edges[0].take().expect("edge running");
    let (status, took) = edge.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "edge exit status {status:?}");
    assert!(took <= Duration::from_secs(3 + 3), "edge took {took:?}");
    for client in [&mut alice, &mut bob] {
        let closed = client.closed().await;
        assert!(
            [1012, 1013].contains(&closed.code),
            "told to reconnect, not dropped: {closed:?}"
        );
    }
    stop("-CONT");
}
