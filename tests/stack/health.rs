//! Liveness, readiness and `grpc.health.v1` on every service.

use switchboard_tests::{DEADLINE, Stack, http, wait_until};
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
