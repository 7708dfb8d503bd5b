//! The real `switchboard` binary as a child process.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::wait::DEADLINE;

/// A running `switchboard all` (or any subcommand that prints LISTEN/READY).
pub struct Process {
    pub child: Child,
    /// `LISTEN <service> <url>` lines, in order.
    pub listen: Vec<(String, String)>,
    /// Everything written to stderr, when captured.
    pub log: Option<Log>,
}

/// A child's stderr, collected as it is written.
#[derive(Debug, Clone)]
pub struct Log {
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// True once stderr reached its end (the child exited).
    ended: tokio::sync::watch::Receiver<bool>,
}

impl Log {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// The whole log, once the child has closed its stderr.
    pub async fn complete(&self) -> String {
        let mut ended = self.ended.clone();
        tokio::time::timeout(DEADLINE, ended.wait_for(|e| *e))
            .await
            .expect("stderr ended in time")
            .expect("reader alive");
        self.text()
    }
}

impl Process {
    /// Starts `binary args…` and waits (with a deadline) for `READY` on
    /// stdout (what `switchboard all` prints once everything serves).
    pub async fn start(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_until(binary, args, env, "READY", false).await
    }

    /// As [`Process::start`], collecting stderr (the log) in [`Process::log`].
    pub async fn start_logged(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_until(binary, args, env, "READY", true).await
    }

    /// Starts one service (`edge`, `auth`, `signal`, `health`) and waits for
    /// its LISTEN line.
    pub async fn start_service(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_until(binary, args, env, "LISTEN", false).await
    }

    /// As [`Process::start_service`], waiting for the LISTEN lines of all
    /// of `services` (e.g. `edge` and its `metrics` admin port).
    pub async fn start_listening(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
        services: &[&str],
    ) -> Self {
        let until = format!("LISTEN {}", services.join(" "));
        Self::start_until(binary, args, env, &until, false).await
    }

    async fn start_until(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
        until: &str,
        capture: bool,
    ) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn switchboard");
        let log = child.stderr.take().map(|mut stderr| {
            let (ended_tx, ended) = tokio::sync::watch::channel(false);
            let log = Log {
                bytes: Default::default(),
                ended,
            };
            let sink = log.bytes.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut chunk = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = stderr.read(&mut chunk).await {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&chunk[..n]);
                }
                let _ = ended_tx.send(true);
            });
            log
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut listen = Vec::new();
        let wait = async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                let mut parts = line.split_whitespace();
                match parts.next() {
                    Some("LISTEN") => {
                        let service = parts.next().expect("service").to_owned();
                        let url = parts.next().expect("url").to_owned();
                        listen.push((service, url));
                        if until == "LISTEN" {
                            return true;
                        }
                        if let Some(all) = until.strip_prefix("LISTEN ")
                            && all.split(' ').all(|s| listen.iter().any(|(l, _)| l == s))
                        {
                            return true;
                        }
                    }
                    Some("READY") if until == "READY" => return true,
                    _ => {}
                }
            }
            false
        };
        let ready = tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("switchboard did not get ready in time");
        assert!(ready, "switchboard exited before READY");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, listen, log }
    }

    pub fn url(&self, service: &str) -> &str {
        self.listen
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, u)| u.as_str())
            .expect("service listed")
    }

    /// Kills the process with SIGKILL (no shutdown at all).
    pub async fn kill9(mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends SIGTERM and waits for the exit status (at most `deadline`).
    pub async fn terminate(mut self, deadline: Duration) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id().expect("running") as i32;
        let started = tokio::time::Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill");
        assert!(status.success());
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .expect("process did not exit within the deadline")
            .expect("wait");
        (status, started.elapsed())
    }
}
