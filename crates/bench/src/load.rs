//! The load: `pairs` sender→receiver pairs, each sending `messages` offers of
//! `size` bytes with at most `window` in flight, receivers checking order
//! and recording latency.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use switchboard_auth::{ApiKey, TokenRequest};
use switchboard_proto::pb;
use tokio::{net::TcpStream, sync::Notify};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The switchboard binary to measure.
    #[arg(long, default_value = "target/release/switchboard")]
    pub bin: String,
    #[arg(long, default_value_t = 200)]
    pub pairs: usize,
    /// Messages per pair.
    #[arg(long, default_value_t = 2_000)]
    pub messages: u64,
    /// Bytes of SDP per message.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Messages in flight per pair.
    #[arg(long, default_value_t = 16)]
    pub window: u64,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Total messages per second over all pairs (each pair paced evenly);
    /// unset: as fast as the window allows (saturation).
    #[arg(long)]
    pub rate: Option<u64>,
    /// More arguments for `switchboard all`, e.g. `--stack-arg=--redis
    /// --stack-arg=redis://127.0.0.1:6390` (repeatable).
    #[arg(long = "stack-arg", allow_hyphen_values = true)]
    pub stack_args: Vec<String>,
}

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One scenario's figures.
pub struct Outcome {
    delivered: u64,
    lost_or_reordered: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    server_cpu: Option<Duration>,
}

impl Outcome {
    /// Messages that did not arrive, or not in order.
    pub fn lost_or_reordered(&self) -> u64 {
        self.lost_or_reordered
    }

    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index]
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivered {} (lost/reordered {}) in {:.2}s = {:>8.0} msg/s, latency p50 {} µs p99 {} µs p99.9 {} µs max {} µs",
            self.delivered,
            self.lost_or_reordered,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.percentile(0.5),
            self.percentile(0.99),
            self.percentile(0.999),
            self.latencies_us.last().copied().unwrap_or(0),
        )?;
        if let Some(cpu) = self.server_cpu {
            write!(
                f,
                ", server CPU {:.1} µs/msg",
                cpu.as_secs_f64() * 1e6 / self.delivered.max(1) as f64
            )?;
        }
        Ok(())
    }
}

/// User+system CPU time of a process, from /proc.
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // CLK_TCK is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

pub(crate) async fn connect(url: &str) -> Ws {
    let mut request = url.into_client_request().expect("request");
    let origin = url.replacen("ws://", "http://", 1);
    let origin = origin.split("/ws").next().unwrap_or_default().to_owned();
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_str(&origin).expect("origin"));
    tokio_tungstenite::connect_async(request)
        .await
        .expect("connect")
        .0
}

pub(crate) async fn join(ws: &mut Ws, api: &ApiKey, identity: &str, room: &str) {
    let request = TokenRequest {
        identity: identity.into(),
        grants: pb::Grants {
            room: room.into(),
            publish: true,
            ..Default::default()
        },
        ttl: Duration::from_secs(3600),
        ..Default::default()
    };
    let claims = request.to_claims(&api.key, "switchboard").expect("claims");
    let token = api.mint(&claims).expect("token");
    ws.send(Message::text(format!(
        r#"{{"id":1,"join":{{"token":"{token}"}}}}"#
    )))
    .await
    .expect("send");
    while let Some(Ok(message)) = ws.next().await {
        if message.to_text().is_ok_and(|t| t.contains("\"joined\"")) {
            return;
        }
    }
    panic!("join failed");
}

/// Runs the load against `url`; with `keys`, clients join rooms first.
pub async fn run(
    args: &LoadArgs,
    url: &str,
    keys: Option<&ApiKey>,
    server_pid: Option<u32>,
) -> Outcome {
    let base = Instant::now();
    let mut pairs = Vec::with_capacity(args.pairs);
    for k in 0..args.pairs {
        let (mut a, mut b) = match keys {
            Some(keys) => {
                let mut a = connect(url).await;
                let mut b = connect(url).await;
                join(&mut a, keys, &format!("a{k}"), &format!("room{k}")).await;
                join(&mut b, keys, &format!("b{k}"), &format!("room{k}")).await;
                (a, b)
            }
            None => (
                connect(&format!("{url}?{k}")).await,
                connect(&format!("{url}?{k}")).await,
            ),
        };
        // Keep both sockets alive against keepalive timeouts during a run.
        let _ = a.send(Message::text(r#"{"id":0,"ping":{}}"#)).await;
        let _ = b.send(Message::text(r#"{"id":0,"ping":{}}"#)).await;
        pairs.push((k, a, b));
    }

    let cpu_before = cpu_time(server_pid);
    let started = Instant::now();
    let padding = "x".repeat(args.size);
    let mut tasks = Vec::new();
    for (k, a, b) in pairs {
        let received = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Notify::new());
        let (mut a_sink, mut a_stream) = a.split();
        let (_b_sink, mut b_stream) = b.split();
        // Drain the sender's inbound side (presence, pongs).
        tokio::spawn(async move { while let Some(Ok(_)) = a_stream.next().await {} });
        let (messages, window, padding) = (args.messages, args.window, padding.clone());
        let (sent_received, sent_progress) = (received.clone(), progress.clone());
        // Fixed rate: each pair sends every `pairs / rate` seconds, the
        // pairs spread over one period.
        let mut pace = args.rate.map(|rate| {
            let period = Duration::from_secs_f64(args.pairs as f64 / rate.max(1) as f64);
            let offset = period.mul_f64(k as f64 / args.pairs as f64);
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let sender = tokio::spawn(async move {
            for i in 0..messages {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                while i >= sent_received.load(Ordering::Acquire) + window {
                    sent_progress.notified().await;
                }
                let now = base.elapsed().as_nanos();
                let frame = format!(
                    r#"{{"id":0,"signal":{{"to":"b{k}","description":{{"type":"TYPE_OFFER","sdp":"{i} {now} {padding}"}}}}}}"#
                );
                if a_sink.send(Message::text(frame)).await.is_err() {
                    break;
                }
            }
            a_sink
        });
        let receiver = tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(messages as usize);
            let mut expected = 0u64;
            let mut bad = 0u64;
            while expected < messages {
                let Some(Ok(message)) = b_stream.next().await else {
                    break;
                };
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let Some(sdp) = text.split("\"sdp\":\"").nth(1) else {
                    continue;
                };
                let mut parts = sdp.split(' ');
                let seq: u64 = parts
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                let sent: u128 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                if seq != expected {
                    bad += 1;
                }
                expected = seq.saturating_add(1);
                latencies.push(((base.elapsed().as_nanos() - sent) / 1000) as u64);
                received.fetch_add(1, Ordering::Release);
                progress.notify_one();
            }
            (latencies, bad)
        });
        tasks.push((sender, receiver));
    }
    let mut latencies_us = Vec::new();
    let mut lost_or_reordered = 0;
    let mut sinks = Vec::new();
    for (sender, receiver) in tasks {
        let (latencies, bad) = receiver.await.expect("receiver");
        latencies_us.extend(latencies);
        lost_or_reordered += bad;
        sinks.push(sender.await.expect("sender"));
    }
    let elapsed = started.elapsed();
    let server_cpu = match (cpu_before, cpu_time(server_pid)) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    for mut sink in sinks {
        let _ = sink.close().await;
    }
    latencies_us.sort_unstable();
    let expected_total = args.pairs as u64 * args.messages;
    Outcome {
        delivered: latencies_us.len() as u64,
        lost_or_reordered: lost_or_reordered
            + expected_total.saturating_sub(latencies_us.len() as u64),
        elapsed,
        latencies_us,
        server_cpu,
    }
}
