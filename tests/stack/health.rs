//! Liveness, readiness and `grpc.health.v1` on every service.

use std::time::Duration;

use switchboard_auth::{AuthConfig, Jwk, KeyAlg, Keyring, KeyringConfig};
use switchboard_tests::{DEADLINE, Stack, http, wait_until};
use tokio::{net::TcpSocket, sync::oneshot};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_grpc_health_and_the_aggregator_is_ready() {
    let stack = Stack::start().await;
    for (url, service) in [
        (&stack.auth_url, switchboard_auth::SERVICE_NAME),
        (&stack.signal_url, switchboard_signal::SERVICE_NAME),
    ] {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut client = HealthClient::new(channel);
        for name in ["", service] {
            let status = client
                .check(HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .expect("check")
                .into_inner()
                .status;
            assert_eq!(status, ServingStatus::Serving as i32, "{url} {name:?}");
        }
        let unknown = client
            .check(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await;
        assert_eq!(unknown.expect_err("unknown").code(), tonic::Code::NotFound);
    }

    assert_eq!(
        http::request(&stack.edge_url, "GET", "/health/live", "")
            .await
            .0,
        200
    );
    assert_eq!(
        http::request(&stack.edge_url, "GET", "/health/ready", "")
            .await
            .0,
        200
    );
    assert_eq!(
        http::request(&stack.health_url, "GET", "/health/live", "")
            .await
            .0,
        200
    );
    let health_url = stack.health_url.clone();
    wait_until("aggregator ready", DEADLINE, || {
        let url = health_url.clone();
        async move { http::request(&url, "GET", "/health/ready", "").await.0 == 200 }
    })
    .await;
    let (_, body) = http::request(&stack.health_url, "GET", "/health/ready", "").await;
    assert!(
        body.contains(r#""signal":"serving""#) && body.contains(r#""auth":"serving""#),
        "{body}"
    );
    stack.shutdown().await;
}

/// Serves an auth service on `addr` until the returned sender fires.
async fn auth_on(addr: std::net::SocketAddr) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket.bind(addr).expect("bind the same port again");
    let listener = socket.listen(64).expect("listen");
    let keys = Keyring::new(KeyringConfig {
        signing_key: Jwk::generate(KeyAlg::EdDsa, "k").expect("key"),
        verification_keys: vec![],
        // The edge's service credential: it watches revocations with it.
        api_keys: vec![
            switchboard_auth::ApiKey::new(
                switchboard_tests::stack::API_KEY,
                switchboard_tests::stack::API_SECRET,
            )
            .expect("api key"),
        ],
        issuer: "switchboard".into(),
        audience: "switchboard".into(),
        max_session: Duration::from_secs(3600),
    })
    .expect("keyring");
    let config = AuthConfig {
        keys,
        default_ttl: Duration::from_secs(600),
        refresh_ttl: Duration::from_secs(600),
        dev: false,
        redis: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        switchboard_auth::run(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("auth");
    });
    (stop, task)
}

async fn edge_ready(url: &str) -> (u16, serde_json::Value) {
    let (status, body) = http::request(url, "GET", "/health/ready", "").await;
    (status, serde_json::from_str(&body).expect("json"))
}

/// Every join needs auth, so an edge that cannot reach auth is not ready —
/// and is again once auth is back. Liveness never depends on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_readiness_follows_auth() {
    let addr: std::net::SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let (stop, task) = auth_on(addr).await;
    let stack = Stack::start_with(|config| config.edge.auth_url = format!("http://{addr}")).await;
    let url = stack.edge_url.clone();
    wait_until("edge ready with auth up", DEADLINE, || {
        let url = url.clone();
        async move { edge_ready(&url).await.0 == 200 }
    })
    .await;
    let (_, body) = edge_ready(&url).await;
    assert_eq!(
        (body["auth"].as_str(), body["signal"].as_str()),
        (Some("serving"), Some("serving"))
    );

    let _ = stop.send(());
    task.await.expect("auth stopped");
    wait_until("edge not ready with auth down", DEADLINE, || {
        let url = url.clone();
        async move { edge_ready(&url).await.0 == 503 }
    })
    .await;
    let (_, body) = edge_ready(&url).await;
    assert_eq!(
        (body["auth"].as_str(), body["signal"].as_str()),
        (Some("down"), Some("serving")),
        "{body}"
    );
    assert_eq!(http::request(&url, "GET", "/health/live", "").await.0, 200);

    let (_stop, _task) = auth_on(addr).await;
    wait_until("edge ready again with auth back", DEADLINE, || {
        let url = url.clone();
        async move { edge_ready(&url).await.0 == 200 }
    })
    .await;
    stack.shutdown().await;
}
