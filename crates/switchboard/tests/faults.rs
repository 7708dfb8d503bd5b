//! Fault tests over separate OS processes of the real binary: one auth, two
//! signal replicas sharing a Redis started here, two edges. A steady stream
//! of numbered messages crosses each fault; a checker counts what the
//! receiver got: lost, duplicated, reordered, and from the wrong sender.

use std::time::{Duration, Instant};

use switchboard_auth::{ApiKey, Jwk, KeyAlg, TokenRequest};
use switchboard_proto::{
    pb::{self, peer_signal::Kind, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{
    DEADLINE, WsClient, description, http, process::Process, redis_server::RedisServer, wait_until,
};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const API: (&str, &str) = ("faults", "faults-secret-0123456789-abcdefghijklmn");
/// Messages in each stream.
const STREAM: u64 = 300;

struct Cluster {
    _redis: RedisServer,
    _auth: Process,
    signals: Vec<Option<Process>>,
    edges: Vec<Option<Process>>,
    dir: std::path::PathBuf,
}

fn ws(edge: &Process) -> String {
    format!("{}/ws", edge.url("edge").replacen("http://", "ws://", 1))
}

fn token(identity: &str, room: &str) -> String {
    let api = ApiKey::new(API.0, API.1).expect("api key");
    let request = TokenRequest {
        identity: identity.into(),
        grants: pb::Grants {
            room: room.into(),
            publish: true,
            ..Default::default()
        },
        ttl: Duration::from_secs(600),
        ..Default::default()
    };
    api.mint(&request.to_claims(API.0, "switchboard").expect("claims"))
        .expect("token")
}

impl Cluster {
    /// Edge i talks to signal replica i only, so a fault is felt by exactly
    /// the clients of that pair.
    async fn start(resume_window: &str) -> Self {
        let redis = RedisServer::start(false).await;
        let dir =
            std::env::temp_dir().join(format!("sb-faults-{}-{}", std::process::id(), redis.port));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = dir.join("signing.jwk");
        std::fs::write(
            &key,
            serde_json::to_string(&Jwk::generate(KeyAlg::EdDsa, "k").expect("key")).expect("json"),
        )
        .expect("write key");
        let api = format!("{}:{}", API.0, API.1);
        let auth = Process::start_service(
            BIN,
            &[
                "auth",
                "--listen",
                "127.0.0.1:0",
                "--signing-key",
                key.to_str().expect("path"),
                "--api-key",
                &api,
            ],
            &[],
        )
        .await;
        let mut signals = Vec::new();
        for _ in 0..2 {
            let args = [
                "signal",
                "--listen",
                "127.0.0.1:0",
                "--redis",
                &redis.url(),
                "--resume-window",
                resume_window,
            ];
            signals.push(Some(Process::start_service(BIN, &args, &[]).await));
        }
        let mut edges = Vec::new();
        for signal in &signals {
            let signal_url = signal.as_ref().expect("signal").url("signal").to_owned();
            let args = [
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--signal-url",
                &signal_url,
                "--auth-url",
                auth.url("auth"),
                "--drain-seconds",
                "3",
                // The stream runs at ~330 msg/s, above the default 50/s.
                "--messages-per-second",
                "100000",
                "--message-burst",
                "100000",
            ];
            let edge = Process::start_service(BIN, &args, &[]).await;
            let url = edge.url("edge").to_owned();
            wait_until("edge ready", DEADLINE, || {
                let url = url.clone();
                async move { http::request(&url, "GET", "/health/ready", "").await.0 == 200 }
            })
            .await;
            edges.push(Some(edge));
        }
        Self {
            _redis: redis,
            _auth: auth,
            signals,
            edges,
            dir,
        }
    }

    fn edge(&self, i: usize) -> &Process {
        self.edges[i].as_ref().expect("edge running")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `grpc.health.v1` of signal replica 0 (readiness follows Redis).
#[derive(Clone)]
struct SignalHealth(tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>);

impl SignalHealth {
    async fn connect(cluster: &Cluster) -> Self {
        let url = cluster.signals[0]
            .as_ref()
            .expect("signal")
            .url("signal")
            .to_owned();
        let channel = tonic::transport::Endpoint::from_shared(url)
            .expect("url")
            .connect()
            .await
            .expect("connect");
        Self(tonic_health::pb::health_client::HealthClient::new(channel))
    }

    /// Whether signal reports SERVING (`None`: the check itself failed).
    async fn serving(&self) -> Option<bool> {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        let request = HealthCheckRequest {
            service: "switchboard.v1.Signal".into(),
        };
        let status = self
            .0
            .clone()
            .check(request)
            .await
            .ok()?
            .into_inner()
            .status;
        Some(status == ServingStatus::Serving as i32)
    }
}

/// What the receiver saw of a numbered stream.
#[derive(Debug, Default)]
struct Checker {
    received: Vec<u64>,
    wrong_sender: u64,
}

impl Checker {
    fn record(&mut self, signal: &pb::PeerSignal, from: &str) {
        if signal.from != from {
            self.wrong_sender += 1;
            return;
        }
        if let Some(Kind::Description(d)) = &signal.kind
            && let Some(n) = d.sdp.strip_prefix("n=").and_then(|n| n.parse().ok())
        {
            self.received.push(n);
        }
    }

    /// (lost, duplicated, reordered) against 0..total.
    fn counts(&self, total: u64) -> (u64, u64, u64) {
        let mut seen = std::collections::HashSet::new();
        let duplicated = self.received.iter().filter(|n| !seen.insert(**n)).count() as u64;
        let lost = (0..total).filter(|n| !seen.contains(n)).count() as u64;
        let reordered = self.received.windows(2).filter(|w| w[1] < w[0]).count() as u64;
        (lost, duplicated, reordered)
    }
}

/// A receiving participant that reconnects and resumes through any edge
/// whenever its connection closes, until it has `total` messages.
struct Receiver {
    token: String,
    session: String,
    resume_token: String,
    client: WsClient,
    checker: Checker,
    resumes: Vec<Duration>,
    /// Drop the socket abruptly once this many messages arrived.
    drop_at: Option<usize>,
}

impl Receiver {
    async fn join(url: &str, token: String) -> Self {
        let mut client = WsClient::connect(url, Format::Json).await;
        let joined = client.join(&token).await;
        Self {
            token,
            session: joined.session_id,
            resume_token: joined.resume_token,
            client,
            checker: Checker::default(),
            resumes: Vec::new(),
            drop_at: None,
        }
    }

    async fn receive(&mut self, total: u64, from: &str, edges: &[String]) {
        let mut attempt = 0;
        while (self.checker.received.len() as u64) < total {
            let next = if self.drop_at == Some(self.checker.received.len()) {
                // The network goes away under the client.
                self.drop_at = None;
                let client = std::mem::replace(
                    &mut self.client,
                    WsClient::connect(&edges[0], Format::Json).await,
                );
                let last_seq = client.last_seq;
                client.drop_abruptly();
                self.client.last_seq = last_seq;
                Err(switchboard_tests::Closed {
                    code: 1006,
                    reason: "dropped".into(),
                })
            } else {
                self.client.next().await
            };
            match next {
                Ok(message) => {
                    if let Some(Out::Signal(signal)) = &message.message {
                        self.checker.record(signal, from);
                    }
                    if let Some(Out::TokenRefreshed(t)) = &message.message {
                        self.token = t.token.clone();
                    }
                }
                Err(closed) => {
                    // Reconnect through the next edge and resume.
                    let started = Instant::now();
                    loop {
                        attempt += 1;
                        let url = &edges[attempt % edges.len()];
                        let mut client = WsClient::connect(url, Format::Json).await;
                        match client
                            .resume(
                                &self.session,
                                &self.resume_token,
                                self.client.last_seq,
                                &self.token,
                            )
                            .await
                        {
                            Ok(resumed) => {
                                assert!(resumed.complete, "resume after {closed:?} was incomplete");
                                self.resume_token = resumed.resume_token;
                                self.client = client;
                                self.resumes.push(started.elapsed());
                                break;
                            }
                            Err(err) => {
                                assert!(err.retryable || attempt < 20, "resume refused: {err:?}")
                            }
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_replica_killed_mid_stream_loses_nothing() {
    let mut cluster = Cluster::start("2").await;
    let (edge0, edge1) = (ws(cluster.edge(0)), ws(cluster.edge(1)));
    // Alice and the watcher on pair 0; bob and carol on pair 1.
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "faults")).await;
    let mut watcher = WsClient::connect(&edge0, Format::Json).await;
    watcher.join(&token("watcher", "faults")).await;
    let mut bob = Receiver::join(&edge1, token("bob", "faults")).await;
    let mut carol = WsClient::connect(&edge1, Format::Json).await;
    carol.join(&token("carol", "faults")).await;

    let (third, under_way) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(async move {
        let mut third = Some(third);
        // A steady pace: one message every 3 ms.
        let mut pace = tokio::time::interval(Duration::from_millis(3));
        for n in 0..STREAM {
            pace.tick().await;
            alice
                .signal("bob", description(true, &format!("n={n}")))
                .await;
            if n == STREAM / 3 {
                let _ = third.take().map(|t| t.send(()));
            }
        }
        alice
    });
    let receiver = tokio::spawn(async move {
        let edges = [edge0.clone()];
        bob.receive(STREAM, "alice", &edges).await;
        bob
    });
    // Kill replica 1 (holding bob's and carol's sessions) a third of the
    // way through the stream.
    under_way.await.expect("sender running");
    cluster.signals[1].take().expect("running").kill9().await;

    let _alice = sender.await.expect("sender");
    let bob = receiver.await.expect("receiver");
    let (lost, duplicated, reordered) = bob.checker.counts(STREAM);
    eprintln!(
        "replica kill -9: sent {STREAM}, received {}, lost {lost}, duplicated {duplicated}, reordered {reordered}, \
         wrong sender {}, resumes {:?}",
        bob.checker.received.len(),
        bob.checker.wrong_sender,
        bob.resumes
    );
    assert_eq!(
        (lost, duplicated, reordered, bob.checker.wrong_sender),
        (0, 0, 0, 0)
    );
    assert!(
        !bob.resumes.is_empty(),
        "bob had to resume on the surviving replica"
    );

    // Carol never came back: the surviving replica reaps the dead one and
    // ends her session when the resume window passes.
    let left = watcher.recv_until(|m| match m {
        Out::ParticipantLeft(l) if l.participant_id == "carol" => Some(l.clone()),
        _ => None,
    });
    let left = tokio::time::timeout(Duration::from_secs(20), left)
        .await
        .expect("carol's session ended");
    assert_eq!(left.reason, "disconnected");
    drop(carol);
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// Alice streams `per` numbered messages to each receiver, round robin.
async fn stream(
    mut alice: WsClient,
    receivers: usize,
    per: u64,
    third: tokio::sync::oneshot::Sender<()>,
) -> WsClient {
    let mut third = Some(third);
    let mut pace = tokio::time::interval(Duration::from_millis(1));
    for n in 0..per {
        for r in 0..receivers {
            pace.tick().await;
            alice
                .signal(&format!("r{r}"), description(true, &format!("n={n}")))
                .await;
        }
        if n == per / 3 {
            let _ = third.take().map(|t| t.send(()));
        }
    }
    alice
}

async fn receivers(edge: &str, count: usize, room: &str) -> Vec<Receiver> {
    let mut all = Vec::new();
    for r in 0..count {
        all.push(Receiver::join(edge, token(&format!("r{r}"), room)).await);
    }
    all
}

fn spawn_receivers(
    list: Vec<Receiver>,
    per: u64,
    edges: Vec<String>,
) -> Vec<tokio::task::JoinHandle<Receiver>> {
    list.into_iter()
        .map(|mut r| {
            let edges = edges.clone();
            tokio::spawn(async move {
                r.receive(per, "alice", &edges).await;
                r
            })
        })
        .collect()
}

/// Checks every receiver; returns (total received, resume times).
async fn check(
    handles: Vec<tokio::task::JoinHandle<Receiver>>,
    per: u64,
    what: &str,
) -> Vec<Duration> {
    let mut resumes = Vec::new();
    let (mut received, mut lost, mut duplicated, mut reordered, mut wrong) = (0, 0, 0, 0, 0);
    for handle in handles {
        let r = handle.await.expect("receiver");
        let (l, d, o) = r.checker.counts(per);
        received += r.checker.received.len();
        (lost, duplicated, reordered, wrong) = (
            lost + l,
            duplicated + d,
            reordered + o,
            wrong + r.checker.wrong_sender,
        );
        resumes.extend(r.resumes);
    }
    eprintln!(
        "{what}: received {received}, lost {lost}, duplicated {duplicated}, reordered {reordered}, wrong sender {wrong}, \
         resumes {}",
        resumes.len()
    );
    assert_eq!((lost, duplicated, reordered, wrong), (0, 0, 0, 0), "{what}");
    resumes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_restart_and_client_drops_lose_nothing() {
    let mut cluster = Cluster::start("30").await;
    let (edge0, edge1) = (ws(cluster.edge(0)), ws(cluster.edge(1)));
    const PER: u64 = 60;
    const RECEIVERS: usize = 10;

    // Edge 1 restarts (SIGTERM: drain, clients told 1012) mid-stream.
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "edge-restart")).await;
    let list = receivers(&edge1, RECEIVERS, "edge-restart").await;
    let (third, under_way) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(stream(alice, RECEIVERS, PER, third));
    let handles = spawn_receivers(list, PER, vec![edge0.clone()]);
    under_way.await.expect("sender running");
    let edge = cluster.edges[1].take().expect("running");
    let (status, drained) = edge.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "edge exit status {status:?}");
    let alice = sender.await.expect("sender");
    let mut resumes = check(handles, PER, "edge restart").await;
    assert_eq!(
        resumes.len(),
        RECEIVERS,
        "every client of the restarted edge resumed once"
    );
    eprintln!(
        "edge restart: drained in {drained:?}; resume p50 {:?}, p99 {:?}",
        percentile(&mut resumes, 0.5),
        percentile(&mut resumes, 0.99)
    );
    drop(alice);

    // Clients whose network drops mid-stream resume through the other edge.
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "drops")).await;
    let mut list = receivers(&edge0, RECEIVERS, "drops").await;
    for (i, r) in list.iter_mut().enumerate() {
        r.drop_at = Some(10 + i);
    }
    let (third, _under_way) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(stream(alice, RECEIVERS, PER, third));
    let handles = spawn_receivers(list, PER, vec![edge0.clone()]);
    let _alice = sender.await.expect("sender");
    let resumes = check(handles, PER, "client drop").await;
    assert_eq!(resumes.len(), RECEIVERS);
    let _ = edge1;
}

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
            (err.code.as_str(), err.retryable),
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
    assert_eq!(refused.code, "not_found");
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
        assert_eq!(err.code, "unavailable");
        refused.push(err.request_id);
    }
    let all_refused_after = paused.elapsed();
    assert_eq!(first.code, "unavailable");
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
