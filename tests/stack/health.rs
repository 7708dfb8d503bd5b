//! Liveness, readiness and `grpc.health.v1` on every service.

use switchboard_auth::{Jwk, KeyAlg};
use switchboard_tests::{
    DEADLINE, Stack,
    auth_server::{AuthServer, free_addr},
    http, wait_until,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_grpc_health_and_the_aggregator_is_ready() {
    let stack = Stack::start().await;
    // Watch streams kept open until the stack stops.
    let mut watches = Vec::new();
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
        let live = client
            .check(HealthCheckRequest {
                service: switchboard_proto::health::LIVENESS.into(),
            })
            .await
            .expect("liveness")
            .into_inner()
            .status;
        assert_eq!(live, ServingStatus::Serving as i32, "{url} liveness");

        // Watch on an unknown name: SERVICE_UNKNOWN, and the stream stays
        // open (the specification), where tonic-health answers NOT_FOUND.
        let mut unknown = client
            .watch(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await
            .expect("a stream, not an error")
            .into_inner();
        let first = unknown.message().await.expect("ok").expect("a message");
        assert_eq!(first.status, ServingStatus::ServiceUnknown as i32, "{url}");
        let more =
            tokio::time::timeout(std::time::Duration::from_millis(300), unknown.message()).await;
        assert!(more.is_err(), "{url}: the stream stayed open: {more:?}");
        watches.push((url.clone(), unknown));
        let mut ready = client
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("watch")
            .into_inner();
        let first = ready.message().await.expect("ok").expect("a message");
        assert_eq!(first.status, ServingStatus::Serving as i32, "{url}");
        watches.push((url.clone(), ready));
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
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    for group in ["auth", "signal"] {
        let dependency = &report["dependencies"][group];
        assert_eq!(dependency["status"], "serving", "{body}");
        let member = &dependency["members"][0];
        assert_eq!(member["status"], "serving", "{body}");
        assert!(member["since_unix_ms"].as_u64().is_some(), "{body}");
    }
    // Shutdown: each Watch says NOT_SERVING (the readiness one) and ends,
    // so a drain does not wait for its watchers.
    let stopping = tokio::spawn(stack.shutdown());
    for (url, mut stream) in watches {
        let end = tokio::time::timeout(DEADLINE, async {
            let mut last = None;
            while let Ok(Some(update)) = stream.message().await {
                last = Some(update.status);
            }
            last
        })
        .await
        .expect("the watch ended at shutdown");
        assert!(
            end.is_none() || end == Some(ServingStatus::NotServing as i32),
            "{url}: last status {end:?}"
        );
    }
    stopping.await.expect("stopped");
}

async fn edge_ready(url: &str) -> (u16, serde_json::Value) {
    let (status, body) = http::request(url, "GET", "/health/ready", "").await;
    (status, serde_json::from_str(&body).expect("json"))
}

/// Every join needs auth, so an edge that cannot reach auth is not ready —
/// and is again once auth is back. Liveness never depends on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_readiness_follows_auth() {
    let addr = free_addr();
    let auth = AuthServer::start(addr, Jwk::generate(KeyAlg::EdDsa, "k").expect("key"), None).await;
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

    auth.stop().await;
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

    let _auth =
        AuthServer::start(addr, Jwk::generate(KeyAlg::EdDsa, "k").expect("key"), None).await;
    wait_until("edge ready again with auth back", DEADLINE, || {
        let url = url.clone();
        async move { edge_ready(&url).await.0 == 200 }
    })
    .await;
    stack.shutdown().await;
}

/// The edge publishes auth's JWKS from a copy fetched at most once a
/// minute: anonymous requests do not each cost a gRPC call to auth, and
/// the document stays available while auth is briefly away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_is_served_from_the_edge_s_copy() {
    let addr = free_addr();
    let auth = AuthServer::start(addr, Jwk::generate(KeyAlg::EdDsa, "k").expect("key"), None).await;
    let stack = Stack::start_with(|config| config.edge.auth_url = format!("http://{addr}")).await;
    let (status, first) = http::request(&stack.edge_url, "GET", "/.well-known/jwks.json", "").await;
    assert_eq!(status, 200, "{first}");
    auth.stop().await;
    for _ in 0..20 {
        let (status, again) =
            http::request(&stack.edge_url, "GET", "/.well-known/jwks.json", "").await;
        assert_eq!((status, &again), (200, &first), "served from the copy");
    }
    stack.shutdown().await;
}
