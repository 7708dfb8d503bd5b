//! The gRPC servers (auth, signal) hold against hostile HTTP/2 peers: they
//! announce explicit limits (concurrent streams, header list size), and a
//! rapid-reset flood, a CONTINUATION flood and 10,000 streams on one
//! connection end that connection (or have its streams refused) while a
//! normal client's calls keep succeeding. Frames are written by hand over
//! TCP, so nothing in a client library smooths them.

use std::time::Duration;

use switchboard_tests::{DEADLINE, Stack};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A request head in HPACK: POST, http, /, :authority x (static table
/// indexes and one literal).
fn head() -> Vec<u8> {
    vec![0x83, 0x86, 0x84, 0x41, 0x01, b'x']
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// A raw HTTP/2 connection, preface and empty SETTINGS sent.
async fn connect(url: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr(url)).await.expect("connect");
    socket.write_all(PREFACE).await.expect("preface");
    socket
        .write_all(&frame(SETTINGS, 0, 0, &[]))
        .await
        .expect("settings");
    socket
}

/// Reads one frame: (type, flags, stream, payload); `None` at EOF.
async fn read_frame(socket: &mut (impl AsyncReadExt + Unpin)) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    socket.read_exact(&mut head).await.ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    socket.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], stream, payload))
}

/// The server's SETTINGS: (identifier, value) pairs.
async fn server_settings(url: &str) -> Vec<(u16, u32)> {
    let mut socket = connect(url).await;
    loop {
        let (kind, flags, _, payload) = tokio::time::timeout(DEADLINE, read_frame(&mut socket))
            .await
            .expect("settings in time")
            .expect("settings before EOF");
        if kind == SETTINGS && flags & 0x1 == 0 {
            return payload
                .chunks(6)
                .map(|c| {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                    )
                })
                .collect();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_servers_announce_their_http2_limits() {
    let stack = Stack::start().await;
    for url in [&stack.auth_url, &stack.signal_url] {
        let settings = server_settings(url).await;
        let value = |id: u16| settings.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
        assert_eq!(
            value(0x3),
            Some(128),
            "{url} MAX_CONCURRENT_STREAMS: {settings:?}"
        );
        assert_eq!(
            value(0x6),
            Some(16 * 1024),
            "{url} MAX_HEADER_LIST_SIZE: {settings:?}"
        );
    }
    stack.shutdown().await;
}

/// Writes `frames` (as fast as the server reads) while reading what it
/// answers; returns what ended the connection: a GOAWAY's error code, or
/// `None` for EOF/reset, and how many RST_STREAM REFUSED_STREAM came.
async fn flood(url: &str, frames: Vec<Vec<u8>>) -> (Option<u32>, usize) {
    let socket = connect(url).await;
    let (mut reader, mut writer) = socket.into_split();
    let writing = tokio::spawn(async move {
        for f in frames {
            if writer.write_all(&f).await.is_err() {
                return;
            }
        }
        // Keep the write half open: the server must end it, not us.
        std::future::pending::<()>().await;
    });
    let mut refused = 0;
    let ended = tokio::time::timeout(DEADLINE, async {
        loop {
            match read_frame(&mut reader).await {
                None => return None,
                Some((GOAWAY, _, _, payload)) => {
                    return Some(u32::from_be_bytes([
                        payload[4], payload[5], payload[6], payload[7],
                    ]));
                }
                Some((RST_STREAM, _, _, payload)) if payload == 7u32.to_be_bytes() => {
                    refused += 1;
                }
                Some(_) => {}
            }
        }
    })
    .await;
    writing.abort();
    (
        ended.unwrap_or_else(|_| panic!("{url}: the flooded connection was not ended")),
        refused,
    )
}

/// Health checks against `url` every 20 ms until `stop`; the slowest.
async fn steady_client(url: String, mut stop: tokio::sync::watch::Receiver<bool>) -> Duration {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    let mut slowest = Duration::ZERO;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let started = tokio::time::Instant::now();
        tokio::time::timeout(
            Duration::from_secs(2),
            client.check(HealthCheckRequest::default()),
        )
        .await
        .expect("a normal call within 2 s")
        .expect("a normal call succeeds");
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_floods_end_the_flooding_connection_and_others_carry_on() {
    let stack = Stack::start().await;
    for url in [stack.auth_url.clone(), stack.signal_url.clone()] {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let steady = tokio::spawn(steady_client(url.clone(), stopped));

        // Rapid reset: open a stream and cancel it, 5,000 times.
        let frames = (0..5_000u32)
            .flat_map(|i| {
                let id = 2 * i + 1;
                [
                    frame(HEADERS, END_HEADERS | END_STREAM, id, &head()),
                    frame(RST_STREAM, 0, id, &8u32.to_be_bytes()),
                ]
            })
            .collect();
        let (goaway, _) = flood(&url, frames).await;
        eprintln!("{url}: rapid reset ended with GOAWAY {goaway:?}");

        // CONTINUATION flood: one header block that never ends (32 MiB).
        let mut frames = vec![frame(HEADERS, 0, 1, &head())];
        frames.extend((0..2_048).map(|_| frame(CONTINUATION, 0, 1, &[0x40; 16 * 1024])));
        let (goaway, _) = flood(&url, frames).await;
        eprintln!("{url}: continuation flood ended with GOAWAY {goaway:?}");

        // 10,000 streams held open on one connection: beyond the limit
        // they are refused, or the connection ends.
        let frames = (0..10_000u32)
            .map(|i| frame(HEADERS, END_HEADERS, 2 * i + 1, &head()))
            .collect();
        let (goaway, refused) = flood(&url, frames).await;
        eprintln!("{url}: 10,000 streams: {refused} refused, ended with GOAWAY {goaway:?}");
        assert!(
            refused > 0 || goaway.is_some(),
            "{url}: streams beyond the limit were neither refused nor the connection ended"
        );

        let _ = stop.send(true);
        let slowest = steady.await.expect("steady client");
        eprintln!("{url}: slowest normal call during the floods {slowest:?}");
        assert!(slowest < Duration::from_secs(1), "{url}: {slowest:?}");
    }
    stack.shutdown().await;
}

/// Each gRPC server holds at most 4,096 connections: one more is closed at
/// accept, and a slot freed by a closed connection serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_server_closes_connections_over_its_cap() {
    let stack = Stack::start().await;
    let cap = switchboard_proto::grpc::MAX_CONNECTIONS;
    let addr = addr(&stack.auth_url);
    // The stack's own channels to auth (edge, signal, health) hold a few.
    let mut held = Vec::with_capacity(cap);
    let mut refused = None;
    for i in 0..cap + 16 {
        let mut socket = TcpStream::connect(&addr).await.expect("connect");
        // A connection over the cap is closed at once: its read ends.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(20), socket.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                refused = Some(i);
                break;
            }
            _ => held.push(socket),
        }
    }
    let refused = refused.expect("a connection over the cap was closed");
    assert!(
        refused + 16 >= cap && refused <= cap,
        "closed at connection {refused}, cap {cap}"
    );
    held.truncate(held.len() - 8);
    // Freed slots serve again: a normal call succeeds.
    switchboard_tests::wait_until("auth answers again", DEADLINE, || {
        let url = stack.auth_url.clone();
        async move {
            let Ok(channel) = tonic::transport::Endpoint::from_shared(url)
                .expect("url")
                .connect()
                .await
            else {
                return false;
            };
            HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .is_ok()
        }
    })
    .await;
    drop(held);
    stack.shutdown().await;
}
