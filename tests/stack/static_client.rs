//! The client the edge serves carries the headers that keep a page holding
//! tokens safe: a Content-Security-Policy with no foreign script, no
//! framing, no referrer, no sniffing.

use switchboard_tests::Stack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_is_served_with_its_security_headers() {
    let dir = std::env::temp_dir().join(format!("sb-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("index.html"), "<!doctype html><title>app</title>").expect("write");
    let stack = Stack::start_with(|config| config.edge.static_dir = Some(dir.clone())).await;
    let authority = stack.edge_url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    tcp.write_all(
        format!("GET / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut response = String::new();
    tokio::time::timeout(
        switchboard_tests::DEADLINE,
        tcp.read_to_string(&mut response),
    )
    .await
    .expect("answered")
    .expect("read");
    let head = response.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{response}");
    for header in [
        "content-security-policy: default-src 'self'; script-src 'self' 'unsafe-inline';",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(header), "missing {header:?} in\n{response}");
    }
    // Plain HTTP (loopback, development): no HSTS promise.
    assert!(!head.contains("strict-transport-security"), "{response}");
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
