//! Signal trusts no edge blindly: a Relay lane needs a service credential,
//! and every join and resume is verified against auth, so the identity and
//! room are the token's, whatever the lane says. Driven with a raw gRPC
//! client, no edge in between.

use std::time::Duration;

use switchboard_proto::pb::{self, edge_envelope::Event as In, signal_envelope::Event as Out};
use switchboard_tests::{DEADLINE, Stack};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A lane opened by hand; `credential` says whether it presents the
/// stack's API key.
async fn lane(
    stack: &Stack,
    credential: bool,
) -> Result<
    (
        mpsc::Sender<pb::EdgeBatch>,
        tonic::Streaming<pb::SignalBatch>,
    ),
    tonic::Status,
> {
    let channel = tonic::transport::Endpoint::from_shared(stack.signal_url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = pb::signal_client::SignalClient::new(channel);
    let (tx, rx) = mpsc::channel(8);
    let request = ReceiverStream::new(rx);
    let response = if credential {
        client.relay(stack.with_api_credential(request)).await
    } else {
        client.relay(request).await
    }?;
    Ok((tx, response.into_inner()))
}

async fn send(tx: &mpsc::Sender<pb::EdgeBatch>, conn: u64, event: In) {
    tx.send(switchboard_proto::grpc::padded_edge_batch(vec![
        pb::EdgeEnvelope {
            conn,
            event: Some(event),
        },
    ]))
    .await
    .expect("lane open");
}

/// The next events signal sends for `conn`, until a Joined, a Resumed or a
/// close.
async fn answer(inbound: &mut tonic::Streaming<pb::SignalBatch>, conn: u64) -> Vec<Out> {
    let mut events = Vec::new();
    loop {
        let batch = tokio::time::timeout(DEADLINE, inbound.message())
            .await
            .expect("signal answered in time")
            .expect("lane alive")
            .expect("batch");
        for envelope in batch.envelopes.into_iter().filter(|e| e.conn == conn) {
            let event = envelope.event.expect("event");
            let done = match &event {
                Out::Close(_) => true,
                Out::Message(m) => matches!(
                    m.message,
                    Some(
                        pb::server_message::Message::Joined(_)
                            | pb::server_message::Message::Resumed(_)
                    )
                ),
            };
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

/// The error and close of a refused join or resume.
fn refusal(events: &[Out]) -> (String, String) {
    let error = events.iter().find_map(|e| match e {
        Out::Message(pb::ServerMessage {
            message: Some(pb::server_message::Message::Error(err)),
            ..
        }) => Some(err.clone()),
        _ => None,
    });
    let error = error.unwrap_or_else(|| panic!("no error in {events:?}"));
    assert!(matches!(events.last(), Some(Out::Close(_))), "{events:?}");
    (error.code().as_str_name().to_owned(), error.message)
}

fn open(token: &str, room: &str) -> In {
    In::Open(Box::new(pb::OpenSession {
        request_id: 1,
        room: room.into(),
        token: token.into(),
        ..Default::default()
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_needs_a_service_credential() {
    let stack = Stack::start().await;
    let Err(status) = lane(&stack, false).await else {
        panic!("a lane without a credential was opened");
    };
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "service credential required (x-api-key, x-api-secret)"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentialed_lane_cannot_join_or_resume_as_someone_else() {
    let stack = Stack::start().await;
    let (tx, mut inbound) = lane(&stack, true).await.expect("lane");

    // No token: no session.
    send(&tx, 1, open("", "r1")).await;
    assert_eq!(
        refusal(&answer(&mut inbound, 1).await),
        ("unauthenticated".into(), "missing token".into())
    );
    // A token for alice signed by another key under the stack key's id.
    let forged = switchboard_auth::Keyring::new(switchboard_auth::KeyringConfig {
        signing_key: switchboard_auth::Jwk::generate(switchboard_auth::KeyAlg::EdDsa, "k1")
            .expect("key"),
        verification_keys: vec![],
        api_keys: vec![],
        issuer: switchboard_tests::stack::ISSUER.into(),
        audience: switchboard_tests::stack::AUDIENCE.into(),
        max_session: Duration::from_secs(3600),
    })
    .expect("keyring")
    .issue(&Stack::request("alice", "r1"))
    .expect("issue")
    .0;
    send(&tx, 2, open(&forged, "r1")).await;
    assert_eq!(
        refusal(&answer(&mut inbound, 2).await),
        ("unauthenticated".into(), "invalid token signature".into())
    );
    // Mallory's real token, for a room it does not grant.
    let mallory = stack.token("mallory", "r1");
    send(&tx, 3, open(&mallory, "r2")).await;
    assert_eq!(
        refusal(&answer(&mut inbound, 3).await),
        (
            "permission_denied".into(),
            "the token does not grant this room".into()
        )
    );
    // Alice joins for real; mallory's token cannot resume her session.
    send(&tx, 4, open(&stack.token("alice", "r1"), "r1")).await;
    let joined = match answer(&mut inbound, 4).await.pop() {
        Some(Out::Message(pb::ServerMessage {
            message: Some(pb::server_message::Message::Joined(joined)),
            ..
        })) => joined,
        other => panic!("expected joined, got {other:?}"),
    };
    assert_eq!(joined.self_.as_ref().map(|p| p.id.as_str()), Some("alice"));
    send(
        &tx,
        5,
        In::Resume(Box::new(pb::ResumeSession {
            request_id: 1,
            session_id: joined.session_id.clone(),
            resume_token: joined.resume_token.clone(),
            last_seq: 1,
            token: mallory,
        })),
    )
    .await;
    assert_eq!(
        refusal(&answer(&mut inbound, 5).await),
        ("not_found".into(), "no such session to resume".into())
    );
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), inbound.message()).await;
    stack.shutdown().await;
}
