//! `/metrics` scraped over HTTP from a running stack: the counts match what
//! the test did (each test is its own process under nextest, so the
//! process's registry holds only this test's traffic).

use switchboard_proto::{
    pb::{self, client_message::Message as In},
    wire::Format,
};
use switchboard_tests::{Stack, WsClient, candidate, metrics::Scrape, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_counts_match_what_clients_did() {
    let stack = Stack::start_with(|config| {
        config.signal.join.max_participants = 2;
    })
    .await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Binary).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;
    for i in 0..3 {
        bob.signal(
            "alice",
            candidate(&format!("candidate:{i} 1 udp 1 10.0.0.1 9 typ host")),
        )
        .await;
    }
    for _ in 0..3 {
        alice.next_signal().await;
    }
    // A third is refused: the room holds 2.
    let mut carol = WsClient::connect(&stack.ws_url(), Format::Json).await;
    carol
        .send(In::Join(Box::new(pb::Join {
            token: stack.token("carol", "r1"),
            ..Default::default()
        })))
        .await;
    assert_eq!(carol.next_error().await.code().as_str_name(), "room_full");
    // An upgrade from a foreign origin.
    let refused = WsClient::connect_with(
        &stack.ws_url(),
        Some("https://evil.example"),
        None,
        Format::Json,
    )
    .await;
    assert!(refused.is_err());

    let scrape = Scrape::of(&stack.health_url).await;
    for (series, expected) in [
        (r#"switchboard_signal_joins_total{outcome="joined"}"#, 2.0),
        (
            r#"switchboard_signal_joins_total{outcome="room_full"}"#,
            1.0,
        ),
        (
            r#"switchboard_edge_messages_total{direction="in",kind="join"}"#,
            3.0,
        ),
        (
            r#"switchboard_edge_messages_total{direction="in",kind="signal"}"#,
            3.0,
        ),
        (r#"switchboard_signal_relayed_signals_total"#, 3.0),
        (
            r#"switchboard_edge_upgrades_total{outcome="accepted"}"#,
            3.0,
        ),
        (
            r#"switchboard_edge_upgrades_total{outcome="origin_not_allowed"}"#,
            1.0,
        ),
        (r#"switchboard_signal_sessions"#, 2.0),
        // Each join is verified twice: by the edge, then by signal.
        (
            r#"switchboard_auth_token_verifications_total{outcome="valid"}"#,
            6.0,
        ),
        (r#"switchboard_edge_closes_total{code="4429"}"#, 1.0),
    ] {
        assert_eq!(scrape.value(series), expected, "{series}\n{}", scrape.text);
    }
    assert!(
        scrape.value(r#"switchboard_edge_messages_total{direction="out",kind="signal"}"#) >= 3.0
    );
    // Carol's connection ended (refused join): two remain open.
    wait_until(
        "carol's socket counted closed",
        switchboard_tests::DEADLINE,
        || async {
            Scrape::of(&stack.health_url)
                .await
                .value("switchboard_edge_connections")
                == 2.0
        },
    )
    .await;
    // gRPC servers count their calls (health checks of the aggregator).
    assert!(
        scrape
            .text
            .contains(r#"switchboard_grpc_server_requests_total{method="/grpc.health.v1.Health/Watch",code="0"}"#),
        "{}",
        scrape.text
    );
    stack.shutdown().await;
}
