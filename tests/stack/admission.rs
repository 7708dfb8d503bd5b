//! Per-address admission at the upgrade: a cap on open WebSockets and a
//! rate of new ones per client address, refused with 503 + Retry-After or
//! 429 and counted; other addresses and existing sessions are unaffected;
//! X-Forwarded-For counts only from a trusted proxy. Every client here has
//! a valid Origin, so nothing but admission can refuse it.

use std::net::IpAddr;

use switchboard_proto::wire::Format;
use switchboard_tests::{DEADLINE, SocketOptions, Stack, WsClient, description, wait_until};

fn from(source: &str) -> SocketOptions {
    SocketOptions {
        source: Some(source.parse::<IpAddr>().expect("ip")),
        ..SocketOptions::default()
    }
}

fn forwarded(hops: &str) -> SocketOptions {
    SocketOptions {
        forwarded_for: Some(hops.into()),
        ..SocketOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_at_its_cap_is_refused_with_503_and_others_carry_on() {
    let stack = Stack::start_with(|config| {
        config.edge.admission.per_ip = 4;
        config.edge.admission.per_ip_rate.burst = 1000;
    })
    .await;
    let url = stack.ws_url();
    let mut held = Vec::new();
    for i in 0..4 {
        let mut client = WsClient::connect_socket(&url, &from("127.0.0.1"), Format::Json)
            .await
            .expect("under the cap");
        client.join(&stack.token(&format!("p{i}"), "r1")).await;
        held.push(client);
    }
    let refused = WsClient::connect_socket(&url, &from("127.0.0.1"), Format::Json)
        .await
        .err()
        .expect("the fifth from one address is refused");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.retry_after.as_deref(), Some("5"), "{refused:?}");
    assert!(
        refused.body.contains("\"unavailable\"") && refused.body.contains("this address"),
        "{refused:?}"
    );
    assert_eq!(stack.admission.refused(), (1, 0));

    // Another address is admitted, joins and hears the room.
    let mut other = WsClient::connect_socket(&url, &from("127.0.0.2"), Format::Json)
        .await
        .expect("another address");
    other.join(&stack.token("other", "r1")).await;
    held[0].signal("other", description(true, "v=0 hi")).await;
    assert_eq!(other.next_signal().await.from, "p0");

    // A closed socket gives its address the slot back.
    held.pop().expect("held").close().await;
    wait_until("the address is admitted again", DEADLINE, || {
        let url = url.clone();
        async move {
            WsClient::connect_socket(&url, &from("127.0.0.1"), Format::Json)
                .await
                .is_ok()
        }
    })
    .await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_opening_too_fast_is_refused_with_429() {
    let stack = Stack::start_with(|config| {
        config.edge.admission.per_ip_rate = switchboard_edge::RateLimit {
            per_second: 1,
            burst: 3,
        };
    })
    .await;
    let url = stack.ws_url();
    let mut admitted = Vec::new();
    for _ in 0..3 {
        admitted.push(
            WsClient::connect_socket(&url, &from("127.0.0.3"), Format::Json)
                .await
                .expect("within the burst"),
        );
    }
    // Beyond the burst at 1/s: refused (a token may come back meanwhile,
    // so take the first refusal of a few quick attempts).
    let mut refusal = None;
    for _ in 0..5 {
        match WsClient::connect_socket(&url, &from("127.0.0.3"), Format::Json).await {
            Ok(client) => admitted.push(client),
            Err(refused) => {
                refusal = Some(refused);
                break;
            }
        }
    }
    let refused = refusal.expect("opening too fast is refused");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.retry_after.as_deref(), Some("1"), "{refused:?}");
    assert!(refused.body.contains("\"rate_limited\""), "{refused:?}");
    assert_eq!(stack.admission.refused(), (0, 1));
    // The rate is per address.
    WsClient::connect_socket(&url, &from("127.0.0.4"), Format::Json)
        .await
        .expect("another address");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    // Untrusted (the default): the header is ignored, the peer is counted.
    let stack = Stack::start_with(|config| {
        config.edge.admission.per_ip = 2;
        config.edge.admission.per_ip_rate.burst = 1000;
    })
    .await;
    let url = stack.ws_url();
    let _a = WsClient::connect_socket(&url, &forwarded("198.51.100.1"), Format::Json)
        .await
        .expect("first");
    let _b = WsClient::connect_socket(&url, &forwarded("198.51.100.2"), Format::Json)
        .await
        .expect("second");
    let refused = WsClient::connect_socket(&url, &forwarded("198.51.100.3"), Format::Json)
        .await
        .err()
        .expect("all three are the peer 127.0.0.1");
    assert_eq!(refused.status, 503);
    stack.shutdown().await;

    // Behind a trusted proxy (127.0.0.1 here): each forwarded client is
    // counted on its own.
    let stack = Stack::start_with(|config| {
        config.edge.admission.per_ip = 2;
        config.edge.admission.per_ip_rate.burst = 1000;
        config.edge.admission.trusted_proxies = vec!["127.0.0.0/8".parse().expect("cidr")];
    })
    .await;
    let url = stack.ws_url();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            WsClient::connect_socket(&url, &forwarded("198.51.100.1"), Format::Json)
                .await
                .expect("under the cap"),
        );
    }
    let refused = WsClient::connect_socket(&url, &forwarded("198.51.100.1"), Format::Json)
        .await
        .err()
        .expect("the forwarded client is at its cap");
    assert_eq!(refused.status, 503);
    // A client cannot pick its address by prepending to the header: the
    // nearest untrusted hop counts.
    let spoofed =
        WsClient::connect_socket(&url, &forwarded("203.0.113.7, 198.51.100.1"), Format::Json)
            .await
            .err()
            .expect("still 198.51.100.1");
    assert_eq!(spoofed.status, 503);
    WsClient::connect_socket(&url, &forwarded("198.51.100.2"), Format::Json)
        .await
        .expect("another forwarded client");
    stack.shutdown().await;
}

/// The edge's session cap: past it an upgrade is refused with 503, code
/// `unavailable` and Retry-After (reconnect, to be placed elsewhere), the
/// sessions it holds carry on, and a freed place is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_edge_refuses_new_sessions_with_a_reconnect_hint() {
    let stack = Stack::start_with(|config| config.edge.max_sessions = Some(2)).await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;
    let origin = stack.edge_url.clone();
    let refused = WsClient::connect_with(&stack.ws_url(), Some(&origin), None, Format::Json)
        .await
        .err()
        .expect("refused at the cap");
    assert_eq!(
        (refused.status, refused.retry_after.as_deref()),
        (503, Some("1"))
    );
    assert!(
        refused.body.contains("\"unavailable\"") && refused.body.contains("maximum of sessions"),
        "{}",
        refused.body
    );
    // Those inside are unaffected.
    alice.signal("bob", description(true, "v=0 inside")).await;
    assert_eq!(bob.next_signal().await.from, "alice");
    // A place frees when a session ends.
    bob.close().await;
    switchboard_tests::wait_until("a place is free", switchboard_tests::DEADLINE, || {
        let (url, origin) = (stack.ws_url(), origin.clone());
        async move {
            WsClient::connect_with(&url, Some(&origin), None, Format::Json)
                .await
                .is_ok()
        }
    })
    .await;
    stack.shutdown().await;
}
