//! `switchboard-bench`: relays the same load through the full stack
//! (`switchboard all`: edge → gRPC → signal → gRPC → edge) and through a
//! bare WebSocket relay, interleaved in one run, and prints both with their
//! ratio. See BENCHMARKS.md for the commands and results.
#![forbid(unsafe_code)]

mod bare_relay;
mod load;
mod memory;

use std::time::Duration;

use clap::{Parser, Subcommand};
use switchboard_tests::process::Process;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the bare baseline relay (started by `relay` as a child).
    BareRelay {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Compare the full stack with the bare relay.
    Relay(load::LoadArgs),
    /// Memory per idle and per busy session (edge + signal + auth + Redis).
    Memory(memory::MemoryArgs),
}

const API_KEY: &str = "bench";
const API_SECRET: &str = "bench-secret-0123456789-abcdefghijklmnop";

#[tokio::main]
async fn main() {
    match Cli::parse().command {
        Command::BareRelay { listen } => {
            let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
            println!(
                "LISTEN bare ws://{}/ws",
                listener.local_addr().expect("addr")
            );
            println!("READY");
            bare_relay::run(listener).await;
        }
        Command::Relay(args) => relay(args).await,
        Command::Memory(args) => memory::run(args, API_KEY, API_SECRET).await,
    }
}

/// `switchboard all` on ephemeral ports, with the bench's API key and no
/// rate or connection limit in the way; `extra` adds arguments.
pub(crate) async fn start_stack(bin: &str, extra: &[&str]) -> Process {
    let big = u32::MAX.to_string();
    let mut args = vec![
        "all",
        "--edge-listen",
        "127.0.0.1:0",
        "--auth-listen",
        "127.0.0.1:0",
        "--signal-listen",
        "127.0.0.1:0",
        "--health-listen",
        "127.0.0.1:0",
        "--messages-per-second",
        &big,
        "--message-burst",
        &big,
        "--max-connections",
        "100000",
    ];
    args.extend_from_slice(extra);
    Process::start(
        bin,
        &args,
        &[
            ("SWITCHBOARD_API_KEYS", &format!("{API_KEY}:{API_SECRET}")),
            ("RUST_LOG", "warn"),
            // Every load client comes from 127.0.0.1: lift the per-address
            // admission (environment, so binaries from before it still run).
            ("SWITCHBOARD_MAX_CONNECTIONS_PER_IP", "100000"),
            ("SWITCHBOARD_NEW_CONNECTIONS_PER_IP_PER_SECOND", &big),
            ("SWITCHBOARD_NEW_CONNECTIONS_PER_IP_BURST", &big),
        ],
    )
    .await
}

async fn relay(args: load::LoadArgs) {
    let own = std::env::current_exe().expect("own path");
    let own = own.to_str().expect("utf8 path");
    let bare = Process::start(own, &["bare-relay"], &[]).await;
    let extra: Vec<&str> = args.stack_args.iter().map(String::as_str).collect();
    let stack = start_stack(&args.bin, &extra).await;
    let keys = switchboard_auth::ApiKey::new(API_KEY, API_SECRET).expect("api key");
    let bare_url = bare.url("bare").to_owned();
    let edge_url = format!("{}/ws", stack.url("edge").replacen("http://", "ws://", 1));

    println!(
        "# relay: {} pairs, {} messages of {} bytes per pair, window {}, {} rounds",
        args.pairs, args.messages, args.size, args.window, args.rounds
    );
    let mut ratios = Vec::new();
    let mut lost = 0;
    for round in 1..=args.rounds {
        let baseline = load::run(&args, &bare_url, None, bare.child.id()).await;
        println!("round {round} bare-relay  {baseline}");
        let full = load::run(&args, &edge_url, Some(&keys), stack.child.id()).await;
        println!("round {round} switchboard {full}");
        lost += baseline.lost_or_reordered() + full.lost_or_reordered();
        ratios.push(full.rate() / baseline.rate());
        println!(
            "round {round} ratio switchboard/bare msg/s = {:.2}",
            full.rate() / baseline.rate()
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio switchboard/bare msg/s = {:.2}",
        ratios[ratios.len() / 2]
    );
    let _ = stack.terminate(Duration::from_secs(20)).await;
    let _ = bare.terminate(Duration::from_secs(5)).await;
    // A benchmark never buys speed with lost messages: fail loudly (the CI
    // smoke run relies on it).
    if lost > 0 {
        eprintln!("{lost} messages lost or reordered");
        std::process::exit(1);
    }
}
