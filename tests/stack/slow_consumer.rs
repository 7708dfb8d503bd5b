//! A client that stops reading while its room is busy is closed as a slow
//! consumer — only it — and everyone else keeps getting their messages.

use switchboard_proto::{pb::server_message::Message as Out, wire::Format};
use switchboard_tests::{Stack, WsClient, description};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_closed_alone() {
    let stack = Stack::start_with(|config| {
        config.edge.rate = switchboard_edge::RateLimit {
            per_second: 1_000_000,
            burst: 1_000_000,
        };
    })
    .await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut stalled = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "busy")).await;
    bob.join(&stack.token("bob", "busy")).await;
    stalled.join(&stack.token("stalled", "busy")).await;

    // 8 KiB offers to the stalled reader until the kernel buffers, the
    // socket's write buffer and the edge's queue are all full; one to bob
    // every 100, which bob reads as they come.
    let sdp = "a".repeat(8 * 1024);
    let mut to_bob = 0;
    for i in 0..4_000 {
        alice.signal("stalled", description(true, &sdp)).await;
        if i % 100 == 0 {
            alice
                .signal("bob", description(true, &format!("bob-{to_bob}")))
                .await;
            let got = bob
                .recv_until(|m| match m {
                    Out::Signal(s) => Some(s.kind.clone()),
                    _ => None,
                })
                .await;
            assert_eq!(
                got,
                Some(description(true, &format!("bob-{to_bob}"))),
                "bob kept up while the other stalled"
            );
            to_bob += 1;
        }
    }
    // The stalled reader finally reads: what was buffered, then the close.
    let closed = stalled.closed().await;
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert!(closed.reason.starts_with("slow_consumer"), "{closed:?}");
    // Alice and bob are still fine.
    alice.signal("bob", description(true, "after")).await;
    let got = bob.next_signal().await.kind;
    assert_eq!(got, Some(description(true, "after")));
    stack.shutdown().await;
}
