//! Mutual TLS between services: a CA and certificates from `switchboard
//! certs generate`, and auth, signal, an edge and the health aggregator as
//! separate processes talking only over mTLS. A browser call crosses every
//! link; a backend's certificate reaches what its allow-list lets it; a
//! peer outside the list, a certificate of another CA and no certificate
//! are refused, each with its reason; the plaintext health port answers
//! health alone.

use std::{path::Path, time::Duration};

use switchboard_auth::{ApiKey, TokenRequest};
use switchboard_proto::{
    grpc::Dial,
    health_pb::{HealthCheckRequest, health_client::HealthClient},
    mtls::{Mtls, MtlsFiles, PeerName},
    pb::{self, room_service_client::RoomServiceClient},
    wire::Format,
};
use switchboard_tests::{DEADLINE, WsClient, description, http, process::Process, wait_until};
use tonic::Code;

use crate::cluster::{API, BIN, signing_key_file, token};

fn certs(dir: &Path, names: &str) {
    let out = std::process::Command::new(BIN)
        .args(["certs", "generate", "--out"])
        .arg(dir)
        .args(["--name", names, "--days", "2"])
        .output()
        .expect("certs generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn identity(dir: &Path, name: &str) -> Vec<String> {
    let path = |file: String| dir.join(file).to_str().expect("path").to_owned();
    vec![
        "--mtls-ca".into(),
        path("ca.pem".into()),
        "--mtls-cert".into(),
        path(format!("{name}.pem")),
        "--mtls-key".into(),
        path(format!("{name}.key")),
    ]
}

fn load(dir: &Path, name: &str) -> std::sync::Arc<Mtls> {
    Mtls::load(&MtlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    })
    .expect("identity")
}

/// A TLS 1.3 client trusting `ca`, presenting `dir/name.pem` (none for
/// ""), that completes its side of the handshake with `url` and reads: the
/// server's verdict, as text.
async fn handshake_as(ca: &Path, dir: &Path, name: &str, url: &str) -> String {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("versions")
    .with_root_certificates(roots);
    let mut config = if name.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))
            .expect("chain")
            .collect::<Result<Vec<_>, _>>()
            .expect("chain");
        let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).expect("key");
        builder.with_client_auth_cert(chain, key).expect("pair")
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let addr = url.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let server = rustls::pki_types::ServerName::try_from("signal").expect("name");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut tls = match connector.connect(server, tcp).await {
        Ok(tls) => tls,
        Err(err) => return format!("{err:?}"),
    };
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(DEADLINE, tls.read(&mut buf)).await {
        Ok(Err(err)) => format!("{err:?}"),
        other => format!("the server answered: {other:?}"),
    }
}

async fn start(args: Vec<String>, services: &[&str]) -> Process {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start_listening(BIN, &args, &[], services).await
}

fn admin_token() -> String {
    let api = ApiKey::new(API.0, API.1).expect("api key");
    let request = TokenRequest {
        identity: "backend".into(),
        grants: pb::Grants {
            room: "*".into(),
            room_list: true,
            ..Default::default()
        },
        ttl: Duration::from_secs(600),
        ..Default::default()
    };
    api.mint(&request.to_claims(API.0, "switchboard").expect("claims"))
        .expect("token")
}

async fn list_rooms(
    url: &str,
    mtls: &Mtls,
    peer: &PeerName,
) -> Result<pb::ListRoomsResponse, tonic::Status> {
    let channel = Dial::new(url, Some(mtls), peer)
        .expect("dial")
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
    let mut request = tonic::Request::new(pb::ListRoomsRequest::default());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", admin_token()).parse().expect("ascii"),
    );
    RoomServiceClient::new(channel)
        .list_rooms(request)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_talk_only_over_mutual_tls_and_each_refusal_says_why() {
    let dir = std::env::temp_dir().join(format!("sb-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    certs(&dir, "auth,signal,edge,health,backend");
    // A second run reuses the CA: a peer of the same CA, on no allow-list.
    certs(&dir, "intruder");
    // Another CA's "edge".
    let other = dir.join("other");
    certs(&other, "edge");
    let key = signing_key_file(&dir);
    let api = format!("{}:{}", API.0, API.1);
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let auth = start(
        [
            s(&[
                "auth",
                "--listen",
                "127.0.0.1:0",
                "--grpc-health-listen",
                "127.0.0.1:0",
            ]),
            s(&[
                "--signing-key",
                key.to_str().expect("path"),
                "--api-key",
                &api,
            ]),
            identity(&dir, "auth"),
        ]
        .concat(),
        &["auth", "grpc-health"],
    )
    .await;
    let auth_url = auth.url("auth").to_owned();
    assert!(auth_url.starts_with("https://"), "{auth_url}");
    let signal = start(
        [
            s(&["signal", "--listen", "127.0.0.1:0", "--auth-url", &auth_url]),
            s(&["--api-key", &api, "--mtls-allow", "edge,health,backend"]),
            identity(&dir, "signal"),
        ]
        .concat(),
        &["signal"],
    )
    .await;
    let signal_url = signal.url("signal").to_owned();
    let edge = start(
        [
            s(&[
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--signal-url",
                &signal_url,
            ]),
            s(&["--auth-url", &auth_url, "--service-key", &api]),
            identity(&dir, "edge"),
        ]
        .concat(),
        &["edge"],
    )
    .await;
    let health = start(
        [
            s(&["health", "--listen", "127.0.0.1:0"]),
            s(&["--target", &format!("auth={auth_url}#switchboard.v1.Auth")]),
            s(&[
                "--target",
                &format!("signal={signal_url}#switchboard.v1.Signal"),
            ]),
            identity(&dir, "health"),
        ]
        .concat(),
        &["health"],
    )
    .await;

    // Health reaches auth and signal over mTLS; the edge is ready once its
    // lanes to signal are up.
    for url in [health.url("health"), edge.url("edge")] {
        let url = url.to_owned();
        wait_until("ready over mTLS", DEADLINE, || {
            let url = url.clone();
            async move { http::request(&url, "GET", "/health/ready", "").await.0 == 200 }
        })
        .await;
    }

    // A call: edge → auth (verify), edge → signal (relay), signal → auth.
    let ws = format!("{}/ws", edge.url("edge").replacen("http://", "ws://", 1));
    let mut alice = WsClient::connect(&ws, Format::Json).await;
    alice.join(&token("alice", "mtls")).await;
    let mut bob = WsClient::connect(&ws, Format::Binary).await;
    bob.join(&token("bob", "mtls")).await;
    alice.signal("bob", description(true, "v=0\r\n")).await;
    assert_eq!(bob.next_signal().await.from, "alice");

    // A backend on signal's list reaches RoomService; auth does not list it.
    let backend = load(&dir, "backend");
    let rooms = list_rooms(&signal_url, &backend, &PeerName::signal())
        .await
        .expect("a listed backend is answered");
    assert!(rooms.rooms.iter().any(|r| r.name == "mtls"), "{rooms:?}");
    let mut to_auth = pb::auth_client::AuthClient::new(
        Dial::new(&auth_url, Some(&backend), &PeerName::auth())
            .expect("dial")
            .connect()
            .await
            .expect("the handshake itself succeeds: same CA"),
    );
    let refused = to_auth
        .verify_token(pb::VerifyTokenRequest {
            token: token("alice", "mtls"),
        })
        .await
        .expect_err("backend is not on auth's list");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("(edge, signal, health)"),
        "the refusal names the list: {}",
        refused.message()
    );

    // The same CA, a name on no list.
    let intruder = load(&dir, "intruder");
    let refused = list_rooms(&signal_url, &intruder, &PeerName::signal())
        .await
        .expect_err("intruder");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("(edge, health, backend)"),
        "{}",
        refused.message()
    );

    // Another CA's certificate fails the handshake (signal refuses it).
    let stranger = Mtls::load(&MtlsFiles {
        ca: dir.join("ca.pem"),
        cert: other.join("edge.pem"),
        key: other.join("edge.key"),
    });
    assert!(
        stranger
            .expect_err("a pair of another CA is refused at load")
            .to_string()
            .contains("not a client certificate of --mtls-ca"),
    );
    // Trusting signal's CA but presenting another CA's certificate: signal
    // refuses it in the handshake (TLS 1.3: the client hears it on its
    // first read).
    let refused = handshake_as(&dir.join("ca.pem"), &other, "edge", &signal_url).await;
    assert!(
        refused.contains("UnknownCA") || refused.contains("BadCertificate"),
        "{refused}"
    );
    // And no certificate at all.
    let refused = handshake_as(&dir.join("ca.pem"), &other, "", &signal_url).await;
    assert!(refused.contains("CertificateRequired"), "{refused}");
    // The client side: a server of another CA is not trusted.
    let stranger = load(&other, "edge");
    let refused = list_rooms(&signal_url, &stranger, &PeerName::signal())
        .await
        .expect_err("another CA");
    assert!(
        refused.message().contains("UnknownIssuer"),
        "{}",
        refused.message()
    );

    // A client that dials signal's address expecting auth refuses it: the
    // server's certificate names the service, whatever the address.
    let wrong = list_rooms(&signal_url, &backend, &PeerName::auth())
        .await
        .expect_err("signal is not auth");
    assert!(
        wrong.message().contains("NotValidForName"),
        "{}",
        wrong.message()
    );

    // Plaintext to the mTLS port is not served.
    let plain = signal_url.replacen("https://", "http://", 1);
    let mut plain = pb::room_service_client::RoomServiceClient::new(
        tonic::transport::Endpoint::from_shared(plain)
            .expect("url")
            .connect_lazy(),
    );
    let refused = plain
        .list_rooms(pb::ListRoomsRequest::default())
        .await
        .expect_err("plaintext");
    // The server speaks TLS back (an alert), which is no HTTP/2: the call
    // never reaches a service (which would answer UNAUTHENTICATED: no token).
    assert!(
        !matches!(
            refused.code(),
            Code::Unauthenticated | Code::PermissionDenied
        ),
        "{refused:?}"
    );

    // The plaintext health port: health, and nothing else.
    let health_port = tonic::transport::Endpoint::from_shared(auth.url("grpc-health").to_owned())
        .expect("url")
        .connect()
        .await
        .expect("plaintext health port");
    let serving = HealthClient::new(health_port.clone())
        .check(HealthCheckRequest {
            service: "switchboard.v1.Auth".into(),
        })
        .await
        .expect("health over plaintext");
    assert_eq!(serving.into_inner().status, 1, "SERVING");
    let refused = pb::auth_client::AuthClient::new(health_port)
        .verify_token(pb::VerifyTokenRequest {
            token: token("alice", "mtls"),
        })
        .await
        .expect_err("not health");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("grpc.health.v1 only"),
        "{}",
        refused.message()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
