//! Traces across processes: an OTLP receiver in this test, and auth,
//! signal and an edge as separate processes exporting to it.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value,
    trace::v1::Span,
};
use switchboard_proto::{
    pb, pb::client_message::Message as In, pb::server_message::Message as Out, wire::Format,
};
use switchboard_tests::{DEADLINE, WsClient, description, http, process::Process, wait_until};

use crate::cluster::{API, BIN, signing_key_file, token};

/// The browser's trace context of alice's join (W3C example ids, sampled).
const BROWSER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BROWSER_SPAN: &str = "00f067aa0ba902b7";

/// Every span exported to it, with its process's `service.name`.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    async fn start() -> (Self, String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let receiver = Self::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let task = tokio::spawn(async move {
            server.await.expect("otlp receiver");
        });
        (receiver, url, task)
    }

    /// (service, name, trace id, span id, parent span id) of every span.
    fn spans(&self) -> Vec<(String, String, String, String, String)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(service, s)| {
                (
                    service.clone(),
                    s.name.clone(),
                    hex(&s.trace_id),
                    hex(&s.span_id),
                    hex(&s.parent_span_id),
                )
            })
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_join_and_one_a_signal_across_edge_auth_and_signal() {
    let (receiver, otlp, _server) = Receiver::start().await;
    let dir = std::env::temp_dir().join(format!("sb-traces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = signing_key_file(&dir);
    let api = format!("{}:{}", API.0, API.1);
    let traced = [
        "--otlp-endpoint",
        otlp.as_str(),
        "--trace-sample-ratio",
        "1",
    ];
    // Exports every 100 ms instead of 5 s.
    let env = [("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(traced.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let start = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let services: &[&str] = match args[0] {
            "edge" => &["edge", "metrics"],
            service => &[service][..],
        };
        Process::start_listening(BIN, &args, &env, services).await
    };
    let auth = start(with(&[
        "auth",
        "--listen",
        "127.0.0.1:0",
        "--signing-key",
        key.to_str().expect("path"),
        "--api-key",
        &api,
    ]))
    .await;
    let signal = start(with(&[
        "signal",
        "--listen",
        "127.0.0.1:0",
        "--auth-url",
        auth.url("auth"),
        "--api-key",
        &api,
    ]))
    .await;
    let edge = start(with(&[
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--signal-url",
        signal.url("signal"),
        "--auth-url",
        auth.url("auth"),
        "--service-key",
        &api,
        "--metrics-listen",
        "127.0.0.1:0",
    ]))
    .await;
    let edge_url = edge.url("edge").to_owned();
    wait_until("edge ready", DEADLINE, || {
        let url = edge_url.clone();
        async move { http::request(&url, "GET", "/health/ready", "").await.0 == 200 }
    })
    .await;
    let ws = format!("{}/ws", edge_url.replacen("http://", "ws://", 1));

    // Alice's browser sends its own sampled trace context with the join.
    let mut alice = WsClient::connect(&ws, Format::Json).await;
    alice
        .send(In::Join(Box::new(pb::Join {
            token: token("alice", "traced"),
            traceparent: format!("00-{BROWSER_TRACE}-{BROWSER_SPAN}-01"),
            ..Default::default()
        })))
        .await;
    alice
        .recv_until(|m| matches!(m, Out::Joined(_)).then_some(()))
        .await;
    let mut bob = WsClient::connect(&ws, Format::Binary).await;
    bob.join(&token("bob", "traced")).await;
    alice.signal("bob", description(true, "v=0\r\n")).await;
    let signal_in = bob.next_signal().await;
    assert!(
        signal_in.probe.is_none(),
        "the receiver never sees the probe"
    );

    // The join: the edge's span is a child of the browser's, and auth's
    // verification and signal's join are in the same trace.
    let join_trace = |spans: &[(String, String, String, String, String)]| {
        let of = |service: &str, name: &str| {
            spans
                .iter()
                .find(|s| s.0 == service && s.1.contains(name) && s.2 == BROWSER_TRACE)
                .cloned()
        };
        Some((
            of("switchboard-edge", "edge.join")?,
            of("switchboard-auth", "VerifyToken")?,
            of("switchboard-signal", "signal.join")?,
        ))
    };
    // The signal: edge.signal → signal.relay → edge.deliver.
    let relay_trace = |spans: &[(String, String, String, String, String)]| {
        let deliver = spans.iter().find(|s| s.1 == "edge.deliver")?;
        let of = |service: &str, name: &str| {
            spans
                .iter()
                .find(|s| s.0 == service && s.1 == name && s.2 == deliver.2)
                .cloned()
        };
        Some((
            of("switchboard-edge", "edge.signal")?,
            of("switchboard-signal", "signal.relay")?,
            deliver.clone(),
        ))
    };
    wait_until(
        "the join's and the signal's spans exported",
        DEADLINE,
        || {
            let spans = receiver.spans();
            async move { join_trace(&spans).is_some() && relay_trace(&spans).is_some() }
        },
    )
    .await;
    let spans = receiver.spans();
    let (edge_join, verify, signal_join) = join_trace(&spans).expect("join trace");
    assert_eq!(
        edge_join.4, BROWSER_SPAN,
        "edge.join continues the browser's span"
    );
    assert_eq!(
        verify.4, edge_join.3,
        "auth's verification is a child of edge.join"
    );
    assert_eq!(
        signal_join.4, edge_join.3,
        "signal.join is a child of edge.join"
    );
    // Signal verifies the token too, inside its join span.
    assert!(
        spans
            .iter()
            .any(|s| s.0 == "switchboard-auth" && s.2 == BROWSER_TRACE && s.4 == signal_join.3),
        "signal's own verification is in the trace: {spans:#?}"
    );
    let (edge_signal, relay, deliver) = relay_trace(&spans).expect("relay trace");
    assert_eq!(
        relay.4, edge_signal.3,
        "signal.relay is a child of edge.signal"
    );
    assert_eq!(
        deliver.4, relay.3,
        "edge.deliver is a child of signal.relay"
    );

    // A traced signal is timed: the relay latency histogram has it.
    let (status, text) = http::request(edge.url("metrics"), "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    let count: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_edge_relay_latency_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("relay latency count");
    assert!(count >= 1.0, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
