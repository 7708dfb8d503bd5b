//! Real `redis-server` processes started by the tests themselves on
//! ephemeral ports (never the Redis on 6379), standalone or as a 3-master
//! cluster. Killed when dropped; their data lives in a temporary directory.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
};

use crate::wait::{DEADLINE, wait_until};

/// One redis-server process.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

async fn spawn(args: &[String]) -> Child {
    let port: u16 = args[1].parse().expect("port");
    let child = Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/test.sh installs it)");
    wait_until("redis-server answers PING", DEADLINE, || async move {
        command(port, "PING")
            .await
            .is_some_and(|r| r.starts_with("+PONG"))
    })
    .await;
    child
}

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Sends one inline command and returns the raw reply.
pub async fn command(port: u16, line: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

impl RedisServer {
    /// Starts a standalone server, or a cluster node with `cluster`.
    pub async fn start(cluster: bool) -> Self {
        let port = free_port().await;
        let dir = std::env::temp_dir().join(format!("sb-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut args = vec![
            "--port".to_string(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
        ];
        if cluster {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
            ]);
        }
        let child = spawn(&args).await;
        Self {
            child,
            port,
            dir,
            args,
        }
    }

    /// The server's process id (for `kill -STOP` / `-CONT`).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("redis-server running")
    }

    /// `kill -9`: the server vanishes at once.
    pub async fn kill9(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub async fn restart(&mut self) {
        self.child = spawn(&self.args).await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters, slots spread over them by `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(RedisServer::start(true).await);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("redis-cli");
        assert!(status.success(), "redis-cli --cluster create failed");
        for node in &nodes {
            let port = node.port;
            wait_until("the cluster is ok on every node", DEADLINE, || async move {
                command(port, "CLUSTER INFO")
                    .await
                    .is_some_and(|r| r.contains("cluster_state:ok"))
            })
            .await;
        }
        Self { nodes }
    }

    /// Seed URLs for a cluster client.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
