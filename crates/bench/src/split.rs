//! The stack as separate processes, as on Kubernetes: one auth, `signals`
//! signal replicas and `edges` edges (edge *i* talks to replica *i* mod
//! `signals`), every process pinned as the benchmark says.

use switchboard_tests::process::Process;

use crate::targets::ServerArgs;

/// `binary rest…`, under `taskset -c N` when the servers are pinned (the
/// process and everything it starts).
pub fn pinned(args: &ServerArgs, binary: &str, rest: Vec<String>) -> (String, Vec<String>) {
    match args.server_cpu {
        Some(cpu) => {
            let mut all = vec!["-c".to_owned(), cpu.to_string(), binary.to_owned()];
            all.extend(rest);
            ("taskset".to_owned(), all)
        }
        None => (binary.to_owned(), rest),
    }
}

pub struct SplitStack {
    pub auth: Process,
    pub signals: Vec<Process>,
    pub edges: Vec<Process>,
}

impl SplitStack {
    /// Starts the stack; `signal_args` are added to every replica's
    /// arguments (e.g. `--redis URL`).
    pub async fn start(
        args: &ServerArgs,
        signals: usize,
        edges: usize,
        signal_args: &[String],
    ) -> Self {
        let start = |rest: Vec<String>| async move {
            let (program, argv) = pinned(args, &args.bin, rest);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let env = crate::stack_env();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Process::start_service(&program, &argv, &env).await
        };
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Over mutual TLS: each process its own certificate.
        let identity = |name: &str| -> Vec<String> {
            let Some(dir) = &args.mtls_dir else {
                return Vec::new();
            };
            let file = |f: String| dir.join(f).display().to_string();
            vec![
                "--mtls-ca".into(),
                file("ca.pem".into()),
                "--mtls-cert".into(),
                file(format!("{name}.pem")),
                "--mtls-key".into(),
                file(format!("{name}.key")),
            ]
        };
        if let Some(dir) = &args.mtls_dir
            && !dir.join("edge.pem").exists()
        {
            let status = std::process::Command::new(&args.bin)
                .args(["certs", "generate", "--out"])
                .arg(dir)
                .args(["--name", "auth,signal,edge"])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("certs generate");
            assert!(status.success(), "certs generate failed");
        }
        let mut rest = strings(&["auth", "--listen", "127.0.0.1:0", "--dev"]);
        rest.extend(identity("auth"));
        let auth = start(rest).await;
        let auth_url = auth.url("auth").to_owned();
        let mut replicas = Vec::new();
        for _ in 0..signals.max(1) {
            let mut rest = strings(&["signal", "--listen", "127.0.0.1:0", "--auth-url", &auth_url]);
            rest.extend(signal_args.iter().cloned());
            rest.extend(identity("signal"));
            replicas.push(start(rest).await);
        }
        let mut started = Vec::new();
        for i in 0..edges.max(1) {
            let signal_url = replicas[i % replicas.len()].url("signal").to_owned();
            let mut rest = strings(&[
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--auth-url",
                &auth_url,
                "--signal-url",
                &signal_url,
                "--service-key",
                crate::EDGE_KEY,
            ]);
            rest.extend(crate::edge_limit_args());
            rest.extend(identity("edge"));
            started.push(start(rest).await);
        }
        let stack = Self {
            auth,
            signals: replicas,
            edges: started,
        };
        for i in 0..stack.edges.len() {
            stack.edge_ready(i).await;
        }
        stack
    }

    /// Edge `i`'s WebSocket URL.
    pub fn ws_url(&self, i: usize) -> String {
        format!(
            "{}/ws",
            self.edges[i].url("edge").replacen("http://", "ws://", 1)
        )
    }

    /// Waits until edge `i` serves joins (its lanes to signal and its
    /// revocation stream from auth are up once it reports ready).
    pub async fn edge_ready(&self, i: usize) {
        let base = self.edges[i].url("edge").to_owned();
        switchboard_tests::wait::wait_until(
            "the edge is ready",
            std::time::Duration::from_secs(20),
            || {
                let base = base.clone();
                async move {
                    switchboard_tests::http::request(&base, "GET", "/health/ready", "")
                        .await
                        .0
                        == 200
                }
            },
        )
        .await;
    }

    /// Every process, in the order they are best stopped (edges first).
    pub fn into_processes(self) -> Vec<Process> {
        let mut all = self.edges;
        all.extend(self.signals);
        all.push(self.auth);
        all
    }
}
