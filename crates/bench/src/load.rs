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
use hdrhistogram::Histogram;
use switchboard_auth::{ApiKey, TokenRequest};
use switchboard_proto::pb;
use tokio::{net::TcpStream, sync::Notify};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::targets::{Kind, Server, ServerArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// The servers to compare, in this order in every round.
    #[arg(long, value_delimiter = ',', default_value = "bare,switchboard")]
    pub compare: Vec<Kind>,
    #[arg(long, default_value_t = 200)]
    pub pairs: usize,
    /// Messages per pair.
    #[arg(long, default_value_t = 2_000)]
    pub messages: u64,
    /// Bytes of SDP per message (a browser-like SDP, `\r\n` line ends).
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
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

impl LoadArgs {
    /// One pair at `rate` msg/s, 1 KiB offers: a busy pair's latency while
    /// something else is going on.
    pub fn busy_pair(servers: ServerArgs, kind: Kind, messages: u64, rate: u64) -> Self {
        Self {
            servers,
            compare: vec![kind],
            pairs: 1,
            messages,
            size: 1024,
            window: 16,
            rounds: 1,
            rate: Some(rate),
            json: None,
        }
    }
}

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One scenario's figures.
pub struct Outcome {
    delivered: u64,
    lost_or_reordered: u64,
    elapsed: Duration,
    /// One-way latency, µs.
    latency: Histogram<u64>,
    server_cpu: Option<Duration>,
    /// Of `server_cpu`, what the stack's Redis spent.
    redis_cpu: Option<Duration>,
}

impl Outcome {
    /// Messages that did not arrive, or not in order.
    pub fn lost_or_reordered(&self) -> u64 {
        self.lost_or_reordered
    }

    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at quantile `q`, µs.
    pub fn latency(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }

    /// Server CPU per delivered message, µs.
    pub fn cpu_per_message(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.delivered.max(1) as f64)
    }

    /// Messages per second of server CPU: what one core relays when the
    /// server is the bottleneck, whether or not the generator kept it busy.
    pub fn per_core_rate(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| self.delivered as f64 / cpu.as_secs_f64().max(1e-9))
    }

    /// Server CPU over the run, as a share of one core.
    pub fn cpu_share(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| cpu.as_secs_f64() / self.elapsed.as_secs_f64())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "delivered": self.delivered,
            "lost_or_reordered": self.lost_or_reordered,
            "seconds": self.elapsed.as_secs_f64(),
            "msg_per_s": self.rate(),
            "latency_us": {
                "p50": self.latency(0.5), "p99": self.latency(0.99),
                "p999": self.latency(0.999), "max": self.latency.max(),
            },
            "server_cpu_us_per_msg": self.cpu_per_message(),
            "server_cpu_share": self.cpu_share(),
            "msg_per_server_core_s": self.per_core_rate(),
            "redis_cpu_us_per_msg": self.redis_cpu
                .map(|cpu| cpu.as_secs_f64() * 1e6 / self.delivered.max(1) as f64),
        })
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
            self.latency(0.5),
            self.latency(0.99),
            self.latency(0.999),
            self.latency.max(),
        )?;
        if let (Some(per), Some(share), Some(per_core)) = (
            self.cpu_per_message(),
            self.cpu_share(),
            self.per_core_rate(),
        ) {
            write!(
                f,
                ", server CPU {per:.1} µs/msg ({:.0} % of a core; {per_core:.0} msg per core-second)",
                share * 100.0
            )?;
            if let Some(redis) = self.redis_cpu {
                write!(
                    f,
                    ", of which Redis {:.1} µs/msg",
                    redis.as_secs_f64() * 1e6 / self.delivered.max(1) as f64
                )?;
            }
        }
        Ok(())
    }
}

/// User+system CPU time of a process, from /proc.
pub(crate) fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // CLK_TCK is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

pub(crate) async fn connect(url: &str) -> Ws {
    connect_from(url, None).await
}

/// Connects from `source` (a 127.0.0.x address: many sources keep
/// ephemeral ports from running out), with the server's own origin.
pub(crate) async fn connect_from(url: &str, source: Option<std::net::IpAddr>) -> Ws {
    let mut request = url.into_client_request().expect("request");
    let authority = request.uri().authority().expect("authority").to_string();
    request.headers_mut().insert(
        "origin",
        HeaderValue::from_str(&format!("http://{authority}")).expect("origin"),
    );
    let addr: std::net::SocketAddr = tokio::net::lookup_host(&authority)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(source) = source {
        socket.bind((source, 0).into()).expect("bind source");
    }
    let stream = socket.connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("websocket handshake")
        .0
}

/// An HS256 access token for `identity` in `room`, minted with the
/// bench's API key as a backend would.
pub(crate) fn mint(api: &ApiKey, identity: &str, room: &str) -> String {
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
    api.mint(&claims).expect("token")
}

pub(crate) async fn join(ws: &mut Ws, api: &ApiKey, identity: &str, room: &str) {
    join_with(ws, &mint(api, identity, room)).await;
}

/// Joins with `token`; waits for `joined`.
pub(crate) async fn join_with(ws: &mut Ws, token: &str) {
    ws.send(Message::text(format!(
        r#"{{"id":1,"join":{{"token":"{token}"}}}}"#
    )))
    .await
    .expect("send");
    while let Some(Ok(message)) = ws.next().await {
        let text = message.to_text().unwrap_or_default();
        if text.contains("\"joined\"") {
            return;
        }
        assert!(!text.contains("\"error\""), "join refused: {text}");
    }
    panic!("join failed: connection closed");
}

/// A browser-like SDP of about `size` bytes, JSON-escaped (`\\r\\n` line
/// ends, as a browser's offer travels), after a first line that the
/// receiver reads the message's number and send time from.
fn sdp_body(size: usize) -> String {
    const LINES: [&str; 8] = [
        "a=candidate:1467250027 1 udp 2122260223 192.168.1.20 46243 typ host generation 0",
        "a=ice-ufrag:F7gI",
        "a=ice-pwd:x9cml/YzichV2+XlhiMu8g",
        "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102",
    ];
    let mut body = String::with_capacity(size + 128);
    let mut i = 0;
    while body.len() < size {
        body.push_str(LINES[i % LINES.len()]);
        body.push_str("\\r\\n");
        i += 1;
    }
    body
}

/// Reads `(message number, send time ns)` from a relayed frame: the SDP's
/// first line is `v=0`, the second `o=- <number> <time> …`.
fn stamp(text: &str) -> Option<(u64, u128)> {
    let rest = text.split("\"sdp\":\"v=0\\r\\no=- ").nth(1)?;
    let mut parts = rest.splitn(3, ' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Runs the load against `server`.
pub async fn run(args: &LoadArgs, server: &Server) -> Outcome {
    let base = Instant::now();
    let mut pairs = Vec::with_capacity(args.pairs);
    for k in 0..args.pairs {
        let (mut a, mut b, to) = server.pair("", k, None).await;
        // Keep both sockets alive against keepalive timeouts during a run.
        if let Some(keepalive) = server.keepalive() {
            let _ = a.send(keepalive.clone()).await;
            let _ = b.send(keepalive).await;
        }
        pairs.push((a, b, to));
    }

    let cpu_before = server.cpu_time();
    let redis_before = server.redis_cpu_time();
    let started = Instant::now();
    let body = sdp_body(args.size);
    let mut tasks = Vec::new();
    for (k, (a, b, to)) in pairs.into_iter().enumerate() {
        let received = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Notify::new());
        let (mut a_sink, mut a_stream) = a.split();
        let (_b_sink, mut b_stream) = b.split();
        // Drain the sender's inbound side (presence, pongs).
        tokio::spawn(async move { while let Some(Ok(_)) = a_stream.next().await {} });
        let (messages, window) = (args.messages, args.window);
        let (sent_received, sent_progress) = (received.clone(), progress.clone());
        // The frame around a marker the sender replaces with its stamp.
        let template = server.frame(
            &to,
            &format!("v=0\\r\\no=- {{STAMP}} 2 IN IP4 127.0.0.1\\r\\n{body}"),
        );
        let (head, tail) = template
            .split_once("{STAMP}")
            .map(|(h, t)| (h.to_owned(), t.to_owned()))
            .expect("marker");
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
                let frame = format!("{head}{i} {now}{tail}");
                if a_sink.send(Message::text(frame)).await.is_err() {
                    break;
                }
            }
            a_sink
        });
        let receiver = tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_max(60_000_000, 3).expect("histogram");
            let mut expected = 0u64;
            let mut bad = 0u64;
            while expected < messages {
                let Some(Ok(message)) = b_stream.next().await else {
                    break;
                };
                let Some((seq, sent)) = message.to_text().ok().and_then(stamp) else {
                    continue;
                };
                if seq != expected {
                    bad += 1;
                }
                expected = seq.saturating_add(1);
                latency.saturating_record(((base.elapsed().as_nanos() - sent) / 1000) as u64);
                received.fetch_add(1, Ordering::Release);
                progress.notify_one();
            }
            (latency, bad)
        });
        tasks.push((sender, receiver));
    }
    let mut latency = Histogram::<u64>::new_with_max(60_000_000, 3).expect("histogram");
    let mut lost_or_reordered = 0;
    let mut sinks = Vec::new();
    for (sender, receiver) in tasks {
        let (pair_latency, bad) = receiver.await.expect("receiver");
        latency.add(pair_latency).expect("same histogram bounds");
        lost_or_reordered += bad;
        sinks.push(sender.await.expect("sender"));
    }
    let elapsed = started.elapsed();
    let used =
        |before: Option<Duration>, after: Option<Duration>| Some(after?.saturating_sub(before?));
    let server_cpu = used(cpu_before, server.cpu_time());
    let redis_cpu = used(redis_before, server.redis_cpu_time());
    for mut sink in sinks {
        let _ = sink.close().await;
    }
    let expected_total = args.pairs as u64 * args.messages;
    Outcome {
        delivered: latency.len(),
        lost_or_reordered: lost_or_reordered + expected_total.saturating_sub(latency.len()),
        elapsed,
        latency,
        server_cpu,
        redis_cpu,
    }
}

/// Every server in `args.compare`, started fresh for each round, one after
/// the other; ratios to the first (the baseline).
pub async fn compare(args: &LoadArgs) -> u64 {
    println!(
        "# relay: {} pairs, {} messages of {} bytes per pair, window {}, rate {}, {} rounds, servers pinned to CPU {}",
        args.pairs,
        args.messages,
        args.size,
        args.window,
        args.rate
            .map_or("saturation".to_owned(), |r| format!("{r} msg/s")),
        args.rounds,
        args.servers.pinning(),
    );
    let mut lost = 0;
    let mut results = Vec::new();
    for round in 1..=args.rounds {
        let mut first: Option<f64> = None;
        for &kind in &args.compare {
            let server = Server::start(kind, &args.servers).await;
            let outcome = run(args, &server).await;
            server.stop().await;
            let ratio = outcome.rate() / *first.get_or_insert(outcome.rate());
            println!(
                "round {round} {kind:<12} {outcome}, ratio to {} {ratio:.2}",
                args.compare[0]
            );
            lost += outcome.lost_or_reordered();
            let mut json = outcome.to_json();
            json["server"] = kind.to_string().into();
            json["round"] = round.into();
            json["ratio_to_first"] = ratio.into();
            results.push(json);
        }
    }
    crate::write_results(
        args.json.as_deref(),
        serde_json::json!({
            "pairs": args.pairs, "messages": args.messages, "size": args.size,
            "window": args.window, "rate": args.rate, "server_cpu": args.servers.server_cpu,
            "results": results,
        }),
    );
    lost
}
