//! A connection flood (TEST-PLAN: thousands of connects per second) at the
//! edge while sessions are in a call: every attempt gets an answer — 101,
//! or a refusal with its code (429 too fast, 503 at the address's cap) —
//! none hangs; the refusals are the admission's own counts; held silent
//! connections are no obstacle; and the sessions already open lose nothing.
//! Their round trips are timed before and during the flood (printed, and
//! bounded generously: this is a guard against a stall, not a benchmark).

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use switchboard_proto::wire::Format;
use switchboard_tests::{DEADLINE, Stack, WsClient, description};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// Sources of the flood (each its own client address).
const SOURCES: u8 = 8;
/// Attempts in flight per source.
const IN_FLIGHT: usize = 32;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(3);
/// Connections that connect and then say nothing, held through the flood.
const SILENT: usize = 1000;

#[derive(Debug, Default, Clone, Copy)]
struct Outcomes {
    accepted: u64,
    too_fast: u64,
    at_cap: u64,
    /// Closed without an answer (the process's connection cap).
    closed: u64,
    other: u64,
}

impl Outcomes {
    fn add(&mut self, o: Outcomes) {
        self.accepted += o.accepted;
        self.too_fast += o.too_fast;
        self.at_cap += o.at_cap;
        self.closed += o.closed;
        self.other += o.other;
    }
    fn total(&self) -> u64 {
        self.accepted + self.too_fast + self.at_cap + self.closed + self.other
    }
}

async fn connect_from(source: IpAddr, edge: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(edge).await
}

/// One upgrade attempt: what the edge answered.
async fn attempt(source: IpAddr, edge: SocketAddr, origin: &str) -> Outcomes {
    let mut outcome = Outcomes::default();
    let Ok(mut stream) = connect_from(source, edge).await else {
        outcome.closed = 1;
        return outcome;
    };
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {edge}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: {origin}\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        outcome.closed = 1;
        return outcome;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(DEADLINE, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "an upgrade attempt got no answer in time");
    let head = String::from_utf8_lossy(&head);
    match head.split(' ').nth(1) {
        Some("101") => outcome.accepted = 1,
        Some("429") => outcome.too_fast = 1,
        Some("503") => outcome.at_cap = 1,
        None => outcome.closed = 1,
        Some(_) => outcome.other = 1,
    }
    outcome
}

/// Attempts from `source`, `IN_FLIGHT` at a time, until `end`.
async fn flood(source: IpAddr, edge: SocketAddr, origin: String, end: Instant) -> Outcomes {
    let mut tasks = tokio::task::JoinSet::new();
    let mut outcomes = Outcomes::default();
    while Instant::now() < end {
        while tasks.len() < IN_FLIGHT {
            let origin = origin.clone();
            tasks.spawn(async move { attempt(source, edge, &origin).await });
        }
        if let Some(done) = tasks.join_next().await {
            outcomes.add(done.expect("attempt"));
        }
    }
    while let Some(done) = tasks.join_next().await {
        outcomes.add(done.expect("attempt"));
    }
    outcomes
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_answered_and_open_calls_carry_on() {
    let stack = Stack::start().await;
    let url = stack.ws_url();
    let edge: SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
        .expect("edge address");
    let origin = format!("http://{edge}");

    // Two pairs in a call, from an address the flood does not use.
    let mut pairs = Vec::new();
    for p in 0..2 {
        let mut a = WsClient::connect(&url, Format::Binary).await;
        a.join(&stack.token(&format!("a{p}"), "steady")).await;
        let mut b = WsClient::connect(&url, Format::Binary).await;
        b.join(&stack.token(&format!("b{p}"), "steady")).await;
        pairs.push((a, b, format!("a{p}"), format!("b{p}")));
    }
    // One round trip a → b → a per pair; their times.
    async fn round_trips(
        pairs: &mut [(WsClient, WsClient, String, String)],
        count: usize,
        until: Option<Instant>,
    ) -> Vec<Duration> {
        let mut times = Vec::new();
        let mut n = 0;
        loop {
            for (a, b, a_name, b_name) in pairs.iter_mut() {
                let start = Instant::now();
                let sdp = format!("v=0 {n}");
                a.signal(b_name, description(true, &sdp)).await;
                let got = b.next_signal().await;
                assert_eq!(got.from, *a_name);
                b.signal(a_name, description(false, &sdp)).await;
                let back = a.next_signal().await;
                assert_eq!(back.from, *b_name, "in order, nothing lost");
                times.push(start.elapsed());
            }
            n += 1;
            let done = match until {
                Some(end) => Instant::now() >= end,
                None => n >= count,
            };
            if done {
                return times;
            }
        }
    }
    let mut before = round_trips(&mut pairs, 100, None).await;

    // Silent connections first: they hold their slots through the flood.
    let mut silent = Vec::with_capacity(SILENT);
    let silent_source: IpAddr = "127.0.0.100".parse().expect("ip");
    for _ in 0..SILENT {
        silent.push(
            connect_from(silent_source, edge)
                .await
                .expect("silent connect"),
        );
    }

    let started = Instant::now();
    let end = started + FLOOD;
    let floods: Vec<_> = (0..SOURCES)
        .map(|i| {
            let source: IpAddr = format!("127.0.0.{}", 10 + i).parse().expect("ip");
            tokio::spawn(flood(source, edge, origin.clone(), end))
        })
        .collect();
    let mut during = round_trips(&mut pairs, 0, Some(end)).await;
    let mut outcomes = Outcomes::default();
    for f in floods {
        outcomes.add(f.await.expect("flood"));
    }
    let elapsed = started.elapsed();
    drop(silent);

    let rate = outcomes.total() as f64 / elapsed.as_secs_f64();
    let (p50_before, p99_before) = (percentile(&mut before, 0.5), percentile(&mut before, 0.99));
    let (p50_during, p99_during) = (percentile(&mut during, 0.5), percentile(&mut during, 0.99));
    println!(
        "flood: {} attempts in {:.1} s ({rate:.0}/s) from {SOURCES} addresses, {SILENT} silent \
         connections held: {outcomes:?}; admission counted {:?} (at cap, too fast); \
         round trips of the open calls: before p50 {p50_before:?} p99 {p99_before:?} ({} samples), \
         during p50 {p50_during:?} p99 {p99_during:?} ({} samples)",
        outcomes.total(),
        elapsed.as_secs_f64(),
        stack.admission.refused(),
        before.len(),
        during.len(),
    );
    // Thousands per second: otherwise this is not the flood it names.
    assert!(rate >= 1000.0, "only {rate:.0} attempts/s");
    // Every attempt was answered with a code: no silent drops, no strays.
    assert_eq!(outcomes.closed + outcomes.other, 0, "{outcomes:?}");
    // Per address: a burst admitted, then refused as too fast (429), and
    // the refusals are the admission's own.
    assert!(
        outcomes.accepted > 0 && outcomes.too_fast > 0,
        "{outcomes:?}"
    );
    assert_eq!(
        stack.admission.refused(),
        (outcomes.at_cap, outcomes.too_fast)
    );
    // The calls went on throughout, in order (checked per round trip).
    assert!(!during.is_empty());
    assert!(
        p99_during < Duration::from_secs(1),
        "open calls stalled during the flood: p99 {p99_during:?}"
    );
    stack.shutdown().await;
}
