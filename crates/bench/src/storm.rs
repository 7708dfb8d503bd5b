//! Reconnect storm: sessions joined through one edge lose it at once
//! (SIGKILL) and resume through the other. Separate processes: one auth,
//! one signal (the sessions live there and outlive the edge), two edges.
//! Reports the time from the kill until each session has resumed, and
//! checks that nothing is lost or duplicated across it: every receiver
//! gets its sender's messages from before the kill and after the resume,
//! each exactly once, in order.

use std::{net::IpAddr, time::Instant};

use futures_util::{SinkExt, StreamExt, stream};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    load::{self, Ws},
    split::SplitStack,
    targets::ServerArgs,
};

#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Sessions on the edge that is killed (in rooms of two), 10,000 per
    /// generator process.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Messages each sender sends before the kill, and again after.
    #[arg(long, default_value_t = 2)]
    pub messages: u64,
    /// Clients connecting (and, after the kill, resuming) at once.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One joined client and what it needs to resume.
struct Client {
    ws: Ws,
    identity: String,
    token: String,
    session: String,
    resume_token: String,
    /// The highest session seq processed.
    last_seq: u64,
    /// Messages received from its pair (receivers only), by number.
    got: Vec<u64>,
    source: IpAddr,
}

fn field<'a>(value: &'a serde_json::Value, path: &[&str]) -> &'a serde_json::Value {
    path.iter().fold(value, |v, k| &v[*k])
}

fn seq_of(value: &serde_json::Value) -> u64 {
    value["seq"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The number a relayed offer carries (`n <i>` in its SDP).
fn number_of(value: &serde_json::Value) -> Option<u64> {
    field(value, &["signal", "description", "sdp"])
        .as_str()?
        .strip_prefix("n ")?
        .parse()
        .ok()
}

impl Client {
    async fn join(url: &str, identity: String, token: String, source: IpAddr) -> Self {
        let mut ws = load::connect_from(url, Some(source)).await;
        ws.send(Message::text(format!(
            r#"{{"id":1,"join":{{"token":"{token}"}}}}"#
        )))
        .await
        .expect("send join");
        loop {
            let frame = ws.next().await.expect("open").expect("frame");
            let value: serde_json::Value =
                serde_json::from_str(frame.to_text().unwrap_or("{}")).unwrap_or_default();
            if value.get("joined").is_some() {
                return Self {
                    ws,
                    identity,
                    token,
                    session: field(&value, &["joined", "sessionId"])
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    resume_token: field(&value, &["joined", "resumeToken"])
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    last_seq: seq_of(&value),
                    got: Vec::new(),
                    source,
                };
            }
            assert!(value.get("error").is_none(), "join refused: {value}");
        }
    }

    /// Reads until `count` numbered offers arrived in total (receivers), or
    /// until nothing is pending (senders: just processes what is there).
    async fn receive_until(&mut self, count: usize) {
        while self.got.len() < count {
            let frame = self.ws.next().await.expect("open").expect("frame");
            self.process(frame.to_text().unwrap_or("{}"));
        }
    }

    fn process(&mut self, text: &str) {
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let seq = seq_of(&value);
        if seq > 0 {
            self.last_seq = self.last_seq.max(seq);
        }
        if let Some(n) = number_of(&value) {
            self.got.push(n);
        }
    }

    /// Reconnects through `url` and resumes; returns when `resumed` came.
    async fn resume(&mut self, url: &str) {
        let mut ws = load::connect_from(url, Some(self.source)).await;
        ws.send(Message::text(format!(
            r#"{{"id":2,"resume":{{"sessionId":"{}","resumeToken":"{}","lastSeq":"{}","token":"{}"}}}}"#,
            self.session, self.resume_token, self.last_seq, self.token
        )))
        .await
        .expect("send resume");
        loop {
            let frame = ws.next().await.expect("open").expect("frame");
            let text = frame.to_text().unwrap_or("{}").to_owned();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(resumed) = value.get("resumed") {
                if let Some(token) = resumed["resumeToken"].as_str() {
                    self.resume_token = token.to_owned();
                }
                self.ws = ws;
                return;
            }
            assert!(value.get("error").is_none(), "resume refused: {value}");
            // A replayed message before `resumed` cannot happen (it comes
            // after), but count it if it does.
            self.process(&text);
        }
    }

    async fn send_numbered(&mut self, to: &str, from: u64, count: u64) {
        for n in from..from + count {
            let frame = format!(
                r#"{{"id":0,"signal":{{"to":"{to}","description":{{"type":"TYPE_OFFER","sdp":"n {n}"}}}}}}"#
            );
            self.ws.send(Message::text(frame)).await.expect("send");
        }
    }
}

/// One generator process of the storm (started by `storm`): its share of
/// the sessions, joined through `url_a`; resumed through `url_b` when told.
#[derive(Debug, Clone, clap::Args)]
pub struct StormClientArgs {
    #[arg(long)]
    pub url_a: String,
    #[arg(long)]
    pub url_b: String,
    /// Sessions of this generator (in rooms of two).
    #[arg(long)]
    pub sessions: usize,
    /// Identities, rooms and source addresses (127.0.(20 + g).x) are named
    /// after this generator.
    #[arg(long)]
    pub generator: u8,
    #[arg(long, default_value_t = 2)]
    pub messages: u64,
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
}

/// Joins, exchanges numbered offers, prints `READY`; on a `GO` line (the
/// edge was just killed) resumes every session through the other edge,
/// exchanges more, and prints `RESULT {json}`: each session's time to
/// resume from `GO`, and how many receivers lost, duplicated or reordered
/// anything.
pub async fn client(args: StormClientArgs) {
    let keys = switchboard_auth::ApiKey::new(crate::API_KEY, crate::API_SECRET).expect("api key");
    let (g, pairs, m, concurrency) = (
        args.generator,
        args.sessions / 2,
        args.messages,
        args.concurrency.max(1),
    );
    let mut clients: Vec<(Client, Client)> = stream::iter(0..pairs)
        .map(|k| {
            let (keys, url) = (&keys, args.url_a.clone());
            async move {
                let source = IpAddr::from([127, 0, 20 + g, 2 + (k % 250) as u8]);
                let room = format!("storm{g}-{k}");
                let (a, b) = (format!("g{g}a{k}"), format!("g{g}b{k}"));
                let a = Client::join(&url, a.clone(), load::mint(keys, &a, &room), source).await;
                let b = Client::join(&url, b.clone(), load::mint(keys, &b, &room), source).await;
                (a, b)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    // Numbered offers before the kill, each received.
    stream::iter(clients.iter_mut())
        .for_each_concurrent(concurrency, |(a, b)| async move {
            a.send_numbered(&b.identity, 0, m).await;
            b.receive_until(m as usize).await;
        })
        .await;
    println!("READY");
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let go = stdin.next_line().await.ok().flatten();
    assert_eq!(go.as_deref(), Some("GO"), "told to go");
    let killed_at = Instant::now();
    let resumed: Vec<u64> = stream::iter(clients.iter_mut().flat_map(|(a, b)| [a, b]))
        .map(|client| {
            let url = args.url_b.clone();
            async move {
                client.resume(&url).await;
                killed_at.elapsed().as_micros() as u64
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    // After the resume: more numbered offers; every receiver must hold
    // 0..2m exactly once, in order.
    stream::iter(clients.iter_mut())
        .for_each_concurrent(concurrency, |(a, b)| async move {
            a.send_numbered(&b.identity, m, m).await;
            b.receive_until(2 * m as usize).await;
        })
        .await;
    let expected: Vec<u64> = (0..2 * m).collect();
    let bad = clients.iter().filter(|(_, b)| b.got != expected).count();
    println!(
        "RESULT {}",
        serde_json::json!({ "resumed_us": resumed, "bad": bad })
    );
}

pub async fn run(args: StormArgs) {
    // One process holds at most ≈ 19,900 sockets here: 10,000 sessions
    // (and their reconnections) per generator process.
    const PER_GENERATOR: usize = 10_000;
    let generators = args.sessions.div_ceil(PER_GENERATOR).max(1);
    let per = (args.sessions / generators) & !1;
    // An edge process holds at most ≈ 19,900 sockets too: generator g
    // joins through edge g and resumes through edge generators + g; every
    // one of the first edges is killed at once.
    let stack = SplitStack::start(&args.servers, 1, 2 * generators, &[]).await;
    println!(
        "# storm: {} sessions (rooms of two, {generators} generator processes) on {generators} edge(s), all SIGKILLed at once, resume through {generators} other(s); servers pinned to CPU {}",
        per * generators,
        args.servers.pinning()
    );
    let own = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let mut children = Vec::new();
    for g in 0..generators {
        let (doomed, survivor) = (stack.ws_url(g), stack.ws_url(generators + g));
        let mut child = tokio::process::Command::new(&own)
            .args([
                "storm-client",
                "--url-a",
                &doomed,
                "--url-b",
                &survivor,
                "--sessions",
                &per.to_string(),
                "--generator",
                &g.to_string(),
                "--messages",
                &args.messages.to_string(),
                "--concurrency",
                &args.concurrency.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start a storm generator");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        children.push((child, stdin, tokio::io::BufReader::new(stdout).lines()));
    }
    for (_, _, lines) in &mut children {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("a generator exited early");
        assert_eq!(line, "READY");
    }
    println!(
        "joined {} sessions in {:.1}s",
        per * generators,
        started.elapsed().as_secs_f64()
    );

    // The storm.
    let SplitStack {
        auth,
        signals,
        edges,
    } = stack;
    let mut edges = edges.into_iter();
    for edge in edges.by_ref().take(generators) {
        edge.kill9().await;
    }
    for (_, stdin, _) in &mut children {
        stdin.write_all(b"GO\n").await.expect("tell a generator");
        stdin.flush().await.expect("tell a generator");
    }
    let mut latency = Histogram::<u64>::new_with_max(600_000_000, 3).expect("histogram");
    let mut bad = 0;
    for (mut child, _, mut lines) in children {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("a generator exited early");
        let result: serde_json::Value =
            serde_json::from_str(line.strip_prefix("RESULT ").expect("RESULT")).expect("json");
        for us in result["resumed_us"].as_array().into_iter().flatten() {
            latency.saturating_record(us.as_u64().unwrap_or(u64::MAX));
        }
        bad += result["bad"].as_u64().unwrap_or(u64::MAX);
        let _ = child.wait().await;
    }
    let resumed_n = latency.len();
    let m = args.messages;
    println!(
        "{resumed_n} sessions resumed after SIGKILL of their edge: 50 % in {:.0} ms, 99 % in {:.0} ms, all in {:.0} ms; receivers with a lost, duplicated or reordered message: {bad}",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
    );
    crate::write_results(
        args.json.as_deref(),
        serde_json::json!({
            "sessions": resumed_n,
            "generators": generators,
            "resume_ms": {
                "p50": latency.value_at_quantile(0.5) as f64 / 1000.0,
                "p99": latency.value_at_quantile(0.99) as f64 / 1000.0,
                "max": latency.max() as f64 / 1000.0,
            },
            "receivers_with_errors": bad,
            "messages_per_sender": 2 * m,
        }),
    );
    // The rest stop with the bench (their children are killed on drop).
    drop((edges, signals, auth));
    if bad > 0 {
        eprintln!("{bad} receivers lost, duplicated or reordered a message");
        std::process::exit(1);
    }
}
