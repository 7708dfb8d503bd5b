//! The edge terminates TLS: WSS works end to end with a certificate the
//! client trusts; plain HTTP on the TLS port gets nowhere.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use switchboard_proto::{pb, wire::Format};
use switchboard_tests::Stack;
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_the_edge_with_its_own_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let dir = std::env::temp_dir().join(format!("sb-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    let stack =
        Stack::start_with(|config| config.edge.tls = Some((cert_path.clone(), key_path.clone())))
            .await;
    let addr = stack.edge_url.trim_start_matches("http://").to_owned();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.cert.der().to_vec()))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(&addr).await.expect("connect");
    let tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");

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
