//! Idle hold: many connections (joined sessions for switchboard), each
//! kept alive the way its protocol asks, and the server's memory per
//! connection; then one busy pair's latency while they are held.

use std::{net::IpAddr, time::Duration};

use futures_util::{SinkExt, StreamExt, stream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    load::{self, LoadArgs, Ws},
    targets::{Kind, Server, ServerArgs},
};

#[derive(Debug, Clone, clap::Args)]
pub struct HoldArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// The servers to compare, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "bare,switchboard")]
    pub compare: Vec<Kind>,
    /// Connections held (in pairs: rooms of two).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Client source addresses 127.0.0.2 ..= 127.0.0.(1 + sources).
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// Messages at a fixed rate through one busy pair while the rest are
    /// held (0: none).
    #[arg(long, default_value_t = 2_000)]
    pub busy_messages: u64,
    #[arg(long, default_value_t = 500)]
    pub busy_rate: u64,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Keeps one connection alive until `stop`: reads (and drops) what
/// arrives, sends the protocol's keepalive every `every`.
pub(crate) async fn keep(
    mut ws: Ws,
    keepalive: Option<Message>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            frame = ws.next() => if !matches!(frame, Some(Ok(_))) { return },
            _ = tick.tick() => {
                if let Some(k) = &keepalive && ws.send(k.clone()).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = ws.close(None).await;
}

pub async fn run(args: HoldArgs) {
    let pairs = args.connections / 2;
    println!(
        "# hold: {} connections in rooms of two, from {} source addresses, servers pinned to CPU {}",
        pairs * 2,
        args.sources,
        args.servers.pinning(),
    );
    let mut results = Vec::new();
    for &kind in &args.compare {
        let server = Server::start(kind, &args.servers).await;
        let before = server.rss_kib();
        let (stop_tx, stop) = watch::channel(false);
        let started = std::time::Instant::now();
        let sources = args.sources.max(1);
        let server_ref = &server;
        let kept: Vec<_> = stream::iter(0..pairs)
            .map(|k| async move {
                let source = IpAddr::from([127, 0, 0, 2 + (k % sources as usize) as u8]);
                server_ref.pair("h", k, Some(source)).await
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
        let opened = started.elapsed();
        let mut tasks = Vec::with_capacity(kept.len() * 2);
        for (a, b, _) in kept {
            for ws in [a, b] {
                tasks.push(tokio::spawn(keep(
                    ws,
                    server.keepalive(),
                    Duration::from_secs(10),
                    stop.clone(),
                )));
            }
        }
        let held = server.rss_kib();
        let per = (held.saturating_sub(before)) as f64 / (pairs * 2) as f64;
        println!(
            "{kind:<12} {} connections held in {:.1}s: RSS {before} → {held} KiB = {per:.1} KiB per connection",
            pairs * 2,
            opened.as_secs_f64()
        );
        let mut json = serde_json::json!({
            "server": kind.to_string(), "connections": pairs * 2,
            "open_seconds": opened.as_secs_f64(),
            "rss_before_kib": before, "rss_held_kib": held, "kib_per_connection": per,
        });
        if args.busy_messages > 0 {
            let busy = LoadArgs::busy_pair(
                args.servers.clone(),
                kind,
                args.busy_messages,
                args.busy_rate,
            );
            let outcome = load::run(&busy, &server).await;
            println!("{kind:<12} one busy pair while held: {outcome}");
            json["busy_pair"] = outcome.to_json();
        }
        results.push(json);
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        server.stop().await;
    }
    crate::write_results(
        args.json.as_deref(),
        serde_json::json!({ "results": results }),
    );
}
