//! The application's join hook: a real gRPC JoinHook server started here,
//! asked by signal before every join. It refuses, changes (name,
//! attributes, permissions), or fails; failing, the configured mode
//! decides, and the breaker stops asking it for a while.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use switchboard_proto::{
    pb::{
        self,
        join_hook_server::{JoinHook, JoinHookServer},
        server_message::Message as Out,
    },
    service_credential::ServiceCredential,
    wire::Format,
};
use switchboard_signal::join_hook::{FailureMode, JoinHookConfig};
use switchboard_tests::{Stack, StackConfig, WsClient, description};
use tonic::{Request, Response, Status};

const HOOK_KEY: &str = "signal-to-app";
const HOOK_SECRET: &str = "join-hook-secret-0123456789-abcdefghijkl";

/// The application's side: decides by identity, records what it was asked.
#[derive(Clone, Default)]
struct App {
    asked: Arc<Mutex<Vec<pb::CheckJoinRequest>>>,
    failing: Arc<AtomicBool>,
}

impl App {
    fn asked(&self) -> Vec<pb::CheckJoinRequest> {
        self.asked.lock().expect("asked").clone()
    }
}

#[tonic::async_trait]
impl JoinHook for App {
    async fn check_join(
        &self,
        request: Request<pb::CheckJoinRequest>,
    ) -> Result<Response<pb::CheckJoinResponse>, Status> {
        // Signal authenticates to the application.
        let key = request
            .metadata()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok());
        let secret = request
            .metadata()
            .get("x-api-secret")
            .and_then(|v| v.to_str().ok());
        if (key, secret) != (Some(HOOK_KEY), Some(HOOK_SECRET)) {
            return Err(Status::unauthenticated("who are you"));
        }
        let asked = request.into_inner();
        self.asked.lock().expect("asked").push(asked.clone());
        if self.failing.load(Ordering::SeqCst) {
            return Err(Status::internal("the application's database is down"));
        }
        let answer = match asked.identity.as_str() {
            "mallory" => pb::CheckJoinResponse {
                allow: false,
                reason: "banned from this room".into(),
                ..Default::default()
            },
            "viewer" => pb::CheckJoinResponse {
                allow: true,
                name: Some("Viewer One".into()),
                replace_attributes: true,
                attributes: [("seat".to_owned(), "12".to_owned())].into(),
                permissions: Some(pb::Permissions { publish: false }),
                ..Default::default()
            },
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                pb::CheckJoinResponse {
                    allow: true,
                    ..Default::default()
                }
            }
            _ => pb::CheckJoinResponse {
                allow: true,
                ..Default::default()
            },
        };
        Ok(Response::new(answer))
    }
}

/// The hook served on 127.0.0.1:0; its URL.
async fn serve(app: App) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JoinHookServer::new(app))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    url
}

fn hooked(url: String, failure: FailureMode) -> impl FnOnce(&mut StackConfig) {
    move |config| {
        config.signal.join_hook = Some(JoinHookConfig {
            url,
            ca_file: None,
            credential: Some(ServiceCredential::new(HOOK_KEY, HOOK_SECRET)),
            timeout: Duration::from_millis(300),
            failure,
            breaker: switchboard_proto::circuit_breaker::BreakerConfig {
                failures: switchboard_signal::join_hook::BREAKER_FAILURES,
                open_for: switchboard_signal::join_hook::BREAKER_OPEN_FOR,
            },
        });
    }
}

/// A join the server refuses: its error (then the connection closes).
async fn refused(stack: &Stack, identity: &str) -> pb::Error {
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    client
        .send(pb::client_message::Message::Join(Box::new(pb::Join {
            token: stack.token(identity, "r1"),
            ..Default::default()
        })))
        .await;
    client.next_error().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_hook_allows_refuses_and_changes_joins() {
    let app = App::default();
    let stack = Stack::start_with(hooked(serve(app.clone()).await, FailureMode::Closed)).await;

    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let attributes = [("audio".to_owned(), "on".to_owned())].into();
    alice
        .join_with(&stack.token("alice", "r1"), attributes)
        .await;
    let asked = app.asked();
    let alice_asked = asked.first().expect("asked about alice");
    assert_eq!(
        (
            alice_asked.room.as_str(),
            alice_asked.identity.as_str(),
            alice_asked.attributes.get("audio").map(String::as_str),
            alice_asked.permissions
        ),
        (
            "r1",
            "alice",
            Some("on"),
            Some(pb::Permissions { publish: true })
        )
    );

    let err = refused(&stack, "mallory").await;
    assert_eq!(
        (err.code().as_str_name(), err.message.as_str()),
        ("permission_denied", "join refused: banned from this room")
    );

    let mut viewer = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = viewer.join(&stack.token("viewer", "r1")).await;
    let me = joined.self_.expect("self");
    assert_eq!(
        (
            me.name.as_str(),
            me.attributes.get("seat").map(String::as_str),
            me.permissions
        ),
        (
            "Viewer One",
            Some("12"),
            Some(pb::Permissions { publish: false })
        )
    );
    let seen = alice
        .recv_until(|m| match m {
            Out::ParticipantJoined(j) => j.participant.clone(),
            _ => None,
        })
        .await;
    assert_eq!(
        seen.name, "Viewer One",
        "the room sees what the hook decided"
    );
    let offer = viewer
        .signal("alice", description(true, "v=0 viewer"))
        .await;
    let err = viewer.next_error().await;
    assert_eq!(
        (err.code().as_str_name(), err.request_id),
        ("permission_denied", offer)
    );
    stack.shutdown().await;
}

/// Fail closed: a failing or slow hook refuses joins as `unavailable`
/// (retryable); after 5 failures in a row the breaker stops asking it
/// (joins refused at once), and once it answers again joins pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_join_hook_refuses_joins_and_its_breaker_stops_asking() {
    let app = App::default();
    let stack = Stack::start_with(hooked(serve(app.clone()).await, FailureMode::Closed)).await;
    let err = refused(&stack, "slow").await;
    assert_eq!(
        (
            err.code().as_str_name(),
            err.retryable,
            err.message.as_str()
        ),
        (
            "unavailable",
            true,
            "the join check did not answer; try again"
        )
    );
    app.failing.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        let err = refused(&stack, "alice").await;
        assert_eq!(
            (err.code().as_str_name(), err.message.as_str()),
            ("unavailable", "the join check failed; try again")
        );
    }
    let calls = app.asked().len();
    assert_eq!(calls, 5, "every join asked so far");
    let err = refused(&stack, "alice").await;
    assert_eq!(
        (err.code().as_str_name(), err.message.as_str()),
        (
            "unavailable",
            "the join check is failing; try again shortly"
        )
    );
    assert_eq!(app.asked().len(), calls, "the open breaker did not ask");

    // The application recovers: after the breaker's pause a probe passes.
    app.failing.store(false, Ordering::SeqCst);
    // Polled every 250 ms (the edge's per-address connection rate holds).
    let token = stack.token("alice", "r1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
        client
            .send(pb::client_message::Message::Join(Box::new(pb::Join {
                token: token.clone(),
                ..Default::default()
            })))
            .await;
        if matches!(client.recv().await.message, Some(Out::Joined(_))) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no join passed after the hook recovered"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stack.shutdown().await;
}

/// Fail open: while the hook fails, joins pass as their token says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_lets_joins_through_as_the_token_says() {
    let app = App::default();
    app.failing.store(true, Ordering::SeqCst);
    let stack = Stack::start_with(hooked(serve(app.clone()).await, FailureMode::Open)).await;
    let mut viewer = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = viewer.join(&stack.token("viewer", "r1")).await;
    let me = joined.self_.expect("self");
    assert_eq!(
        (me.name.as_str(), me.permissions),
        ("viewer (test)", Some(pb::Permissions { publish: true }))
    );
    assert_eq!(app.asked().len(), 1, "it was asked, and failed");
    stack.shutdown().await;
}

/// A TLS connection the hook's tonic server takes as its own.
struct TlsConn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The hook served over TLS as `localhost` with a certificate of its own;
/// its URL and that certificate's file (the CA bundle to trust it).
async fn serve_tls(app: App, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use futures_util::StreamExt as _;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let ca = dir.join("hook.pem");
    std::fs::write(&ca, cert.cert.pem()).expect("write");
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("config");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().expect("addr").port()
    );
    let incoming =
        tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |tcp| {
            let acceptor = acceptor.clone();
            async move { Some(acceptor.accept(tcp.ok()?).await.map(TlsConn)) }
        });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JoinHookServer::new(app))
            .serve_with_incoming(incoming),
    );
    (url, ca)
}

/// An https join hook is asked over TLS and trusted only through the CA
/// bundle given; with another bundle it cannot be reached, and the closed
/// failure mode refuses the join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_join_hook_is_verified_against_its_ca_file() {
    let dir = std::env::temp_dir().join(format!("sb-hook-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let app = App::default();
    let (url, ca) = serve_tls(app.clone(), &dir).await;
    let trusted = {
        let (url, ca) = (url.clone(), ca.clone());
        move |config: &mut StackConfig| {
            hooked(url, FailureMode::Closed)(config);
            if let Some(hook) = config.signal.join_hook.as_mut() {
                hook.ca_file = Some(ca);
            }
        }
    };
    let stack = Stack::start_with(trusted).await;
    let mut viewer = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = viewer.join(&stack.token("viewer", "r1")).await;
    assert_eq!(
        joined.self_.expect("self").name,
        "Viewer One",
        "the hook's answer"
    );
    assert_eq!(app.asked().len(), 1);
    stack.shutdown().await;

    // Another CA bundle: the hook's certificate is not trusted.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let other_ca = dir.join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).expect("write");
    let stack = Stack::start_with(move |config: &mut StackConfig| {
        hooked(url, FailureMode::Closed)(config);
        if let Some(hook) = config.signal.join_hook.as_mut() {
            hook.ca_file = Some(other_ca);
        }
    })
    .await;
    let err = refused(&stack, "viewer").await;
    assert_eq!(err.code().as_str_name(), "unavailable", "{err:?}");
    assert_eq!(app.asked().len(), 1, "never reached");
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
