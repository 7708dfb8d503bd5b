//! Circuit breakers on the edge's calls to auth: a hung auth (it accepts
//! and never answers) costs the first joins their deadline each, then the
//! breaker opens and joins fail at once with a retryable `unavailable`,
//! the breaker's state in the metrics.

use std::time::{Duration, Instant};

use switchboard_auth::{Jwk, KeyAlg};
use switchboard_proto::{
    auth_client::{BREAKER_FAILURES, BREAKER_OPEN_FOR},
    pb::{self, client_message::Message as In},
    wire::Format,
};
use switchboard_tests::{
    Stack, WsClient,
    auth_server::{AuthServer, free_addr},
    metrics::Scrape,
};

/// A join on a fresh connection: its error and how long it took.
async fn refused_join(stack: &Stack) -> (pb::Error, Duration) {
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let start = Instant::now();
    client
        .send(In::Join(Box::new(pb::Join {
            token: stack.token("alice", "r1"),
            ..Default::default()
        })))
        .await;
    let err = client.next_error().await;
    (err, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_auth_opens_the_edge_s_breaker_and_joins_fail_fast() {
    // The edge's auth serves until the stack is up, then is replaced on
    // its address by a listener that accepts, holds and never answers:
    // every call to it times out.
    let addr = free_addr();
    let key = Jwk::generate(KeyAlg::EdDsa, "k").expect("key");
    let auth = AuthServer::start(addr, key, None).await;
    let stack = Stack::start_with(|config| config.edge.auth_url = format!("http://{addr}")).await;
    auth.stop().await;
    let hole = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    for _ in 0..BREAKER_FAILURES {
        let (err, took) = refused_join(&stack).await;
        assert_eq!(
            (
                err.code().as_str_name(),
                err.message.as_str(),
                err.retryable
            ),
            ("unavailable", "auth did not answer in time", true)
        );
        assert!(
            took >= Duration::from_secs(2),
            "waited its deadline: {took:?}"
        );
    }
    let (err, took) = refused_join(&stack).await;
    assert_eq!(
        (err.code().as_str_name(), err.message.as_str()),
        ("unavailable", "auth is not answering; try again shortly")
    );
    assert!(took < Duration::from_millis(500), "failed fast: {took:?}");
    assert!(took < BREAKER_OPEN_FOR);
    let scrape = Scrape::of(&stack.health_url).await;
    assert_eq!(
        scrape.value(r#"switchboard_breaker_open{guard="auth"}"#),
        1.0
    );
    stack.shutdown().await;
}
