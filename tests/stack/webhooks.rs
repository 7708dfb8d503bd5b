//! Signed webhooks against a real HTTP receiver started here: every room
//! event POSTed in order, signed (HMAC-SHA256 over the timestamp and the
//! raw body), retried until the receiver takes it, with an id to
//! de-duplicate; with Redis, one replica delivers and another continues.

use std::time::Duration;

use switchboard_proto::{
    pb::{self, client_message::Message as In},
    service_credential::ServiceCredential,
    wire::Format,
};
use switchboard_signal::webhooks::{ATTEMPT_HEADER, EVENT_ID_HEADER, WebhookConfig, signature};
use switchboard_tests::{
    Stack, StackConfig, WsClient,
    webhook_receiver::{Received, WebhookReceiver},
};

const HOOK_KEY: &str = "hooks";
const HOOK_SECRET: &str = "webhook-secret-0123456789-abcdefghijklmnop";

fn with_webhooks(url: &str) -> impl Fn(&mut StackConfig) + Clone + use<> {
    let url = url.to_owned();
    move |config| {
        config.signal.webhooks = Some(WebhookConfig {
            urls: vec![url.clone()],
            key: ServiceCredential::new(HOOK_KEY, HOOK_SECRET),
            ca_file: None,
            retry_min: switchboard_signal::webhooks::RETRY_MIN,
            retry_max: switchboard_signal::webhooks::RETRY_MAX,
        });
    }
}

/// What an event is, as a receiver reads it: `joined alice`, `left bob
/// left`, `started`, ...
fn kind(received: &Received) -> String {
    let body = received.json();
    let event = &body["event"];
    let id = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    if event.get("roomStarted").is_some() {
        "started".into()
    } else if event.get("roomFinished").is_some() {
        "finished".into()
    } else if let Some(j) = event.get("participantJoined") {
        format!("joined {}", id(&j["participant"]["id"]))
    } else if let Some(l) = event.get("participantLeft") {
        format!("left {} {}", id(&l["participantId"]), id(&l["reason"]))
    } else if event.get("missed").is_some() {
        "missed".into()
    } else {
        "other".into()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The events the receiver took (answered 2xx), in order, once each by id.
fn accepted(received: &[Received]) -> Vec<&Received> {
    let mut seen = std::collections::HashSet::new();
    received
        .iter()
        .filter(|r| r.accepted() && seen.insert(r.header(EVENT_ID_HEADER).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_carry_an_id_to_deduplicate() {
    // The first two attempts fail: the first event must come a third time.
    let receiver = WebhookReceiver::start(2).await;
    let stack = Stack::start_with(with_webhooks(&receiver.url)).await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;
    bob.send(In::Leave(pb::Leave {})).await;
    bob.closed().await;
    // After she heard of it: the two leaves are logged in this order.
    alice.next_left().await;
    alice.send(In::Leave(pb::Leave {})).await;
    alice.closed().await;
    let expected = [
        "started",
        "joined alice",
        "joined bob",
        "left bob left",
        "left alice left",
        "finished",
    ];
    let received = receiver
        .wait_for("every event accepted", Duration::from_secs(20), |all| {
            accepted(all).len() >= expected.len()
        })
        .await;
    let kinds: Vec<String> = accepted(&received).iter().map(|r| kind(r)).collect();
    assert_eq!(kinds, expected, "in order, each once");

    // The first event: refused twice, then taken, same id and body, the
    // attempt counted; each attempt signed on its own.
    let first = &received[..3];
    assert_eq!(
        first.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(
        first
            .iter()
            .map(|r| r.header(ATTEMPT_HEADER))
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(
        first.windows(2).all(|w| w[0].body == w[1].body
            && w[0].header(EVENT_ID_HEADER) == w[1].header(EVENT_ID_HEADER))
    );

    for request in &received {
        assert_eq!(request.header(signature::KEY_HEADER), HOOK_KEY);
        let header = request.header(signature::SIGNATURE_HEADER);
        assert_eq!(
            signature::verify(HOOK_SECRET.as_bytes(), header, &request.body, now_secs()),
            Ok(()),
            "{header}"
        );
        // The body's id is the header's.
        assert_eq!(
            request.json()["id"].as_str(),
            Some(request.header(EVENT_ID_HEADER))
        );
        // A forged body or another secret does not verify.
        let mut forged = request.body.to_vec();
        forged.push(b' ');
        assert!(signature::verify(HOOK_SECRET.as_bytes(), header, &forged, now_secs()).is_err());
        assert!(signature::verify(b"not the secret", header, &request.body, now_secs()).is_err());
    }
    stack.shutdown().await;
}

/// With Redis, two replicas configured with the same endpoint deliver each
/// event once between them (one holds the endpoint's lease); when that one
/// stops, the other continues from the shared cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_delivers_and_another_continues_after_it() {
    let receiver = WebhookReceiver::start(0).await;
    let (redis, key, one, two) =
        crate::replicas::two_replicas_with(with_webhooks(&receiver.url)).await;
    let mut alice = WsClient::connect(&one.ws_url(), Format::Json).await;
    alice.join(&one.token("alice", "r1")).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Json).await;
    bob.join(&two.token("bob", "r1")).await;
    let received = receiver
        .wait_for("the joins", Duration::from_secs(10), |all| {
            accepted(all).len() >= 3
        })
        .await;
    // Give a second deliverer every chance to show up before counting.
    bob.barrier().await;
    let ids: Vec<&str> = received.iter().map(|r| r.header(EVENT_ID_HEADER)).collect();
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "no event posted twice: {ids:?}");

    // The replicas stop one after the other: whichever held the lease, the
    // survivor delivers what follows.
    one.shutdown().await;
    let third = crate::replicas::replica_of(&redis, &key, with_webhooks(&receiver.url)).await;
    let mut carol = WsClient::connect(&third.ws_url(), Format::Json).await;
    carol.join(&third.token("carol", "r1")).await;
    let received = receiver
        .wait_for("carol's join", Duration::from_secs(20), |all| {
            accepted(all).iter().any(|r| kind(r) == "joined carol")
        })
        .await;
    let kinds: Vec<String> = accepted(&received).iter().map(|r| kind(r)).collect();
    assert_eq!(kinds[..3], ["started", "joined alice", "joined bob"]);
    assert!(kinds.contains(&"joined carol".to_owned()), "{kinds:?}");
    two.shutdown().await;
    third.shutdown().await;
}
