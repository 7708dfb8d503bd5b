//! The `switchboard` binary as operators run it: `all` starts every service,
//! prints where it listens, serves real clients and drains on SIGTERM.

use std::time::Duration;

use switchboard_proto::{pb, wire::Format};
use switchboard_tests::{WsClient, candidate, description, http, process::Process};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const API_KEYS: &str = "cli:cli-test-secret-0123456789-abcdefghijkl";

fn ephemeral() -> Vec<&'static str> {
    vec![
        "all",
        "--edge-listen",
        "127.0.0.1:0",
        "--auth-listen",
        "127.0.0.1:0",
        "--signal-listen",
        "127.0.0.1:0",
        "--health-listen",
        "127.0.0.1:0",
        "--drain-seconds",
        "5",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_serves_clients_with_cli_tokens_and_drains_on_sigterm() {
    // The edge reaches signal and auth in process.
    serves_clients_and_drains(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_over_loopback_grpc_serves_clients_and_drains_on_sigterm() {
    // The same with the gRPC hops separate processes use.
    serves_clients_and_drains(&["--grpc-link"]).await;
}

async fn serves_clients_and_drains(extra: &[&str]) {
    let mut args = ephemeral();
    args.extend_from_slice(extra);
    let stack = Process::start(BIN, &args, &[("SWITCHBOARD_API_KEYS", API_KEYS)]).await;
    for service in ["auth", "signal", "health", "edge"] {
        assert!(
            stack.url(service).starts_with("http://127.0.0.1:"),
            "{service}"
        );
    }
    let edge = stack.url("edge").to_owned();
    let ws = format!("{}/ws", edge.replacen("http://", "ws://", 1));
    let (status, body) = http::request(stack.url("health"), "GET", "/health/live", "").await;
    assert_eq!(status, 200, "{body}");

    // Tokens minted offline by `switchboard token` as a backend, with the
    // API key pair the stack knows.
    let mint = |identity: &'static str| {
        let output = std::process::Command::new(BIN)
            .args(["token", "--room", "cli", "--identity", identity])
            .env("SWITCHBOARD_API_KEY", "cli")
            .env(
                "SWITCHBOARD_API_SECRET",
                API_KEYS.split_once(':').expect("pair").1,
            )
            .output()
            .expect("token command");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    };
    let mut alice = WsClient::connect(&ws, Format::Json).await;
    let mut bob = WsClient::connect(&ws, Format::Binary).await;
    alice.join(&mint("alice")).await;
    bob.join(&mint("bob")).await;
    alice
        .signal("bob", description(true, "v=0 via-the-binary"))
        .await;
    let got = bob.next_signal().await;
    assert_eq!(
        (got.from.as_str(), got.kind),
        ("alice", Some(description(true, "v=0 via-the-binary")))
    );

    // Dev mode: the dev token endpoint is on.
    let (status, body) = http::request(
        &edge,
        "POST",
        "/v1/dev/token",
        r#"{"identity":"carol","room":"cli"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // SIGTERM: clients are told to reconnect (1012), the process exits 0
    // within the drain deadline.
    let terminating = tokio::spawn(stack.terminate(Duration::from_secs(15)));
    let closed = alice.closed().await;
    assert_eq!(closed.code, 1012, "{closed:?}");
    assert!(closed.reason.starts_with("shutting_down"), "{closed:?}");
    let (status, took) = terminating.await.expect("join");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(6), "drain took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_api_secret_is_refused_at_startup() {
    let output = tokio::process::Command::new(BIN)
        .args(ephemeral())
        .env("SWITCHBOARD_API_KEYS", "k:short")
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32 bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_off_loopback_needs_an_explicit_opt_in() {
    let output = tokio::process::Command::new(BIN)
        .args(["edge", "--listen", "0.0.0.0:0"])
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refusing plain HTTP"));
}

/// Dev mode (any identity, any room, from the dev token endpoint and an
/// open IssueToken) refuses to listen on a non-loopback address unless the
/// loudly named flag says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_refuses_a_public_address() {
    // A refusal exits at once; a server that starts is killed after 10 s.
    let run = |args: &[&str]| {
        let mut child = tokio::process::Command::new(BIN)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run");
        async move {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            child.wait_with_output().await.expect("output")
        }
    };
    for args in [
        &[
            "all",
            "--edge-listen",
            "0.0.0.0:0",
            "--allow-plaintext",
            "--auth-listen",
            "127.0.0.1:0",
            "--signal-listen",
            "127.0.0.1:0",
            "--health-listen",
            "127.0.0.1:0",
        ][..],
        &["auth", "--dev", "--listen", "0.0.0.0:0"][..],
    ] {
        let output = run(args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} must refuse to start");
        assert!(
            stderr.contains("dev mode") && stderr.contains("--dangerously-expose-dev-mode"),
            "{args:?}: {stderr}"
        );
    }
}

/// gRPC between services is plaintext only on loopback: a non-loopback
/// port or `http://` URL of another service is refused at start with what
/// to do (mTLS, or `--grpc-plaintext` on a trusted network); an https://
/// URL needs an identity; `all` takes no mesh flags.
#[test]
fn plaintext_grpc_stays_on_loopback_unless_accepted() {
    let check = |args: &[&str]| {
        let output = std::process::Command::new(BIN)
            .args(args)
            .arg("--check-config")
            .env("SWITCHBOARD_SERVICE_KEY", API_KEYS)
            .output()
            .expect("run");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for (args, refusal) in [
        (
            &["signal", "--listen", "0.0.0.0:50052"][..],
            "refusing plaintext gRPC for signal",
        ),
        (
            &["auth", "--listen", "10.0.0.5:50051"][..],
            "refusing plaintext gRPC for auth",
        ),
        (
            &["signal", "--auth-url", "http://auth:50051"][..],
            "--auth-url http://auth:50051: plaintext gRPC off loopback",
        ),
        (
            &["edge", "--signal-url", "http://10.0.0.7:50052"][..],
            "--signal-url http://10.0.0.7:50052: plaintext gRPC off loopback",
        ),
        (
            &["health", "--target", "auth=http://auth:50051"][..],
            "--target http://auth:50051: plaintext gRPC off loopback",
        ),
        (
            &["edge", "--auth-url", "https://auth:50051"][..],
            "https:// needs this service's mTLS identity",
        ),
        (
            &[
                "all",
                "--mtls-ca",
                "ca.pem",
                "--mtls-cert",
                "a.pem",
                "--mtls-key",
                "a.key",
            ][..],
            "do not apply to `all`",
        ),
    ] {
        let (ok, stderr) = check(args);
        assert!(!ok, "{args:?} must be refused");
        assert!(stderr.contains(refusal), "{args:?}: {stderr}");
    }
    for args in [
        &["signal", "--listen", "0.0.0.0:50052", "--grpc-plaintext"][..],
        &[
            "signal",
            "--auth-url",
            "http://auth:50051",
            "--grpc-plaintext",
        ][..],
        &["health", "--target", "auth=http://127.0.0.1:50051"][..],
        &["signal", "--auth-url", "http://localhost:50051"][..],
    ] {
        let (ok, stderr) = check(args);
        assert!(ok, "{args:?}: {stderr}");
    }
}

/// A whole session under `RUST_LOG=trace` — joins, an offer with an ICE
/// password, a candidate, TURN credentials, a dropped socket and a resume —
/// leaves no token, resume token, SDP line, candidate address or TURN
/// credential anywhere in the log, although the log is full of trace and
/// debug lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_traced_at_the_finest_level_logs_no_secrets() {
    let mut args = ephemeral();
    args.extend([
        "--turn-url",
        "turn:turn.example.com:3478",
        "--turn-secret",
        "turn-shared-secret-0123456789-abcdefgh",
        // Webhooks and a join hook nobody answers (port 9, refused): their
        // failures are logged, their credentials must not be.
        "--webhook-url",
        "http://127.0.0.1:9/hooks",
        "--webhook-api-key",
        "hooks:webhook-secret-0123456789-abcdefghijkl",
        "--join-hook-url",
        "http://127.0.0.1:9",
        "--join-hook-api-key",
        "hook:join-hook-secret-0123456789-abcdefghij",
        "--join-hook-failure",
        "open",
    ]);
    let stack = Process::start_logged(BIN, &args, &[("RUST_LOG", "trace")]).await;
    let edge = stack.url("edge").to_owned();
    let ws = format!("{}/ws", edge.replacen("http://", "ws://", 1));
    let token = |identity: &str| {
        let edge = edge.clone();
        let body = format!(r#"{{"identity":"{identity}","room":"traced"}}"#);
        async move {
            let (status, body) = http::request(&edge, "POST", "/v1/dev/token", &body).await;
            assert_eq!(status, 200, "{body}");
            let body: serde_json::Value = serde_json::from_str(&body).expect("json");
            body["token"].as_str().expect("token").to_owned()
        }
    };
    let (alice_token, bob_token) = (token("alice").await, token("bob").await);
    let mut alice = WsClient::connect(&ws, Format::Json).await;
    let mut bob = WsClient::connect(&ws, Format::Binary).await;
    alice.join(&alice_token).await;
    let joined = bob.join(&bob_token).await;
    let turn = joined
        .ice_servers
        .iter()
        .find(|s| !s.credential.is_empty())
        .expect("TURN credentials");
    let sdp = "v=0\r\na=ice-ufrag:UFRAGMARKER\r\na=ice-pwd:PWDMARKER0123456789abcdef\r\n";
    alice.signal("bob", description(true, sdp)).await;
    assert_eq!(bob.next_signal().await.kind, Some(description(true, sdp)));
    let line = "candidate:842163049 1 udp 1677729535 198.51.100.77 49152 typ srflx";
    alice.signal("bob", candidate(line)).await;
    bob.next_signal().await;
    let last_seq = bob.last_seq;
    bob.drop_abruptly();
    let mut bob = WsClient::connect(&ws, Format::Binary).await;
    bob.resume(
        &joined.session_id,
        &joined.resume_token,
        last_seq,
        &bob_token,
    )
    .await
    .expect("resumed");
    alice.signal("bob", description(false, sdp)).await;
    bob.next_signal().await;
    drop((alice, bob));
    let log = stack.log.clone().expect("captured");
    let (status, _) = stack.terminate(Duration::from_secs(15)).await;
    assert!(status.success());

    let log = log.complete().await;
    // The reason the absence means something: the finest level was on
    // (Switchboard's own crates log at debug, none at trace).
    let debug_of = |target: &str| {
        log.lines()
            .any(|l| l.contains(" DEBUG ") && l.contains(target))
    };
    assert!(
        debug_of("switchboard_edge") && debug_of("switchboard_signal"),
        "debug logging was not on:\n{log}"
    );
    let secrets = [
        ("alice's token", alice_token.as_str()),
        ("bob's token", bob_token.as_str()),
        ("the resume token", joined.resume_token.as_str()),
        ("an SDP line", "PWDMARKER"),
        ("an SDP line", "UFRAGMARKER"),
        ("a candidate address", "198.51.100.77"),
        ("the TURN credential", turn.credential.as_str()),
        ("the TURN secret", "turn-shared-secret-0123456789-abcdefgh"),
        ("the webhook secret", "webhook-secret-0123456789"),
        ("the join hook's secret", "join-hook-secret-0123456789"),
    ];
    // The paths whose secrets these are did run.
    assert!(
        log.contains("webhook delivery failed"),
        "no webhook attempt:\n{log}"
    );
    assert!(
        log.contains("join hook failed"),
        "no join hook call:\n{log}"
    );
    for (what, secret) in secrets {
        assert!(!secret.is_empty(), "{what}");
        let found = log.lines().find(|l| l.contains(secret));
        assert!(found.is_none(), "{what} in the log: {found:?}");
    }
}

/// SIGTERM ends a service even while the health aggregator holds a Watch
/// stream on it (within its drain deadline), and the aggregator follows
/// the replacement on the same port within two seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_service_stops_on_sigterm_and_the_aggregator_follows_its_replacement() {
    let signal = Process::start_service(BIN, &["signal", "--listen", "127.0.0.1:0"], &[]).await;
    let signal_url = signal.url("signal").to_owned();
    let target = format!("signal={signal_url}#switchboard.v1.Signal");
    let health = Process::start_service(
        BIN,
        &["health", "--listen", "127.0.0.1:0", "--target", &target],
        &[],
    )
    .await;
    let ready_url = health.url("health").to_owned();
    let ready = |within: Duration| {
        let url = ready_url.clone();
        switchboard_tests::wait_until("aggregator ready", within, move || {
            let url = url.clone();
            async move { http::request(&url, "GET", "/health/ready", "").await.0 == 200 }
        })
    };
    ready(switchboard_tests::DEADLINE).await;
    let (status, took) = signal.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(7), "shutdown took {took:?}");
    let listen = signal_url.trim_start_matches("http://").to_owned();
    let _replacement = Process::start_service(BIN, &["signal", "--listen", &listen], &[]).await;
    ready(Duration::from_secs(2)).await;
    drop(health);
}

/// One file configures the stack; the environment beats it and a flag beats
/// both; a secret comes from a `*_FILE`; `--check-config` reports what the
/// service would serve without reading the secret files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_env_and_flags_in_that_order_and_secrets_from_files() {
    let dir = std::env::temp_dir().join(format!("sb-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("switchboard.toml");
    std::fs::write(
        &file,
        "edge_listen = \"127.0.0.1:7100\"\nsignal_listen = \"127.0.0.1:7101\"\nservice_key_file = \"/run/secrets/absent\"\n",
    )
    .expect("write");
    let check = |args: &'static [&'static str], env: Vec<(&'static str, String)>| {
        let file = file.clone();
        async move {
            let output = tokio::process::Command::new(BIN)
                .arg("--check-config")
                .args(args)
                .env("SWITCHBOARD_CONFIG", &file)
                .envs(env)
                .output()
                .await
                .expect("run");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(output.status.success(), "{args:?}: {stderr}");
            serde_json::from_str::<serde_json::Value>(&stdout).expect("one JSON line")
        }
    };
    let from_file = check(&["edge"], vec![]).await;
    assert_eq!(from_file["listen"], "127.0.0.1:7100");
    assert_eq!(from_file["files"][1], "/run/secrets/absent", "{from_file}");
    let from_env = check(
        &["edge"],
        vec![("SWITCHBOARD_EDGE_LISTEN", "127.0.0.1:7200".into())],
    )
    .await;
    assert_eq!(from_env["listen"], "127.0.0.1:7200", "env beats file");
    let from_flag = check(
        &["edge", "--listen", "127.0.0.1:7300"],
        vec![("SWITCHBOARD_EDGE_LISTEN", "127.0.0.1:7200".into())],
    )
    .await;
    assert_eq!(from_flag["listen"], "127.0.0.1:7300", "flag beats env");
    let signal = check(&["signal"], vec![]).await;
    assert_eq!(signal["listen"], "127.0.0.1:7101");
    assert_eq!(
        signal["grpc_health_services"],
        serde_json::json!(["", "liveness", "switchboard.v1.Signal"])
    );

    // Run for real, the secret file is read: absent, it is refused by name.
    let output = tokio::process::Command::new(BIN)
        .arg("edge")
        .env("SWITCHBOARD_CONFIG", &file)
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SWITCHBOARD_SERVICE_KEY") && stderr.contains("/run/secrets/absent"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The aggregator refuses to start with nothing to follow or with a target
/// it cannot parse (it used to report ready with no targets, and to fail
/// silently on a bad one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_aggregator_refuses_no_targets_and_bad_ones() {
    for (args, expected) in [
        (
            vec!["health", "--listen", "127.0.0.1:0"],
            "no health targets",
        ),
        (
            vec![
                "health",
                "--listen",
                "127.0.0.1:0",
                "--target",
                "signal=localhost:50052",
            ],
            "http(s)://HOST:PORT",
        ),
        (
            vec!["health", "--listen", "127.0.0.1:0", "--target", "signal"],
            "NAME=URL",
        ),
        (
            vec![
                "health",
                "--listen",
                "127.0.0.1:0",
                "--target",
                "redis=http://127.0.0.1:1",
            ],
            "reserved",
        ),
    ] {
        let output = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::process::Command::new(BIN).args(&args).output(),
        )
        .await
        .expect("exits at once")
        .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("LISTEN"),
            "{args:?} refused before listening"
        );
    }
}

/// A gRPC-only service serves its metrics on an admin port
/// (`--metrics-listen`): `/metrics` and `/health/live`, no readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_service_serves_its_metrics_on_an_admin_port() {
    let signal = Process::start_service(
        BIN,
        &[
            "signal",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    let admin = signal.url("metrics").to_owned();
    let (status, text) = http::request(&admin, "GET", "/metrics", "").await;
    assert_eq!(status, 200, "{text}");
    for family in [
        "# TYPE switchboard_signal_sessions gauge",
        "# TYPE switchboard_redis_duration_seconds histogram",
        "# TYPE switchboard_auth_tokens_issued counter",
    ] {
        assert!(text.contains(family), "{family} in\n{text}");
    }
    assert_eq!(
        http::request(&admin, "GET", "/health/live", "").await.0,
        200
    );
    assert_eq!(
        http::request(&admin, "GET", "/health/ready", "").await.0,
        404
    );
}

/// The breaker in front of auth follows its flags: opened after one
/// failure (the default is three), the second join fails at once with the
/// breaker's answer instead of waiting out its own deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_breaker_follows_its_flags() {
    // An auth that accepts connections and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let auth_url = format!("http://{}", hung.local_addr().expect("addr"));
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let signal = Process::start_service(
        BIN,
        &[
            "signal",
            "--listen",
            "127.0.0.1:0",
            "--auth-url",
            &auth_url,
            "--api-key",
            API_KEYS,
        ],
        &[],
    )
    .await;
    let edge = Process::start_service(
        BIN,
        &[
            "edge",
            "--listen",
            "127.0.0.1:0",
            "--signal-url",
            signal.url("signal"),
            "--auth-url",
            &auth_url,
            "--service-key",
            API_KEYS,
            "--auth-breaker-failures",
            "1",
            "--auth-breaker-open-ms",
            "60000",
        ],
        &[],
    )
    .await;
    let ws = format!("{}/ws", edge.url("edge").replacen("http://", "ws://", 1));
    let join = |ws: String| async move {
        let mut client = WsClient::connect(&ws, Format::Json).await;
        client
            .send(pb::client_message::Message::Join(Box::new(pb::Join {
                token: "any".into(),
                ..Default::default()
            })))
            .await;
        client.next_error().await
    };
    let first = join(ws.clone()).await;
    assert_eq!(first.code().as_str_name(), "unavailable", "{first:?}");
    assert!(
        !first.message.contains("not answering"),
        "the first waits its deadline: {first:?}"
    );
    let second = join(ws).await;
    assert_eq!(second.code().as_str_name(), "unavailable", "{second:?}");
    assert!(
        second.message.contains("auth is not answering"),
        "the breaker opened after one failure: {second:?}"
    );
}

/// The Autobahn echo (`conformance-echo` feature) is not in the deployed
/// binary: the same handshake that upgrades on `/ws` finds nothing there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_binary_has_no_conformance_echo() {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
    let stack = Process::start(BIN, &ephemeral(), &[]).await;
    let edge = stack.url("edge").to_owned();
    let handshake = |path: &str| {
        let mut request = format!("{}{path}", edge.replacen("http://", "ws://", 1))
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("origin", edge.parse().expect("origin"));
        tokio_tungstenite::connect_async(request)
    };
    assert!(
        handshake("/ws").await.is_ok(),
        "the same handshake upgrades on /ws"
    );
    match handshake("/conformance/echo").await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404, "{response:?}");
        }
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(_) => panic!("the deployed binary upgraded on the conformance echo"),
    }
}

/// `--help` shows which variables a flag reads, never the value of one
/// that may hold a credential (a Redis URL carries its password).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_never_prints_a_redis_url_from_the_environment() {
    for command in ["edge", "signal", "auth", "health", "all"] {
        let output = tokio::process::Command::new(BIN)
            .args([command, "--help"])
            .env("SWITCHBOARD_REDIS", "redis://:hunter2@redis:6379")
            .env("SWITCHBOARD_HEALTH_REDIS", "redis://:hunter2@redis:6379")
            .output()
            .await
            .expect("help");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("REDIS"), "{command}: {help}");
        assert!(
            !help.contains("hunter2"),
            "{command} --help printed a credential"
        );
    }
}

/// `--tls-self-signed`: the edge serves HTTPS at once with a certificate it
/// made for localhost, and prints the fingerprint of exactly that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_edge_prints_the_fingerprint_it_serves() {
    use sha2::Digest as _;
    use tokio::io::AsyncBufReadExt as _;
    let mut args = ephemeral();
    args.push("--tls-self-signed");
    let mut child = tokio::process::Command::new(BIN)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run");
    let pid = child.id().expect("pid");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut fingerprint, mut edge) = (None, None);
    tokio::time::timeout(switchboard_tests::DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("line") {
            if let Some(f) = line.strip_prefix("TLS SHA-256 fingerprint ") {
                fingerprint = Some(f.to_owned());
            }
            if let Some(url) = line.strip_prefix("LISTEN edge ") {
                edge = Some(url.to_owned());
            }
            if line.starts_with("READY") {
                break;
            }
        }
    })
    .await
    .expect("ready");
    let fingerprint = fingerprint.expect("a fingerprint is printed");
    let edge = edge.expect("edge");
    assert!(edge.starts_with("https://127.0.0.1:"), "{edge}");

    // Trusting the certificate file the edge wrote, a TLS client reaches it
    // as localhost, and what it is shown is what was printed.
    let cert = std::env::temp_dir()
        .join(format!("switchboard-self-signed-{pid}"))
        .join("cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).expect("cert file") {
        roots.add(c.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(edge.trim_start_matches("https://"))
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("handshake as localhost");
    let presented = &tls.get_ref().1.peer_certificates().expect("certificate")[0];
    let shown = sha2::Sha256::digest(presented.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(shown, fingerprint);
    let _ = child.kill().await;
}
