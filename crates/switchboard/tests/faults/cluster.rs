//! The cluster under test: processes of the real binary.

use std::time::Duration;

use switchboard_auth::{ApiKey, Jwk, KeyAlg, TokenRequest};
use switchboard_proto::pb::{self};
use switchboard_tests::{DEADLINE, http, process::Process, redis_server::RedisServer, wait_until};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
pub const API: (&str, &str) = ("faults", "faults-secret-0123456789-abcdefghijklmn");
/// Messages in each stream.
pub const STREAM: u64 = 300;

pub struct Cluster {
    pub _redis: RedisServer,
    pub _auth: Process,
    pub signals: Vec<Option<Process>>,
    pub edges: Vec<Option<Process>>,
    pub dir: std::path::PathBuf,
}

pub fn ws(edge: &Process) -> String {
    format!("{}/ws", edge.url("edge").replacen("http://", "ws://", 1))
}

pub fn token(identity: &str, room: &str) -> String {
    let api = ApiKey::new(API.0, API.1).expect("api key");
    let request = TokenRequest {
        identity: identity.into(),
        grants: pb::Grants {
            room: room.into(),
            publish: true,
            ..Default::default()
        },
        ttl: Duration::from_secs(600),
        ..Default::default()
    };
    api.mint(&request.to_claims(API.0, "switchboard").expect("claims"))
        .expect("token")
}

/// A fresh Ed25519 signing key written as `dir/signing.jwk` (auth's
/// `--signing-key`).
pub fn signing_key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let key = dir.join("signing.jwk");
    let jwk = Jwk::generate(KeyAlg::EdDsa, "k").expect("key");
    std::fs::write(&key, serde_json::to_string(&jwk).expect("json")).expect("write key");
    key
}

impl Cluster {
    /// Edge i talks to signal replica i only, so a fault is felt by exactly
    /// the clients of that pair. Edges drain at once (no spread).
    pub async fn start(resume_window: &str) -> Self {
        Self::start_with(
            resume_window,
            &["--drain-seconds", "3", "--drain-spread-seconds", "0"],
        )
        .await
    }

    /// As [`Cluster::start`], with these extra arguments for every edge
    /// (the drain's included).
    pub async fn start_with(resume_window: &str, edge_args: &[&str]) -> Self {
        let redis = RedisServer::start(false).await;
        let dir =
            std::env::temp_dir().join(format!("sb-faults-{}-{}", std::process::id(), redis.port));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = signing_key_file(&dir);
        let api = format!("{}:{}", API.0, API.1);
        let auth = Process::start_service(
            BIN,
            &[
                "auth",
                "--listen",
                "127.0.0.1:0",
                "--signing-key",
                key.to_str().expect("path"),
                "--api-key",
                &api,
            ],
            &[],
        )
        .await;
        let mut signals = Vec::new();
        for _ in 0..2 {
            let args = [
                "signal",
                "--listen",
                "127.0.0.1:0",
                "--auth-url",
                auth.url("auth"),
                "--api-key",
                &api,
                "--redis",
                &redis.url(),
                "--resume-window",
                resume_window,
            ];
            signals.push(Some(Process::start_service(BIN, &args, &[]).await));
        }
        let mut edges = Vec::new();
        for signal in &signals {
            let signal_url = signal.as_ref().expect("signal").url("signal").to_owned();
            let mut args = vec![
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--signal-url",
                &signal_url,
                "--auth-url",
                auth.url("auth"),
                "--service-key",
                &api,
                // The stream runs at ~330 msg/s, above the default 50/s.
                "--messages-per-second",
                "100000",
                "--message-burst",
                "100000",
            ];
            let redis_url = redis.url();
            // `{redis}` stands for this cluster's Redis.
            args.extend(edge_args.iter().map(|a| {
                if *a == "{redis}" {
                    redis_url.as_str()
                } else {
                    a
                }
            }));
            let edge = Process::start_service(BIN, &args, &[]).await;
            let url = edge.url("edge").to_owned();
            wait_until("edge ready", DEADLINE, || {
                let url = url.clone();
                async move { http::request(&url, "GET", "/health/ready", "").await.0 == 200 }
            })
            .await;
            edges.push(Some(edge));
        }
        Self {
            _redis: redis,
            _auth: auth,
            signals,
            edges,
            dir,
        }
    }

    pub fn edge(&self, i: usize) -> &Process {
        self.edges[i].as_ref().expect("edge running")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `grpc.health.v1` of signal replica 0 (readiness follows Redis).
#[derive(Clone)]
pub struct SignalHealth(
    pub tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>,
);

impl SignalHealth {
    pub async fn connect(cluster: &Cluster) -> Self {
        let url = cluster.signals[0]
            .as_ref()
            .expect("signal")
            .url("signal")
            .to_owned();
        let channel = tonic::transport::Endpoint::from_shared(url)
            .expect("url")
            .connect()
            .await
            .expect("connect");
        Self(tonic_health::pb::health_client::HealthClient::new(channel))
    }

    /// Whether signal reports SERVING (`None`: the check itself failed).
    pub async fn serving(&self) -> Option<bool> {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        let request = HealthCheckRequest {
            service: "switchboard.v1.Signal".into(),
        };
        let status = self
            .0
            .clone()
            .check(request)
            .await
            .ok()?
            .into_inner()
            .status;
        Some(status == ServingStatus::Serving as i32)
    }
}
