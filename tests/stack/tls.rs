//! The edge terminates TLS: WSS works end to end with a certificate the
//! client trusts; plain HTTP on the TLS port gets nowhere.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use switchboard_proto::{pb, wire::Format};
use switchboard_tests::Stack;
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

/// `pair`'s certificate and key as PEM files in a directory of this test
/// process named `name`: (the directory, the certificate, the key).
fn write_pair(
    name: &str,
    pair: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, pair.cert.pem()).expect("write cert");
    std::fs::write(&key_path, pair.signing_key.serialize_pem()).expect("write key");
    (dir, cert_path, key_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_the_edge_with_its_own_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (dir, cert_path, key_path) = write_pair("sb-tls", &cert);
    let stack =
        Stack::start_with(|config| config.edge.tls = Some((cert_path.clone(), key_path.clone())))
            .await;
    let addr = stack.edge_url.trim_start_matches("http://").to_owned();

    let (tls, _) = connect_tls(&addr, &[&cert]).await;

    let port = addr.rsplit(':').next().expect("port");
    let mut request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("websocket over tls");
    let join = pb::ClientMessage {
        id: 1,
        seq: 0,
        ack: 0,
        message: Some(pb::client_message::Message::Join(Box::new(pb::Join {
            token: stack.token("secure", "r1"),
            ..Default::default()
        }))),
    };
    let switchboard_proto::wire::EncodedFrame::Text(text) =
        switchboard_proto::wire::encode_client(Format::Json, &join)
    else {
        panic!("json is text");
    };
    use futures_util::{SinkExt, StreamExt};
    ws.send(Message::text(text)).await.expect("send");
    let reply = ws.next().await.expect("frame").expect("ok");
    let reply = switchboard_proto::wire::decode_server(
        Format::Json,
        reply.to_text().expect("text").as_bytes(),
    )
    .expect("decode");
    assert!(
        matches!(reply.message, Some(pb::server_message::Message::Joined(_))),
        "{reply:?}"
    );

    // Plain HTTP to the TLS port: the handshake fails, no response.
    let mut plain = TcpStream::connect(&addr).await.expect("connect");
    plain
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut response = Vec::new();
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(
        switchboard_tests::DEADLINE,
        plain.read_to_end(&mut response),
    )
    .await;
    assert!(
        !String::from_utf8_lossy(&response).contains("live"),
        "plain HTTP must not be served"
    );
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TLS connection to `addr` trusting `roots`: the stream, and the
/// certificate the edge presented.
async fn connect_tls(
    addr: &str,
    roots: &[&rcgen::CertifiedKey<rcgen::KeyPair>],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    connect_tls_with(addr, roots, &[], None).await
}

/// As [`connect_tls`], offering `alpn` and only `version` if given.
async fn connect_tls_with(
    addr: &str,
    roots: &[&rcgen::CertifiedKey<rcgen::KeyPair>],
    alpn: &[&[u8]],
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(CertificateDer::from(root.cert.der().to_vec()))
            .expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = match version {
        Some(version) => builder.with_protocol_versions(&[version]),
        None => builder.with_safe_default_protocol_versions(),
    };
    let mut config = builder
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let presented = tls.get_ref().1.peer_certificates().expect("certificate")[0].clone();
    (tls, presented)
}

/// The edge's certificate files are replaced (a renewal): new connections
/// get the new certificate, the session opened before it carries on; a
/// broken pair is not taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_dropping_sessions() {
    use futures_util::{SinkExt, StreamExt};
    let old = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let new = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (dir, cert_path, key_path) = write_pair("sb-tls-reload", &old);
    let stack = Stack::start_with(|config| {
        config.edge.tls = Some((cert_path.clone(), key_path.clone()));
        config.edge.tls_reload_every = std::time::Duration::from_millis(50);
    })
    .await;
    let addr = stack.edge_url.trim_start_matches("http://").to_owned();
    let port = addr.rsplit(':').next().expect("port").to_owned();

    // A session over the old certificate.
    let (tls, presented) = connect_tls(&addr, &[&old, &new]).await;
    assert_eq!(presented.as_ref(), old.cert.der().as_ref());
    let mut request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("websocket over tls");
    let send = |id: u32, message: pb::client_message::Message| {
        let frame = pb::ClientMessage {
            id,
            message: Some(message),
            ..Default::default()
        };
        let switchboard_proto::wire::EncodedFrame::Text(text) =
            switchboard_proto::wire::encode_client(Format::Json, &frame)
        else {
            panic!("json is text");
        };
        Message::text(text)
    };
    ws.send(send(
        1,
        pb::client_message::Message::Join(Box::new(pb::Join {
            token: stack.token("renewed", "r1"),
            ..Default::default()
        })),
    ))
    .await
    .expect("send");
    ws.next().await.expect("joined").expect("ok");

    // A half-written pair (the new certificate, the old key) is not taken.
    std::fs::write(&cert_path, new.cert.pem()).expect("write cert");
    let failed = "switchboard_tls_reloads_total{outcome=\"failed\"}";
    let health = stack.health_url.clone();
    switchboard_tests::wait_until("the broken pair tried", switchboard_tests::DEADLINE, || {
        let health = health.clone();
        async move {
            switchboard_tests::metrics::Scrape::of(&health)
                .await
                .value(failed)
                >= 1.0
        }
    })
    .await;
    let (_, presented) = connect_tls(&addr, &[&old, &new]).await;
    assert_eq!(
        presented.as_ref(),
        old.cert.der().as_ref(),
        "a certificate without its key is not served"
    );
    // The key arrives: new connections get the new certificate.
    std::fs::write(&key_path, new.signing_key.serialize_pem()).expect("write key");
    switchboard_tests::wait_until(
        "the renewed certificate served",
        switchboard_tests::DEADLINE,
        || {
            let addr = addr.clone();
            let (old, new) = (&old, &new);
            async move {
                let (_, presented) = connect_tls(&addr, &[old, new]).await;
                presented.as_ref() == new.cert.der().as_ref()
            }
        },
    )
    .await;
    // The session opened before the renewal carries on.
    ws.send(send(
        2,
        pb::client_message::Message::Ping(pb::Ping { nonce: 7 }),
    ))
    .await
    .expect("send");
    let reply = ws.next().await.expect("pong").expect("ok");
    let reply = switchboard_proto::wire::decode_server(
        Format::Json,
        reply.to_text().expect("text").as_bytes(),
    )
    .expect("decode");
    assert!(
        matches!(
            reply.message,
            Some(pb::server_message::Message::Pong(pb::Pong { nonce: 7 }))
        ),
        "{reply:?}"
    );
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// ALPN on the HTTPS port: a client offering h2 gets HTTP/2 (files,
/// health), one offering only http/1.1 gets HTTP/1.1 and its WebSocket;
/// TLS 1.3 unless the client can only do 1.2, which gets an AEAD suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_port_speaks_http2_and_http1_by_alpn() {
    use http_body_util::BodyExt as _;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (dir, cert_path, key_path) = write_pair("sb-tls-alpn", &cert);
    let stack = Stack::start_with(|config| {
        config.edge.tls = Some((cert_path.clone(), key_path.clone()));
        config.edge.header_read_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let addr = stack.edge_url.trim_start_matches("http://").to_owned();

    // h2 offered first: HTTP/2, TLS 1.3.
    let (tls, _) = connect_tls_with(&addr, &[&cert], &[b"h2", b"http/1.1"], None).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("http/2 handshake");
    let driver = tokio::spawn(conn);
    let response = h2
        .send_request(
            hyper::Request::get("https://localhost/health/live")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request"),
        )
        .await
        .expect("response over http/2");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(!body.is_empty());
    // Idle past the header timeout, the connection is closed by the edge
    // (GOAWAY), though the client would keep it (it answers pings).
    let ended = tokio::time::timeout(switchboard_tests::DEADLINE, driver).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "an idle HTTP/2 connection is closed: {ended:?}"
    );
    let again = h2
        .send_request(
            hyper::Request::get("https://localhost/health/live")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request"),
        )
        .await;
    assert!(again.is_err(), "the connection is gone");

    // Only http/1.1 offered: HTTP/1.1, and the WebSocket works.
    let (tls, _) = connect_tls_with(&addr, &[&cert], &[b"http/1.1"], None).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let port = addr.rsplit(':').next().expect("port");
    let mut request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    tokio_tungstenite::client_async(request, tls)
        .await
        .expect("websocket over http/1.1");

    // A TLS 1.2 client: an ECDHE AEAD suite.
    let (tls, _) = connect_tls_with(
        &addr,
        &[&cert],
        &[b"http/1.1"],
        Some(&rustls::version::TLS12),
    )
    .await;
    let suite = format!(
        "{:?}",
        tls.get_ref().1.negotiated_cipher_suite().expect("suite")
    );
    assert!(
        suite.contains("ECDHE") && (suite.contains("GCM") || suite.contains("CHACHA20")),
        "{suite}"
    );
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
