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
        }
    }

    async fn receive(&mut self, total: u64, from: &str, edges: &[String]) {
        let mut attempt = 0;
        while (self.checker.received.len() as u64) < total {
            match self.client.next().await {
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
