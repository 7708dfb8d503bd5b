//! `switchboard-bench`: relays the same load through the full stack
//! (`switchboard all`: edge → gRPC → signal → gRPC → edge), a bare
//! WebSocket relay and other signaling servers (matchbox_server, the PeerJS
//! server), one after the other in each round of one run, each pinned the
//! same way, and prints each with its ratio to the first. See BENCHMARKS.md
//! for the commands and results.
#![forbid(unsafe_code)]

mod bare_relay;
mod hold;
mod hold_many;
mod joins;
mod load;
mod memory;
mod split;
mod storm;
mod targets;

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
    /// Idle connections held side by side: memory per connection, and one
    /// busy pair's latency meanwhile.
    Hold(hold::HoldArgs),
    /// Many idle sessions over several edges and generator processes.
    HoldMany(hold_many::HoldManyArgs),
    /// One generator process of `hold-many` (started by it).
    HoldClient(hold_many::HoldClientArgs),
    /// Join storm: joins per second with token verification.
    Joins(joins::JoinArgs),
    /// Reconnect storm: sessions lose their edge at once and resume
    /// through another.
    Storm(storm::StormArgs),
    /// One generator process of `storm` (started by it).
    StormClient(storm::StormClientArgs),
}

const API_KEY: &str = "bench";
const API_SECRET: &str = "bench-secret-0123456789-abcdefghijklmnop";
/// The split stack's edge credential (one of the API keys auth and signal
/// accept).
const EDGE_KEY: &str = "edge:edge-secret-0123456789-abcdefghijklmnop";

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
        Command::Hold(args) => hold::run(args).await,
        Command::Joins(args) => joins::run(args).await,
        Command::HoldMany(args) => hold_many::run(args).await,
        Command::HoldClient(args) => hold_many::client(args).await,
        Command::Storm(args) => storm::run(args).await,
        Command::StormClient(args) => storm::client(args).await,
    }
}

/// `switchboard all`'s arguments for a benchmark: ephemeral ports, and the
/// edge's limits.
pub(crate) fn stack_args() -> Vec<String> {
    let mut args: Vec<String> = [
        "--edge-listen",
        "127.0.0.1:0",
        "--auth-listen",
        "127.0.0.1:0",
        "--signal-listen",
        "127.0.0.1:0",
        "--health-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(edge_limit_args());
    args
}

/// No rate or connection limit of the edge in the way of the load.
pub(crate) fn edge_limit_args() -> Vec<String> {
    let big = u32::MAX.to_string();
    [
        "--messages-per-second",
        &big,
        "--message-burst",
        &big,
        "--max-connections",
        "100000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `switchboard all`'s environment for a benchmark: the bench's API key;
/// every load client comes from 127.0.0.1, so the per-address admission is
/// lifted (environment, so binaries from before it still run).
pub(crate) fn stack_env() -> Vec<(&'static str, String)> {
    let big = u32::MAX.to_string();
    vec![
        (
            "SWITCHBOARD_API_KEYS",
            format!("{API_KEY}:{API_SECRET},{EDGE_KEY}"),
        ),
        ("RUST_LOG", "warn".to_owned()),
        ("SWITCHBOARD_MAX_CONNECTIONS_PER_IP", "100000".to_owned()),
        ("SWITCHBOARD_NEW_CONNECTIONS_PER_IP_PER_SECOND", big.clone()),
        ("SWITCHBOARD_NEW_CONNECTIONS_PER_IP_BURST", big),
        ("SWITCHBOARD_MAX_SESSIONS", "100000".to_owned()),
    ]
}

/// `switchboard all` on ephemeral ports with the bench's settings; `extra`
/// adds arguments.
pub(crate) async fn start_stack(bin: &str, extra: &[&str]) -> Process {
    let mut args = vec!["all".to_owned()];
    args.extend(stack_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = stack_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Process::start(bin, &args, &env).await
}

/// Writes a scenario's figures as JSON to `path`, if one was given.
pub(crate) fn write_results(path: Option<&std::path::Path>, results: serde_json::Value) {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_vec_pretty(&results).expect("json"))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

async fn relay(args: load::LoadArgs) {
    let lost = load::compare(&args).await;
    // A benchmark never buys speed with lost messages: fail loudly (the CI
    // smoke run relies on it).
    if lost > 0 {
        eprintln!("{lost} messages lost or reordered");
        std::process::exit(1);
    }
}
