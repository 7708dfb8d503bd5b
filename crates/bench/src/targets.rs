//! The servers a benchmark compares, each started fresh, pinned the same
//! way, and spoken to in its own protocol by the same load generator:
//! the bare relay (the ceiling), matchbox_server, the PeerJS server and
//! `switchboard all`.

use std::{fmt, net::IpAddr, time::Duration};

use futures_util::StreamExt;
use switchboard_auth::ApiKey;
use switchboard_tests::{process::Process, wait::wait_until};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    hold::rss_kib,
    load::{Ws, connect_from, cpu_time, join},
    split::{SplitStack, pinned},
};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// This crate's bare WebSocket relay: forwards frames unparsed.
    Bare,
    /// `matchbox_server` (crates.io), full-mesh rooms by URL path.
    Matchbox,
    /// The PeerJS server (npm `peer`).
    Peerjs,
    /// `switchboard all`: edge + signal + auth in one process.
    Switchboard,
    /// The same stack as separate processes (auth, signal, edge), as on
    /// Kubernetes: the edge reaches signal and auth over gRPC. CPU and
    /// memory are the sum over the three.
    Split,
    /// Shared state in Redis (`--redis-url`): two signal replicas and two
    /// edges as separate processes, each sender on one edge and its
    /// receiver on the other, so every message crosses replicas.
    SplitRedis,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bare => "bare-relay",
            Self::Matchbox => "matchbox",
            Self::Peerjs => "peerjs",
            Self::Switchboard => "switchboard",
            Self::Split => "split",
            Self::SplitRedis => "split-redis",
        })
    }
}

/// How to start the servers.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The switchboard binary to measure.
    #[arg(long, default_value = "target/release/switchboard")]
    pub bin: String,
    /// The matchbox_server binary (scripts/bench-peers.sh installs it).
    #[arg(long, default_value = "target/bench-peers/bin/matchbox_server")]
    pub matchbox: String,
    /// The PeerJS server's command (scripts/bench-peers.sh installs it).
    #[arg(
        long,
        default_value = "target/bench-peers/peerjs/node_modules/.bin/peerjs"
    )]
    pub peerjs: String,
    /// Pin every server process (the whole stack) to this CPU with
    /// `taskset`; run the generator itself on another
    /// (`taskset -c 1 switchboard-bench …`).
    #[arg(long)]
    pub server_cpu: Option<usize>,
    /// More arguments for `switchboard all`, e.g. `--stack-arg=--redis
    /// --stack-arg=redis://127.0.0.1:6390` (repeatable).
    #[arg(long = "stack-arg", allow_hyphen_values = true)]
    pub stack_args: Vec<String>,
    /// A Redis the stack uses (started by the caller): its CPU and memory
    /// count as the stack's, and its CPU is also reported on its own.
    #[arg(long)]
    pub redis_pid: Option<u32>,
    /// The Redis of `split-redis` (started by the caller).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// `split` and `split-redis` over mutual TLS: certificates from
    /// `switchboard certs generate` in this directory (made if absent).
    #[arg(long)]
    pub mtls_dir: Option<std::path::PathBuf>,
}

impl ServerArgs {
    /// Where the servers run, for a benchmark's heading.
    pub fn pinning(&self) -> String {
        self.server_cpu
            .map_or("(none)".to_owned(), |c| c.to_string())
    }
}

/// One running server.
pub struct Server {
    pub kind: Kind,
    /// A Redis the stack uses, counted with it.
    redis_pid: Option<u32>,
    /// The WebSocket base URL (without a room or query).
    pub url: String,
    /// Where receivers connect, when not to `url`.
    url_b: Option<String>,
    /// Its processes, stopped in reverse order.
    processes: Vec<Running>,
    /// The API key switchboard's tokens are minted with.
    pub keys: Option<ApiKey>,
}

enum Running {
    Process(Process),
    Child(Child),
}

/// The API key the bench mints switchboard tokens with.
fn bench_keys() -> ApiKey {
    ApiKey::new(crate::API_KEY, crate::API_SECRET).expect("api key")
}

/// The first free port the kernel hands out (for servers that cannot be
/// given port 0 and tell which port they bound).
async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Server {
    /// A started multi-process stack as one server: clients go to its
    /// first edge; CPU and memory are summed over every process.
    pub fn from_split(kind: Kind, stack: SplitStack, args: &ServerArgs) -> Self {
        let url = stack.ws_url(0);
        // Stopped in reverse order: edges first.
        let mut processes: Vec<Running> = stack
            .into_processes()
            .into_iter()
            .map(Running::Process)
            .collect();
        processes.reverse();
        Self {
            kind,
            redis_pid: args.redis_pid,
            url,
            url_b: None,
            processes,
            keys: Some(bench_keys()),
        }
    }

    /// A server of one process.
    fn single(
        kind: Kind,
        args: &ServerArgs,
        process: Running,
        url: String,
        keys: Option<ApiKey>,
    ) -> Self {
        Self {
            kind,
            redis_pid: args.redis_pid,
            url,
            url_b: None,
            processes: vec![process],
            keys,
        }
    }

    pub async fn start(kind: Kind, args: &ServerArgs) -> Self {
        let pinned = |binary: &str, rest: Vec<String>| pinned(args, binary, rest);
        match kind {
            Kind::Bare => {
                let own = std::env::current_exe().expect("own path");
                let (program, argv) =
                    pinned(own.to_str().expect("utf8 path"), vec!["bare-relay".into()]);
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                let process = Process::start(&program, &argv, &[]).await;
                let url = process.url("bare").to_owned();
                Self::single(kind, args, Running::Process(process), url, None)
            }
            Kind::Switchboard => {
                let mut rest = vec!["all".to_owned()];
                rest.extend(crate::stack_args().iter().map(|s| s.to_string()));
                rest.extend(args.stack_args.iter().cloned());
                let (program, argv) = pinned(&args.bin, rest);
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                let env = crate::stack_env();
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let process = Process::start(&program, &argv, &env).await;
                let url = format!("{}/ws", process.url("edge").replacen("http://", "ws://", 1));
                Self::single(
                    kind,
                    args,
                    Running::Process(process),
                    url,
                    Some(bench_keys()),
                )
            }
            Kind::Split | Kind::SplitRedis => {
                let (stack, url_b) = if kind == Kind::Split {
                    (SplitStack::start(args, 1, 1, &[]).await, None)
                } else {
                    let redis = args
                        .redis_url
                        .clone()
                        .expect("split-redis needs --redis-url");
                    let stack = SplitStack::start(args, 2, 2, &["--redis".to_owned(), redis]).await;
                    let url_b = stack.ws_url(1);
                    (stack, Some(url_b))
                };
                let mut server = Self::from_split(kind, stack, args);
                server.url_b = url_b;
                server
            }
            Kind::Matchbox | Kind::Peerjs => {
                let port = free_port().await;
                let url = format!("ws://127.0.0.1:{port}");
                let (binary, rest) = if kind == Kind::Matchbox {
                    // Its one argument is the address; it cannot report a
                    // port it was given as 0.
                    (&args.matchbox, vec![format!("127.0.0.1:{port}")])
                } else {
                    (
                        &args.peerjs,
                        // No cap on peers below the benchmark's own sizes
                        // (its default is 5,000).
                        vec![
                            "--host".to_owned(),
                            "127.0.0.1".to_owned(),
                            "--port".to_owned(),
                            port.to_string(),
                            "--path".to_owned(),
                            "/".to_owned(),
                            "--concurrent_limit".to_owned(),
                            "1000000".to_owned(),
                        ],
                    )
                };
                let (program, argv) = pinned(binary, rest);
                let child = Command::new(&program)
                    .args(&argv)
                    .env("RUST_LOG", "warn")
                    .env("NO_COLOR", "1")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap_or_else(|e| panic!("start {program} {argv:?}: {e}"));
                wait_until(
                    &format!("{kind} listening on {port}"),
                    Duration::from_secs(20),
                    || async move {
                        tokio::net::TcpStream::connect(("127.0.0.1", port))
                            .await
                            .is_ok()
                    },
                )
                .await;
                Self::single(kind, args, Running::Child(child), url, None)
            }
        }
    }

    /// The server's processes: under `taskset` the same pids, since
    /// taskset execs the binary.
    fn pids(&self) -> Vec<u32> {
        self.processes
            .iter()
            .filter_map(|p| match p {
                Running::Process(p) => p.child.id(),
                Running::Child(c) => c.id(),
            })
            .chain(self.redis_pid)
            .collect()
    }

    /// CPU time of the Redis the stack uses, if any.
    pub fn redis_cpu_time(&self) -> Option<Duration> {
        cpu_time(self.redis_pid)
    }

    /// User + system CPU time of all its processes.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.pids().into_iter().map(|pid| cpu_time(Some(pid))).sum()
    }

    /// Resident memory of all its processes, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.pids().into_iter().map(rss_kib).sum()
    }

    pub async fn stop(self) {
        for process in self.processes.into_iter().rev() {
            match process {
                Running::Process(p) => {
                    let _ = p.terminate(Duration::from_secs(20)).await;
                }
                Running::Child(mut c) => {
                    let _ = c.kill().await;
                }
            }
        }
    }

    /// Connects pair `k`'s two clients (ids and room named with `prefix`)
    /// from `source`, and makes each known to the server; returns them
    /// with the receiver's address as the sender must name it.
    pub async fn pair(&self, prefix: &str, k: usize, source: Option<IpAddr>) -> (Ws, Ws, String) {
        let (a_id, b_id, room) = (
            format!("{prefix}a{k}"),
            format!("{prefix}b{k}"),
            format!("{prefix}room{k}"),
        );
        match self.kind {
            Kind::Bare => {
                let url = format!("{}?{room}", self.url);
                (
                    connect_from(&url, source).await,
                    connect_from(&url, source).await,
                    b_id,
                )
            }
            Kind::Switchboard | Kind::Split | Kind::SplitRedis => {
                let keys = self.keys.as_ref().expect("keys");
                let mut a = connect_from(&self.url, source).await;
                let mut b = connect_from(self.url_b.as_ref().unwrap_or(&self.url), source).await;
                join(&mut a, keys, &a_id, &room).await;
                join(&mut b, keys, &b_id, &room).await;
                (a, b, b_id)
            }
            Kind::Matchbox => {
                let url = format!("{}/{room}", self.url);
                let mut a = connect_from(&url, source).await;
                let _a_id = read_field(&mut a, "IdAssigned").await;
                let mut b = connect_from(&url, source).await;
                let b_id = read_field(&mut b, "IdAssigned").await;
                // `a` hears of `b` before anything is sent to it.
                let new_peer = read_field(&mut a, "NewPeer").await;
                assert_eq!(new_peer, b_id, "matchbox announced another peer");
                (a, b, b_id)
            }
            Kind::Peerjs => {
                let open = |id: &str| format!("{}/peerjs?key=peerjs&id={id}&token=t{id}", self.url);
                let mut a = connect_from(&open(&a_id), source).await;
                read_type(&mut a, "OPEN").await;
                let mut b = connect_from(&open(&b_id), source).await;
                read_type(&mut b, "OPEN").await;
                (a, b, b_id)
            }
        }
    }

    /// A sender's frame carrying `sdp` (already JSON-escaped) to `to`.
    pub fn frame(&self, to: &str, sdp: &str) -> String {
        match self.kind {
            Kind::Bare | Kind::Switchboard | Kind::Split | Kind::SplitRedis => format!(
                r#"{{"id":0,"signal":{{"to":"{to}","description":{{"type":"TYPE_OFFER","sdp":"{sdp}"}}}}}}"#
            ),
            Kind::Matchbox => format!(
                r#"{{"Signal":{{"receiver":"{to}","data":{{"type":"offer","sdp":"{sdp}"}}}}}}"#
            ),
            Kind::Peerjs => format!(
                r#"{{"type":"OFFER","dst":"{to}","payload":{{"type":"offer","sdp":"{sdp}"}}}}"#
            ),
        }
    }

    /// A frame that keeps a connection alive without reaching its pair.
    pub fn keepalive(&self) -> Option<Message> {
        match self.kind {
            Kind::Bare => None,
            Kind::Switchboard | Kind::Split | Kind::SplitRedis => {
                Some(Message::text(r#"{"id":0,"ping":{}}"#))
            }
            Kind::Matchbox => Some(Message::text(r#""KeepAlive""#)),
            Kind::Peerjs => Some(Message::text(r#"{"type":"HEARTBEAT"}"#)),
        }
    }
}

/// Reads text frames until one is `{"<key>":"<value>"}`; returns the value.
async fn read_field(ws: &mut Ws, key: &str) -> String {
    let prefix = format!("{{\"{key}\":\"");
    while let Some(Ok(message)) = ws.next().await {
        if let Some(rest) = message.to_text().ok().and_then(|t| t.strip_prefix(&prefix)) {
            return rest.trim_end_matches("\"}").to_owned();
        }
    }
    panic!("connection closed before {key}");
}

/// Reads text frames until one has `"type":"<kind>"`.
async fn read_type(ws: &mut Ws, kind: &str) {
    let needle = format!("\"type\":\"{kind}\"");
    while let Some(Ok(message)) = ws.next().await {
        if message.to_text().is_ok_and(|t| t.contains(&needle)) {
            return;
        }
    }
    panic!("connection closed before {kind}");
}
