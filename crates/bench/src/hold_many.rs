//! Many idle sessions on one box: the stack as separate processes with
//! several edges (each process may hold at most 20,000 descriptors here),
//! loaded by as many generator processes (`hold-client`, one per edge),
//! each from its own range of 127.0.x.y source addresses. Reports the
//! memory per session summed over every server process, and one busy
//! pair's latency while they are held.

use std::{net::IpAddr, process::Stdio, time::Duration};

use futures_util::{StreamExt, stream};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
    sync::watch,
};

use crate::{
    hold::keep,
    load::{self, LoadArgs},
    split::SplitStack,
    targets::{Kind, Server, ServerArgs},
};

#[derive(Debug, Clone, clap::Args)]
pub struct HoldManyArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Sessions held in all (rooms of two), spread evenly over the edges.
    #[arg(long, default_value_t = 100_000)]
    pub sessions: usize,
    /// Edge processes (and generator processes, one per edge).
    #[arg(long, default_value_t = 6)]
    pub edges: usize,
    /// Messages at a fixed rate through one busy pair while they are held.
    #[arg(long, default_value_t = 2_000)]
    pub busy_messages: u64,
    #[arg(long, default_value_t = 500)]
    pub busy_rate: u64,
    /// How long opening every session may take.
    #[arg(long, default_value_t = 900)]
    pub deadline_seconds: u64,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One generator process's share (started by `hold-many`).
#[derive(Debug, Clone, clap::Args)]
pub struct HoldClientArgs {
    /// The edge's WebSocket URL.
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub sessions: usize,
    /// Identities and rooms are named after this generator.
    #[arg(long)]
    pub generator: u8,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// Holds `sessions` joined sessions until stdin closes; prints `HELD n`
/// once all are joined.
pub async fn client(args: HoldClientArgs) {
    let keys = switchboard_auth::ApiKey::new(crate::API_KEY, crate::API_SECRET).expect("api key");
    let (stop_tx, stop) = watch::channel(false);
    let g = args.generator;
    let tasks: Vec<_> = stream::iter(0..args.sessions)
        .map(|i| {
            let (keys, url, stop) = (&keys, args.url.clone(), stop.clone());
            async move {
                // 127.0.(1 + g).(2 ..= 251): 250 sources per generator.
                let source = IpAddr::from([127, 0, 1 + g, 2 + (i % 250) as u8]);
                let mut ws = load::connect_from(&url, Some(source)).await;
                let room = format!("g{g}r{}", i / 2);
                load::join(&mut ws, keys, &format!("g{g}s{i}"), &room).await;
                // Keep it alive from now on: opening the rest takes longer
                // than the keepalive timeout. (The keeper's handle, not a
                // future to await here.)
                let keeper = tokio::spawn(keep(
                    ws,
                    Some(tokio_tungstenite::tungstenite::Message::text(
                        r#"{"id":0,"ping":{}}"#,
                    )),
                    Duration::from_secs(15),
                    stop,
                ));
                (i, keeper)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    println!("HELD {}", tasks.len());
    // Until the parent lets go.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    let _ = stop_tx.send(true);
    for (_, keeper) in tasks {
        let _ = keeper.await;
    }
}

pub async fn run(args: HoldManyArgs) {
    let edges = args.edges.max(1);
    let per_edge = (args.sessions / edges) & !1;
    println!(
        "# hold-many: {} sessions over {edges} edges (separate processes), {edges} generator processes, servers pinned to CPU {}",
        per_edge * edges,
        args.servers.pinning()
    );
    let stack = SplitStack::start(&args.servers, 1, edges, &[]).await;
    let urls: Vec<String> = (0..edges).map(|i| stack.ws_url(i)).collect();
    let server = Server::from_split(Kind::Split, stack, &args.servers);
    let before = server.rss_kib();
    let own = std::env::current_exe().expect("own path");
    let started = std::time::Instant::now();
    let mut generators = Vec::new();
    for (g, url) in urls.iter().enumerate() {
        let mut child = Command::new(&own)
            .args([
                "hold-client",
                "--url",
                url,
                "--sessions",
                &per_edge.to_string(),
                "--generator",
                &g.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start a generator");
        let stdout = child.stdout.take().expect("stdout");
        generators.push((child, BufReader::new(stdout).lines()));
    }
    let mut held = 0;
    for (_, lines) in &mut generators {
        let line = tokio::time::timeout(
            Duration::from_secs(args.deadline_seconds),
            lines.next_line(),
        )
        .await
        .expect("a generator held its sessions in time")
        .expect("read")
        .expect("a generator exited before holding its sessions");
        held += line
            .strip_prefix("HELD ")
            .and_then(|n| n.parse::<usize>().ok())
            .expect("HELD n");
    }
    let opened = started.elapsed();
    let after = server.rss_kib();
    let per = after.saturating_sub(before) as f64 / held.max(1) as f64;
    println!(
        "{held} sessions held in {:.1}s: RSS of every server process {before} → {after} KiB = {per:.1} KiB per session",
        opened.as_secs_f64()
    );
    let mut json = serde_json::json!({
        "sessions": held, "edges": edges, "open_seconds": opened.as_secs_f64(),
        "rss_before_kib": before, "rss_held_kib": after, "kib_per_session": per,
    });
    if args.busy_messages > 0 {
        let busy = LoadArgs::busy_pair(
            args.servers.clone(),
            Kind::Split,
            args.busy_messages,
            args.busy_rate,
        );
        let outcome = load::run(&busy, &server).await;
        println!("one busy pair while held: {outcome}");
        json["busy_pair"] = outcome.to_json();
    }
    crate::write_results(args.json.as_deref(), json);
    // Closing their stdin lets the generators go.
    for (mut child, _) in generators {
        drop(child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    }
    server.stop().await;
}
