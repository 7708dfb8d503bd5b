//! A minimal HTTP/1.1 client for probing the edge and health endpoints.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::wait::DEADLINE;

/// Sends one request (`Connection: close`) and returns status and body.
pub async fn request(base_url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let authority = base_url.trim_start_matches("http://").trim_end_matches('/');
    let exchange = async {
        let mut stream = TcpStream::connect(authority).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        response
    };
    let response = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("http timed out");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
