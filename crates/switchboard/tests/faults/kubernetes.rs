//! What Kubernetes sees and does, over separate processes: probes through
//! a Redis outage, a drain on SIGTERM, rebalancing after a scale-out.

use std::time::{Duration, Instant};

use switchboard_proto::{
    health::LIVENESS,
    health_pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    },
    wire::Format,
};
use switchboard_tests::{DEADLINE, WsClient, http, process::Process, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{cluster::*, peers::*};

/// A probe's answer must come within this (the manifests' `timeoutSeconds`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What one probe poll answers: `Some(true)` serving/200, `Some(false)`
/// not serving/503, `None` no answer within [`PROBE_TIMEOUT`]. gRPC probes
/// reuse one connection per target, as a kubelet keeps one per probe.
async fn grpc_status(url: &str, service: &str) -> Option<bool> {
    static CHANNELS: std::sync::Mutex<Vec<(String, tonic::transport::Channel)>> =
        std::sync::Mutex::new(Vec::new());
    let cached = {
        let channels = CHANNELS.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .iter()
            .find(|(u, _)| u == url)
            .map(|(_, c)| c.clone())
    };
    let channel = match cached {
        Some(channel) => channel,
        None => {
            let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
                .ok()?
                .connect_lazy();
            let mut channels = CHANNELS.lock().unwrap_or_else(|p| p.into_inner());
            channels.push((url.to_owned(), channel.clone()));
            channel
        }
    };
    let check = async {
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()?;
        Some(answer.into_inner().status == ServingStatus::Serving as i32)
    };
    tokio::time::timeout(PROBE_TIMEOUT, check)
        .await
        .ok()
        .flatten()
}

async fn http_status(url: &str, path: &str) -> Option<bool> {
    let url = url.to_owned();
    let path = path.to_owned();
    let call = tokio::spawn(async move { http::request(&url, "GET", &path, "").await.0 });
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(Ok(200)) => Some(true),
        Ok(Ok(_)) => Some(false),
        _ => None,
    }
}

struct Probes {
    /// (what, gRPC URL, service name) or (what, HTTP base URL, path).
    grpc: Vec<(String, String, &'static str)>,
    http: Vec<(String, String, &'static str)>,
}

impl Probes {
    /// Polls every probe once: (name, answer).
    async fn poll(&self) -> Vec<(String, Option<bool>)> {
        let mut out = Vec::new();
        for (name, url, service) in &self.grpc {
            out.push((name.clone(), grpc_status(url, service).await));
        }
        for (name, url, path) in &self.http {
            out.push((name.clone(), http_status(url, path).await));
        }
        out
    }
}

/// Redis is killed for 10 s: on every poll, every liveness probe of every
/// process answers in time and says live, while readiness goes not ready
/// (signal replicas, edges, the aggregator) and comes back once Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_never_depends_on_redis_and_readiness_follows_it() {
    let mut cluster = Cluster::start("30").await;
    let signals: Vec<String> = cluster
        .signals
        .iter()
        .map(|s| s.as_ref().expect("signal").url("signal").to_owned())
        .collect();
    let auth = cluster._auth.url("auth").to_owned();
    let edges: Vec<String> = (0..2)
        .map(|i| cluster.edge(i).url("edge").to_owned())
        .collect();
    let redis_url = cluster._redis.url();
    let targets = [
        format!("auth={auth}"),
        format!("signal={}", signals[0]),
        format!("signal={}", signals[1]),
    ];
    let mut args = vec!["health", "--listen", "127.0.0.1:0", "--redis", &redis_url];
    for t in &targets {
        args.extend(["--target", t.as_str()]);
    }
    let aggregator = Process::start_service(BIN, &args, &[]).await;
    let health = aggregator.url("health").to_owned();

    let liveness = Probes {
        grpc: std::iter::once(("auth".to_owned(), auth.clone(), LIVENESS))
            .chain(
                signals
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("signal {i}"), s.clone(), LIVENESS)),
            )
            .collect(),
        http: std::iter::once(("aggregator".to_owned(), health.clone(), "/health/live"))
            .chain(
                edges
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (format!("edge {i}"), e.clone(), "/health/live")),
            )
            .collect(),
    };
    let readiness = Probes {
        grpc: signals
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("signal {i}"), s.clone(), ""))
            .collect(),
        http: std::iter::once(("aggregator".to_owned(), health.clone(), "/health/ready"))
            .chain(
                edges
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (format!("edge {i}"), e.clone(), "/health/ready")),
            )
            .collect(),
    };
    let all_ready = |poll: &[(String, Option<bool>)]| poll.iter().all(|(_, a)| *a == Some(true));
    let none_ready = |poll: &[(String, Option<bool>)]| poll.iter().all(|(_, a)| *a == Some(false));
    wait_until("everything ready", DEADLINE, || {
        let readiness = &readiness;
        async move { all_ready(&readiness.poll().await) }
    })
    .await;
    // Auth's readiness does not follow Redis (it verifies from memory).
    assert_eq!(grpc_status(&auth, "").await, Some(true));

    cluster._redis.kill9().await;
    let down = Instant::now();
    let mut polls = 0;
    let mut not_ready_after = None;
    while down.elapsed() < Duration::from_secs(10) {
        let live = liveness.poll().await;
        assert!(
            all_ready(&live),
            "liveness failed during the outage: {live:?}"
        );
        polls += 1;
        if not_ready_after.is_none() && none_ready(&readiness.poll().await) {
            not_ready_after = Some(down.elapsed());
        }
    }
    let not_ready_after = not_ready_after.expect("readiness never went down with Redis");
    assert!(
        not_ready_after < Duration::from_secs(5),
        "not ready only after {not_ready_after:?}"
    );
    assert_eq!(grpc_status(&auth, "").await, Some(true), "auth stays ready");
    let (_, report) = http::request(&health, "GET", "/health/ready", "").await;
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    assert_eq!(
        report["dependencies"]["redis"]["status"], "not_serving",
        "{report}"
    );
    assert_eq!(
        report["dependencies"]["signal"]["status"], "not_serving",
        "{report}"
    );
    assert_eq!(
        report["dependencies"]["auth"]["status"], "serving",
        "{report}"
    );

    cluster._redis.restart().await;
    let back = Instant::now();
    loop {
        let live = liveness.poll().await;
        assert!(
            all_ready(&live),
            "liveness failed during recovery: {live:?}"
        );
        polls += 1;
        if all_ready(&readiness.poll().await) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not ready 10 s after Redis returned: {:?}",
            readiness.poll().await
        );
    }
    let ready_after = back.elapsed();
    eprintln!(
        "redis outage: {polls} liveness polls of 6 probes, all live; not ready after {not_ready_after:?}, \
         ready again {ready_after:?} after Redis returned"
    );

    // One of two signal replicas gone: the `signal` group still serves
    // (the aggregator's rule), its report names the member that does not.
    let replica = cluster.signals[1].take().expect("running");
    replica.kill9().await;
    wait_until("the aggregator sees replica 1 gone", DEADLINE, || {
        let health = health.clone();
        async move {
            let (status, body) = http::request(&health, "GET", "/health/ready", "").await;
            let report: serde_json::Value = serde_json::from_str(&body).expect("json");
            let members = report["dependencies"]["signal"]["members"].clone();
            status == 200
                && members
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["status"] == "unreachable"))
        }
    })
    .await;
    let (status, _) = aggregator.terminate(Duration::from_secs(5)).await;
    assert!(status.success());
}

/// A WebSocket handshake's HTTP status line, or `None` without an answer
/// within a second (a listener that accepts and never answers).
async fn handshake_status(base_url: &str) -> Option<u16> {
    let authority = base_url.trim_start_matches("http://").to_owned();
    let exchange = async move {
        let mut stream = tokio::net::TcpStream::connect(&authority).await.ok()?;
        let head = format!(
            "GET /ws HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut buf = vec![0; 256];
        let n = stream.read(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        text.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}

/// SIGTERM on an edge whose 20 clients receive numbered messages: at once
/// its readiness is 503 and a new handshake gets 503; its clients are told
/// to reconnect spread over the 4 s window, resume on the other edge, and
/// lose and duplicate nothing; the process exits within its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_edge_refuses_new_work_at_once_and_spreads_its_reconnects() {
    const SPREAD: Duration = Duration::from_secs(4);
    const RECEIVERS: usize = 20;
    const PER: u64 = 400;
    let mut cluster = Cluster::start_with(
        "30",
        &["--drain-seconds", "10", "--drain-spread-seconds", "4"],
    )
    .await;
    let edge0 = ws(cluster.edge(0));
    let edge1_url = cluster.edge(1).url("edge").to_owned();
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "drain")).await;
    let list = receivers(&ws(cluster.edge(1)), RECEIVERS, "drain").await;
    let (third, under_way) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(stream(alice, RECEIVERS, PER, third));
    let handles = spawn_receivers(list, PER, vec![edge0.clone()]);
    under_way.await.expect("sender running");

    let edge = cluster.edges[1].take().expect("running");
    let sigterm = Instant::now();
    let terminating = tokio::spawn(edge.terminate(Duration::from_secs(15)));
    wait_until("draining edge not ready", Duration::from_secs(2), || {
        let url = edge1_url.clone();
        async move { http_status(&url, "/health/ready").await == Some(false) }
    })
    .await;
    let refused_after = sigterm.elapsed();
    assert_eq!(
        handshake_status(&edge1_url).await,
        Some(503),
        "a new handshake is answered 503 at once"
    );
    assert_eq!(http_status(&edge1_url, "/health/live").await, Some(true));

    let _alice = sender.await.expect("sender");
    let mut closes = Vec::new();
    let mut resumes = Vec::new();
    let mut lost_or_duplicated = (0, 0);
    for handle in handles {
        let r = handle.await.expect("receiver");
        let (lost, duplicated, _) = r.checker.counts(PER);
        lost_or_duplicated.0 += lost;
        lost_or_duplicated.1 += duplicated;
        closes.extend(r.closes.iter().map(|c| c.duration_since(sigterm)));
        resumes.extend(r.resumes);
    }
    let (status, took) = terminating.await.expect("join");
    assert!(status.success(), "edge exit status {status:?}");
    assert_eq!(lost_or_duplicated, (0, 0), "lost, duplicated");
    assert_eq!(
        closes.len(),
        RECEIVERS,
        "each client was closed once: {closes:?}"
    );
    closes.sort();
    let (first, last) = (closes[0], closes[RECEIVERS - 1]);
    let per_second: Vec<usize> = (0..=SPREAD.as_secs())
        .map(|s| closes.iter().filter(|c| c.as_secs() == s).count())
        .collect();
    eprintln!(
        "drain: not ready after {refused_after:?}; reconnects from {first:?} to {last:?}, per second {per_second:?}; \
         resume p50 {:?}; exited after {took:?}",
        percentile(&mut resumes, 0.5)
    );
    // At once: well inside the spread (the listener used to stay silent
    // until the process exited); the bound leaves room for a loaded machine.
    assert!(refused_after < Duration::from_secs(2), "{refused_after:?}");
    assert!(
        last <= SPREAD + Duration::from_secs(1),
        "a reconnect came after the window: {last:?}"
    );
    // Spread, not a storm: 20 uniform draws over 4 s span less than 2 s
    // with probability ≈ 20 × 2⁻¹⁹; without the spread they all come at once.
    assert!(
        last - first >= SPREAD / 2,
        "reconnects bunched within {:?}: {closes:?}",
        last - first
    );
    assert!(took < Duration::from_secs(10), "drain took {took:?}");
}

/// Connections an edge holds (its readiness report says).
async fn connections(edge: &str) -> u64 {
    let (_, body) = http::request(edge, "GET", "/health/ready", "").await;
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    report["connections"].as_u64().expect("connections")
}

/// Edge 0 holds 20 sessions, edge 1 only the sender: edge 0 asks its excess
/// over the fleet average to reconnect, at most 3 a second, and they resume
/// on edge 1 without losing or duplicating a message; nobody is moved twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_edge_hands_its_excess_to_an_empty_one_paced() {
    const RECEIVERS: usize = 20;
    const PER: u64 = 400;
    const PER_SECOND: usize = 3;
    let cluster = Cluster::start_with(
        "30",
        &[
            "--drain-seconds",
            "3",
            "--redis",
            "{redis}",
            "--rebalance-threshold",
            "0.2",
            "--rebalance-per-second",
            "3",
        ],
    )
    .await;
    let (edge0, edge1) = (ws(cluster.edge(0)), ws(cluster.edge(1)));
    let urls = [
        cluster.edge(0).url("edge").to_owned(),
        cluster.edge(1).url("edge").to_owned(),
    ];
    // The sender on the edge that fills up last (it is never above the
    // average, so never asked to move).
    let mut alice = WsClient::connect(&edge1, Format::Json).await;
    alice.join(&token("alice", "rebalance")).await;
    let list = receivers(&edge0, RECEIVERS, "rebalance").await;
    let started = Instant::now();
    let (third, _under_way) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(stream(alice, RECEIVERS, PER, third));
    // A moved client reconnects through the load balancer: round robin
    // from edge 1 (its first resume goes to edges[1]).
    let handles = spawn_receivers(list, PER, vec![edge0.clone(), edge1.clone()]);

    wait_until("the edges balanced", Duration::from_secs(20), || {
        let urls = urls.clone();
        async move {
            let (a, b) = (connections(&urls[0]).await, connections(&urls[1]).await);
            a.abs_diff(b) <= 4
        }
    })
    .await;
    let balanced_after = started.elapsed();
    let _alice = sender.await.expect("sender");
    let mut closes = Vec::new();
    let mut lost_or_duplicated = (0, 0);
    let mut moved_twice = 0;
    for handle in handles {
        let r = handle.await.expect("receiver");
        let (lost, duplicated, _) = r.checker.counts(PER);
        lost_or_duplicated.0 += lost;
        lost_or_duplicated.1 += duplicated;
        moved_twice += usize::from(r.closes.len() > 1);
        closes.extend(r.closes.iter().map(|c| c.duration_since(started)));
    }
    let counts = (connections(&urls[0]).await, connections(&urls[1]).await);
    closes.sort();
    let window_max = closes
        .iter()
        .map(|c| {
            closes
                .iter()
                .filter(|d| **d >= *c && **d < *c + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    let span =
        closes.last().copied().unwrap_or_default() - closes.first().copied().unwrap_or_default();
    eprintln!(
        "rebalance: balanced after {balanced_after:?}, {} clients moved at {closes:?} (over {span:?}), at most {window_max} in a second; \
         edges now {counts:?}",
        closes.len()
    );
    assert_eq!(lost_or_duplicated, (0, 0), "lost, duplicated");
    assert_eq!(moved_twice, 0, "a client was moved twice");
    assert!(
        (8..=11).contains(&closes.len()),
        "the excess over the average (≈ 9–10) moved, not more: {}",
        closes.len()
    );
    // Paced: a round a second moves at most 3, so n moves span at least
    // (n / 3 - 1) seconds as the clients see them (their reconnects may
    // bunch on a loaded machine; without pacing all come at once).
    let rounds = closes.len().div_ceil(PER_SECOND) as u32;
    assert!(
        span + Duration::from_millis(500) >= Duration::from_secs(1) * rounds.saturating_sub(1),
        "{} moves within {span:?}",
        closes.len()
    );
}
