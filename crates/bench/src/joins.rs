//! Join storm: sessions connecting and joining rooms of K as fast as a
//! number of concurrent clients allows, every join's token verified (HS256
//! minted with an API key, or EdDSA issued by auth), presence fan-out to
//! the room included. Tokens are made before the clock starts.

use std::{net::IpAddr, time::Instant};

use futures_util::{StreamExt, stream};
use hdrhistogram::Histogram;
use switchboard_tests::http;

use crate::{
    load::{self, Ws},
    targets::{Kind, Server, ServerArgs},
};

/// How the joining clients' tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Signing {
    /// HS256 with the bench's API key (minted here, as a backend would).
    Hs256,
    /// EdDSA, issued by auth (the dev token endpoint of `switchboard all`).
    Eddsa,
}

#[derive(Debug, Clone, clap::Args)]
pub struct JoinArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Sessions that join.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Participants per room: each join is announced to the others.
    #[arg(long, default_value_t = 4)]
    pub room_size: usize,
    /// Clients connecting and joining at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Client source addresses 127.0.0.2 ..= 127.0.0.(1 + sources).
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    #[arg(long, value_delimiter = ',', default_value = "hs256,eddsa")]
    pub signing: Vec<Signing>,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

async fn tokens(
    server: &Server,
    signing: Signing,
    sessions: usize,
    room_size: usize,
) -> Vec<String> {
    let keys = server.keys.as_ref().expect("switchboard");
    let http_base = server
        .url
        .replacen("ws://", "http://", 1)
        .replace("/ws", "");
    let room = |i: usize| format!("join{}", i / room_size.max(1));
    match signing {
        Signing::Hs256 => (0..sessions)
            .map(|i| load::mint(keys, &format!("j{i}"), &room(i)))
            .collect(),
        Signing::Eddsa => {
            stream::iter(0..sessions)
                .map(|i| {
                    let (base, room) = (http_base.clone(), room(i));
                    async move {
                        let body = format!(r#"{{"identity":"j{i}","room":"{room}","name":"J"}}"#);
                        let (status, body) =
                            http::request(&base, "POST", "/v1/dev/token", &body).await;
                        assert_eq!(status, 200, "dev token: {body}");
                        let value: serde_json::Value = serde_json::from_str(&body).expect("json");
                        value["token"].as_str().expect("token").to_owned()
                    }
                })
                .buffered(32)
                .collect()
                .await
        }
    }
}

pub async fn run(args: JoinArgs) {
    println!(
        "# joins: {} sessions in rooms of {}, {} at once, servers pinned to CPU {}",
        args.sessions,
        args.room_size,
        args.concurrency,
        args.servers.pinning(),
    );
    let mut results = Vec::new();
    for &signing in &args.signing {
        let server = Server::start(Kind::Switchboard, &args.servers).await;
        let tokens = tokens(&server, signing, args.sessions, args.room_size).await;
        let cpu_before = server.cpu_time();
        let started = Instant::now();
        let sources = args.sources.max(1);
        let url = server.url.clone();
        // Each client: connect, join, record how long the join took; the
        // socket is kept so the room fills.
        let joined: Vec<(Ws, u64)> = stream::iter(tokens.into_iter().enumerate())
            .map(|(i, token)| {
                let url = url.clone();
                async move {
                    let source = IpAddr::from([127, 0, 0, 2 + (i % sources as usize) as u8]);
                    let mut ws = load::connect_from(&url, Some(source)).await;
                    let at = Instant::now();
                    load::join_with(&mut ws, &token).await;
                    (ws, at.elapsed().as_micros() as u64)
                }
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
        let elapsed = started.elapsed();
        let cpu = match (cpu_before, server.cpu_time()) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => Default::default(),
        };
        let mut latency = Histogram::<u64>::new_with_max(60_000_000, 3).expect("histogram");
        for (_, us) in &joined {
            latency.saturating_record(*us);
        }
        let rate = joined.len() as f64 / elapsed.as_secs_f64();
        let per_core = joined.len() as f64 / cpu.as_secs_f64().max(1e-9);
        println!(
            "{signing:?}: {} joins (connect + join) in {:.2}s = {rate:.0}/s; join latency p50 {} µs p99 {} µs max {} µs; server CPU {:.0} µs per join ({:.0} % of a core; {per_core:.0} joins per core-second)",
            joined.len(),
            elapsed.as_secs_f64(),
            latency.value_at_quantile(0.5),
            latency.value_at_quantile(0.99),
            latency.max(),
            cpu.as_secs_f64() * 1e6 / joined.len().max(1) as f64,
            cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        );
        results.push(serde_json::json!({
            "signing": format!("{signing:?}"), "sessions": joined.len(), "seconds": elapsed.as_secs_f64(),
            "joins_per_s": rate, "joins_per_server_core_s": per_core,
            "latency_us": { "p50": latency.value_at_quantile(0.5), "p99": latency.value_at_quantile(0.99), "max": latency.max() },
            "server_cpu_us_per_join": cpu.as_secs_f64() * 1e6 / joined.len().max(1) as f64,
        }));
        drop(joined);
        server.stop().await;
    }
    crate::write_results(
        args.json.as_deref(),
        serde_json::json!({ "results": results }),
    );
}
