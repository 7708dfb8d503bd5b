//! Two complete replicas (edge + signal + auth each) sharing one Redis:
//! participants on different edges and signal replicas signal each other,
//! see the same presence, and resume through either edge.

use std::time::Duration;

use switchboard_auth::{Jwk, KeyAlg};
use switchboard_proto::{
    pb::{self, client_message::Message as In, peer_signal::Kind, server_message::Message as Out},
    wire::Format,
};
use switchboard_signal::RedisConfig;
use switchboard_tests::{
    Stack, StackConfig, WsClient, candidate, description, redis_server::RedisServer,
};

fn replica(redis: &RedisServer, key: &Jwk) -> impl FnOnce(&mut StackConfig) {
    let (url, key) = (redis.url(), key.clone());
    move |config| {
        config.signal.redis = Some(RedisConfig {
            urls: vec![url.clone()],
            record_ttl: Duration::from_secs(120),
        });
        // Auth replicas share revocations through the same Redis.
        config.auth_redis = Some(url);
        config.keyring.signing_key = key;
    }
}

/// A Redis started here and two replicas sharing it (and a signing key).
pub(crate) async fn two_replicas() -> (RedisServer, Jwk, Stack, Stack) {
    two_replicas_with(|_| {}).await
}

/// [`two_replicas`], each also configured by `tune`.
pub(crate) async fn two_replicas_with(
    tune: impl Fn(&mut StackConfig) + Clone,
) -> (RedisServer, Jwk, Stack, Stack) {
    let redis = RedisServer::start(false).await;
    let key = Jwk::generate(KeyAlg::EdDsa, "shared").expect("key");
    let one = replica_of(&redis, &key, tune.clone()).await;
    let two = replica_of(&redis, &key, tune).await;
    (redis, key, one, two)
}

/// One more replica on `redis`, configured by `tune`.
pub(crate) async fn replica_of(
    redis: &RedisServer,
    key: &Jwk,
    tune: impl FnOnce(&mut StackConfig),
) -> Stack {
    let shared = replica(redis, key);
    Stack::start_with(move |config| {
        shared(config);
        tune(config);
    })
    .await
}

fn sdp_of(message: &Out) -> Option<String> {
    match message {
        Out::Signal(pb::PeerSignal {
            kind: Some(Kind::Description(d)),
            ..
        }) => Some(d.sdp.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_on_different_replicas_signal_and_resume_across_them() {
    let (_redis, _key, one, two) = two_replicas().await;

    let mut alice = WsClient::connect(&one.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Binary).await;
    alice.join(&one.token("alice", "shared-room")).await;
    let bob_token = two.token("bob", "shared-room");
    let joined = bob.join(&bob_token).await;
    // Presence is the same everywhere.
    assert_eq!(
        joined
            .participants
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    let seen = alice
        .recv_until(|m| {
            if let Out::ParticipantJoined(j) = m {
                j.participant.clone()
            } else {
                None
            }
        })
        .await;
    assert_eq!(seen.id, "bob");

    // Offer, candidates and answer across replicas, in order.
    alice.signal("bob", description(true, "v=0 offer")).await;
    for i in 0..10 {
        alice
            .signal(
                "bob",
                candidate(&format!(
                    "candidate:{i} 1 udp 1 127.0.0.1 {} typ host",
                    6000 + i
                )),
            )
            .await;
    }
    assert_eq!(bob.recv_until(sdp_of).await, "v=0 offer");
    for i in 0..10 {
        let got = bob
            .recv_until(|m| {
                if let Out::Signal(s) = m {
                    s.kind.clone()
                } else {
                    None
                }
            })
            .await;
        let Kind::Candidate(c) = got else {
            panic!("expected candidate {i}: {got:?}")
        };
        assert!(
            c.candidate.starts_with(&format!("candidate:{i} ")),
            "{}",
            c.candidate
        );
    }
    bob.signal("alice", description(false, "v=0 answer")).await;
    assert_eq!(alice.recv_until(sdp_of).await, "v=0 answer");

    // Bob's connection drops; messages keep coming; he resumes through the
    // other edge (and so the other signal replica) and misses nothing.
    let last_seq = bob.last_seq;
    bob.drop_abruptly();
    for i in 0..20 {
        alice
            .signal("bob", description(true, &format!("m{i}")))
            .await;
    }
    let mut bob = WsClient::connect(&one.ws_url(), Format::Binary).await;
    let resumed = bob
        .resume(
            &joined.session_id,
            &joined.resume_token,
            last_seq,
            &bob_token,
        )
        .await
        .expect("resumed");
    assert!(resumed.complete);
    for i in 20..25 {
        alice
            .signal("bob", description(true, &format!("m{i}")))
            .await;
    }
    for i in 0..25 {
        assert_eq!(bob.recv_until(sdp_of).await, format!("m{i}"));
    }
    let seen = alice.barrier().await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m.message, Some(Out::ParticipantLeft(_)))),
        "{seen:?}"
    );

    // Leaving is seen on the other replica.
    bob.send(pb::client_message::Message::Leave(Default::default()))
        .await;
    let left = alice.next_left().await;
    assert_eq!(
        (left.participant_id.as_str(), left.reason().as_str_name()),
        ("bob", "left")
    );
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_restart_drains_its_clients_who_resume_elsewhere_losing_nothing() {
    let (_redis, _key, one, two) = two_replicas().await;
    let mut alice = WsClient::connect(&one.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Json).await;
    alice.join(&one.token("alice", "r")).await;
    let bob_token = two.token("bob", "r");
    let joined = bob.join(&bob_token).await;
    for i in 0..5 {
        alice
            .signal("bob", description(true, &format!("m{i}")))
            .await;
    }
    for i in 0..5 {
        assert_eq!(bob.recv_until(sdp_of).await, format!("m{i}"));
    }
    // Replica two shuts down (SIGTERM): bob is told to reconnect (1012).
    let stopping = tokio::spawn(two.shutdown());
    let closed = bob.closed().await;
    assert_eq!(closed.code, 1012, "{closed:?}");
    stopping.await.expect("shutdown");
    for i in 5..15 {
        alice
            .signal("bob", description(true, &format!("m{i}")))
            .await;
    }
    let mut bob2 = WsClient::connect(&one.ws_url(), Format::Json).await;
    let resumed = bob2
        .resume(
            &joined.session_id,
            &joined.resume_token,
            bob.last_seq,
            &bob_token,
        )
        .await;
    let resumed = resumed.expect("resumed on the other replica");
    assert!(resumed.complete);
    for i in 5..15 {
        assert_eq!(bob2.recv_until(sdp_of).await, format!("m{i}"));
    }
    one.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_nobody_resumes_ends_even_when_its_replica_is_gone() {
    let redis = RedisServer::start(false).await;
    let key = Jwk::generate(KeyAlg::EdDsa, "shared").expect("key");
    let short = || {
        let base = replica(&redis, &key);
        move |config: &mut StackConfig| {
            base(config);
            config.signal.join.resume_window = Duration::from_millis(500);
        }
    };
    let one = Stack::start_with(short()).await;
    let two = Stack::start_with(short()).await;
    let mut alice = WsClient::connect(&one.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Json).await;
    alice.join(&one.token("alice", "r")).await;
    bob.join(&two.token("bob", "r")).await;
    alice
        .recv_until(|m| matches!(m, Out::ParticipantJoined(_)).then_some(()))
        .await;
    // Replica two goes away with bob's session detached and its timer gone;
    // replica one's sweeper ends the session when the window passes.
    two.shutdown().await;
    let left = alice.next_left().await;
    assert_eq!(left.participant_id, "bob");
    drop(bob);
    one.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_at_one_auth_replica_closes_sessions_served_by_another() {
    let (redis, key, one, two) = two_replicas().await;
    let alice_token = two.token("alice", "r");
    let mut alice = WsClient::connect(&two.ws_url(), Format::Json).await;
    alice.join(&alice_token).await;

    let started = std::time::Instant::now();
    let mut auth = one.auth_client().await;
    auth.revoke_user(one.with_api_credential(pb::RevokeUserRequest {
        subject: "alice".into(),
    }))
    .await
    .expect("revoke at replica one");
    let closed = alice.closed().await;
    let took = started.elapsed();
    assert_eq!(closed.code, 4401, "{closed:?}");
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    // Replica two's auth refuses the token too.
    let mut auth_two = two.auth_client().await;
    let request = pb::VerifyTokenRequest {
        token: alice_token.clone(),
    };
    let status = auth_two
        .verify_token(request)
        .await
        .expect_err("revoked at two");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    // A replica started later loads the revocation from Redis.
    let three = Stack::start_with(replica(&redis, &key)).await;
    let mut auth_three = three.auth_client().await;
    let request = pb::VerifyTokenRequest { token: alice_token };
    let status = auth_three
        .verify_token(request)
        .await
        .expect_err("revoked at three");
    let code = status
        .metadata()
        .get("x-switchboard-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(code.as_deref(), Some("token_revoked"));
    one.shutdown().await;
    two.shutdown().await;
    three.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pubsub_connections_lose_nothing() {
    use switchboard_tests::redis_server::command;
    let (redis, _key, one, two) = two_replicas().await;
    let mut alice = WsClient::connect(&one.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Json).await;
    alice.join(&one.token("alice", "pubsub")).await;
    bob.join(&two.token("bob", "pubsub")).await;

    // Every message to bob travels over replica two's pub/sub channel; kill
    // every pub/sub connection (CLIENT KILL TYPE pubsub) twice mid-stream.
    const N: usize = 200;
    for n in 0..N {
        alice
            .signal("bob", description(true, &format!("n={n}")))
            .await;
        if n == N / 3 || n == 2 * N / 3 {
            let killed = command(redis.port, "CLIENT KILL TYPE pubsub")
                .await
                .expect("client kill");
            assert!(killed.starts_with(':'), "{killed}");
        }
    }
    // Bob gets all of them, in order, without resuming: gaps are filled from
    // the session log and the node catches up after resubscribing.
    for n in 0..N {
        assert_eq!(bob.recv_until(sdp_of).await, format!("n={n}"));
    }
    one.shutdown().await;
    two.shutdown().await;
}

/// A burst reaches signal in batches, whose signals are relayed together
/// with Redis (`Hub::handle_signals`: one lookup and one delivery round
/// trip per run): each receiver still gets one sender's messages in order,
/// and each refused one is answered to its sender, with its request id.
/// (Relaying a batch's signals as concurrent futures instead delivered a
/// third of a benchmark's messages out of order.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_across_replicas_arrives_in_order_and_each_refusal_is_answered() {
    let redis = RedisServer::start(false).await;
    let key = Jwk::generate(KeyAlg::EdDsa, "shared").expect("key");
    // The sender's edge lets the whole burst through (its rate limit is
    // not what this tests).
    let one = Stack::start_with(|config: &mut StackConfig| {
        replica(&redis, &key)(config);
        config.edge.connection.rate.per_second = 100_000;
        config.edge.connection.rate.burst = 100_000;
    })
    .await;
    let two = Stack::start_with(replica(&redis, &key)).await;
    let mut alice = WsClient::connect(&one.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Binary).await;
    let mut carol = WsClient::connect(&two.ws_url(), Format::Json).await;
    alice.join(&one.token("alice", "burst")).await;
    bob.join(&two.token("bob", "burst")).await;
    carol.join(&two.token("carol", "burst")).await;

    // Sent back to back (batches of many envelopes), interleaved with
    // messages to someone who is not in the room.
    const N: usize = 300;
    let mut refused = Vec::new();
    for n in 0..N {
        alice
            .signal("bob", description(true, &format!("b{n}")))
            .await;
        alice
            .signal("carol", description(true, &format!("c{n}")))
            .await;
        if n % 50 == 0 {
            refused.push(alice.signal("nobody", description(true, "x")).await);
        }
    }
    for n in 0..N {
        assert_eq!(bob.recv_until(sdp_of).await, format!("b{n}"));
        assert_eq!(carol.recv_until(sdp_of).await, format!("c{n}"));
    }
    for id in refused {
        let error = alice.next_error().await;
        assert_eq!(
            (error.request_id, error.code()),
            (id, switchboard_proto::ErrorCode::NotFound),
            "{error:?}"
        );
    }
    one.shutdown().await;
    two.shutdown().await;
}

/// Every key Switchboard writes has a TTL or an owner that deletes it:
/// after join/leave/resume/drop churn across two replicas, once every
/// session has ended, Redis holds what it held before the churn (the nodes'
/// registrations) and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_across_replicas_leaves_no_keys_behind() {
    use switchboard_tests::{redis_server::command, wait_until};
    let redis = RedisServer::start(false).await;
    let key = Jwk::generate(KeyAlg::EdDsa, "shared").expect("key");
    let start = || {
        let tune = replica(&redis, &key);
        Stack::start_with(move |config: &mut StackConfig| {
            tune(config);
            config.signal.join.resume_window = Duration::from_secs(1);
        })
    };
    let one = start().await;
    let two = start().await;
    let keys = |port: u16| async move {
        let reply = command(port, "KEYS sb:*").await.unwrap_or_default();
        let mut keys: Vec<String> = reply
            .lines()
            .filter(|l| l.starts_with("sb:"))
            // Each replica's readiness canary (10 s TTL) and the room event
            // log (bounded, MAXLEN), not session state.
            .filter(|l| !l.starts_with("sb:canary:") && *l != "sb:events")
            .map(str::to_owned)
            .collect();
        keys.sort();
        keys
    };
    let baseline = keys(redis.port).await;
    assert_eq!(
        baseline.len(),
        3,
        "the nodes set and two heartbeats: {baseline:?}"
    );

    let stacks = [&one, &two];
    let mut clients = Vec::new();
    for i in 0..12 {
        let stack = stacks[i % 2];
        let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
        let token = stack.token(&format!("c{i}"), "churn");
        let joined = client.join(&token).await;
        clients.push((i, client, token, joined));
    }
    for (_, client, _, _) in &mut clients {
        client.signal("c0", description(true, "hello")).await;
        client.barrier().await;
    }
    for (i, mut client, token, joined) in clients {
        match i % 3 {
            // Leaves.
            0 => {
                client.send(In::Leave(pb::Leave {})).await;
                client.closed().await;
            }
            // Drops, resumes on the other replica, then leaves.
            1 => {
                let last_seq = client.last_seq;
                client.drop_abruptly();
                let other = stacks[(i + 1) % 2];
                let mut again = WsClient::connect(&other.ws_url(), Format::Json).await;
                again
                    .resume(&joined.session_id, &joined.resume_token, last_seq, &token)
                    .await
                    .expect("resumed");
                again.send(In::Leave(pb::Leave {})).await;
                again.closed().await;
            }
            // Drops and never comes back: ends after the resume window.
            _ => client.drop_abruptly(),
        }
    }
    wait_until(
        "every key of the churn gone",
        Duration::from_secs(20),
        || {
            let baseline = baseline.clone();
            async move {
                let now = keys(redis.port).await;
                now == baseline
            }
        },
    )
    .await;
}

/// Nothing secret is stored in Redis: the logged Joined has no resume token
/// or TURN credential (the connection got them live), and a refreshed
/// access token is pushed outside the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_credential_is_stored_in_redis() {
    use switchboard_signal::TurnConfig;
    use switchboard_tests::redis_server::command;
    let redis = RedisServer::start(false).await;
    let key = Jwk::generate(KeyAlg::EdDsa, "shared").expect("key");
    let tune = replica(&redis, &key);
    let stack = Stack::start_with(move |config: &mut StackConfig| {
        tune(config);
        config.signal.join.turn = Some(TurnConfig {
            secret: b"turn-shared-secret".to_vec(),
            urls: vec!["turn:turn.example.com:3478".into()],
        });
    })
    .await;
    let mut request = Stack::request("alice", "secrets");
    request.ttl = Duration::from_secs(3);
    let (original, _) = stack.issue(&request);
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = alice.join(&original).await;
    let refreshed = alice
        .recv_until(|m| match m {
            Out::TokenRefreshed(t) => Some(t.clone()),
            _ => None,
        })
        .await;
    let mut secrets = vec![
        original.clone(),
        joined.resume_token.clone(),
        refreshed.token.clone(),
    ];
    for server in joined.ice_servers.iter().chain(&refreshed.ice_servers) {
        if !server.credential.is_empty() {
            secrets.push(server.credential.clone());
        }
    }
    assert!(
        secrets.len() >= 5,
        "TURN credentials were issued: {secrets:?}"
    );

    // Everything Switchboard keeps in Redis, as text.
    let listing = command(redis.port, "KEYS sb:*").await.expect("keys");
    let mut stored = String::new();
    for key in listing.lines().filter(|l| l.starts_with("sb:")) {
        let kind = command(redis.port, &format!("TYPE {key}"))
            .await
            .expect("type");
        let read = match kind.trim() {
            "+stream" => format!("XRANGE {key} - +"),
            "+hash" => format!("HGETALL {key}"),
            "+string" => format!("GET {key}"),
            "+list" => format!("LRANGE {key} 0 -1"),
            "+set" => format!("SMEMBERS {key}"),
            "+zset" => format!("ZRANGE {key} 0 -1"),
            other => panic!("unexpected type {other} of {key}"),
        };
        stored.push_str(&command(redis.port, &read).await.expect("read"));
    }
    assert!(
        stored.contains("sb:") || stored.contains("alice"),
        "read something"
    );
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret is stored in Redis: {}…",
            &secret[..8.min(secret.len())]
        );
    }
}
