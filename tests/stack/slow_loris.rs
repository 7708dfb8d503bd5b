//! Slow-loris: connections that never finish their HTTP request are closed
//! by the edge within its header-read timeout, while real clients carry on.

use std::time::{Duration, Instant};

use switchboard_proto::wire::Format;
use switchboard_tests::{Stack, WsClient, description};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const SLOW: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_never_finish_are_closed_within_the_header_timeout() {
    let stack = Stack::start_with(|c| c.edge.header_read_timeout = Duration::from_secs(1)).await;
    let addr = stack.edge_url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let tasks: Vec<_> = (0..SLOW)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut socket = TcpStream::connect(&addr).await.expect("connect");
                let (mut read, mut write) = socket.split();
                let request = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                let mut closed_by_server = None;
                let mut buf = [0u8; 512];
                let mut pace = tokio::time::interval(Duration::from_millis(100));
                // One byte every 100 ms, for at most 8 s: the request never
                // ends. The server must close the connection first.
                for (i, byte) in request
                    .iter()
                    .chain(std::iter::repeat(&b'a'))
                    .take(80)
                    .enumerate()
                {
                    tokio::select! {
                        n = read.read(&mut buf) => {
                            // EOF, a 408, or a reset: the server gave up on us.
                            let _ = n;
                            closed_by_server = Some(i);
                            break;
                        }
                        _ = pace.tick() => {}
                    }
                    if write.write_all(&[*byte]).await.is_err() {
                        closed_by_server = Some(i);
                        break;
                    }
                }
                closed_by_server
            })
        })
        .collect();

    // Meanwhile a real client joins and relays.
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "loris")).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    bob.join(&stack.token("bob", "loris")).await;
    alice.signal("bob", description(true, "v=0")).await;
    assert_eq!(bob.next_signal().await.from, "alice");

    let mut closed = 0;
    for task in tasks {
        if task.await.expect("slow client").is_some() {
            closed += 1;
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(closed, SLOW, "every slow request was closed by the edge");
    assert!(
        elapsed < Duration::from_secs(5),
        "closed within the 1 s header timeout (took {elapsed:?})"
    );
}
