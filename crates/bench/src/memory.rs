//! Memory per session: idle joined sessions, then busy ones (each holding
//! offers it has not acknowledged), then the same after the clients
//! acknowledge them (`ack` on a Ping). Measures the `switchboard all`
//! process (edge + signal + auth: VmRSS) and Redis (`used_memory`), with
//! the state in a Redis started here.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_auth::ApiKey;
use switchboard_tests::redis_server::{RedisServer, command};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    hold::rss_kib,
    load::{Ws, connect, join},
};

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// The switchboard binary to measure.
    #[arg(long, default_value = "target/release/switchboard")]
    pub bin: String,
    /// Sessions (in rooms of two).
    #[arg(long, default_value_t = 2_000)]
    pub sessions: usize,
    /// Offers each busy session receives and does not acknowledge.
    #[arg(long, default_value_t = 100)]
    pub offers: usize,
    /// Bytes of SDP per offer.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
}

async fn redis_kib(port: u16) -> u64 {
    let info = command(port, "INFO memory").await.unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |b| b / 1024)
}

/// The highest `"seq":"N"` in a frame.
fn seq_of(text: &str) -> u64 {
    text.split("\"seq\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next()?.parse().ok())
        .unwrap_or(0)
}

/// Reads until a frame contains `needle`; returns the highest seq seen.
async fn read_until(ws: &mut Ws, needle: &str, mut last: u64) -> u64 {
    while let Some(Ok(message)) = ws.next().await {
        let text = message.to_text().unwrap_or_default();
        last = last.max(seq_of(text));
        if text.contains(needle) {
            return last;
        }
    }
    panic!("connection closed before {needle}");
}

struct Sample {
    rss: u64,
    redis: u64,
}

pub async fn run(args: MemoryArgs, api_key: &str, api_secret: &str) {
    let redis = RedisServer::start(false).await;
    let redis_url = redis.url();
    let stack = crate::start_stack(&args.bin, &["--redis", &redis_url]).await;
    let pid = stack.child.id().expect("pid");
    let keys = ApiKey::new(api_key, api_secret).expect("api key");
    let url = format!("{}/ws", stack.url("edge").replacen("http://", "ws://", 1));
    let sample = || async {
        Sample {
            rss: rss_kib(pid),
            redis: redis_kib(redis.port).await,
        }
    };
    let base = sample().await;

    let pairs = args.sessions / 2;
    let mut clients = Vec::with_capacity(pairs);
    for k in 0..pairs {
        let (mut a, mut b) = (connect(&url).await, connect(&url).await);
        join(&mut a, &keys, &format!("a{k}"), &format!("mem{k}")).await;
        join(&mut b, &keys, &format!("b{k}"), &format!("mem{k}")).await;
        clients.push((a, b, 0u64));
    }
    let idle = sample().await;

    let padding = "x".repeat(args.size);
    for (k, (a, b, last)) in clients.iter_mut().enumerate() {
        for i in 0..args.offers {
            let frame = format!(
                r#"{{"id":0,"signal":{{"to":"b{k}","description":{{"type":"TYPE_OFFER","sdp":"{i} {padding}"}}}}}}"#
            );
            a.send(Message::text(frame)).await.expect("send");
        }
        let tail = format!("\"sdp\":\"{} ", args.offers - 1);
        *last = read_until(b, &tail, *last).await;
    }
    let busy = sample().await;

    for (_, b, last) in &mut clients {
        let ping = format!(r#"{{"id":0,"ack":"{last}","ping":{{"nonce":"1"}}}}"#);
        b.send(Message::text(ping)).await.expect("send");
        // Ordered after the ack on the session's path.
        b.send(Message::text(r#"{"id":7,"updatePresence":{}}"#))
            .await
            .expect("send");
        *last = read_until(b, r#""requestId":7"#, *last).await;
    }
    let acked = sample().await;

    let (n, busy_n) = ((pairs * 2) as f64, pairs as f64);
    let delta = |from: u64, to: u64| to as f64 - from as f64;
    // Idle: over every session. Busy: what a receiving session adds over
    // an idle one (half the sessions receive).
    let idle_per = (
        delta(base.rss, idle.rss) / n,
        delta(base.redis, idle.redis) / n,
    );
    let busy_per = |s: &Sample| {
        (
            idle_per.0 + delta(idle.rss, s.rss) / busy_n,
            idle_per.1 + delta(idle.redis, s.redis) / busy_n,
        )
    };
    println!(
        "# memory: {} sessions in rooms of two; one of each pair receives {} offers of {} bytes ({})",
        pairs * 2,
        args.offers,
        args.size,
        args.bin
    );
    for (what, (rss, redis)) in [
        ("idle session", idle_per),
        ("busy session (unacknowledged)", busy_per(&busy)),
        ("busy session after ack", busy_per(&acked)),
    ] {
        println!(
            "{what:32} switchboard all {rss:8.1} KiB   redis {redis:8.1} KiB   total {:8.1} KiB",
            rss + redis
        );
    }
    println!(
        "(absolute: switchboard all RSS {} → {} → {} → {} KiB; redis {} → {} → {} → {} KiB)",
        base.rss, idle.rss, busy.rss, acked.rss, base.redis, idle.redis, busy.redis, acked.redis
    );
    drop(clients);
    let _ = stack.terminate(Duration::from_secs(20)).await;
}
