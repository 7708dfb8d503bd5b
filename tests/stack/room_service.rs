//! RoomService: the application's backend acts on live sessions, over the
//! real gRPC port of signal, with browser-protocol clients connected.

use std::time::Duration;

use switchboard_proto::{
    pb::{self, room_service_client::RoomServiceClient, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{Stack, WsClient};
use tonic::{Code, Request, transport::Channel};

/// A backend token: every backend grant on `room_grant`, or only `grants`.
pub(crate) fn backend_token(stack: &Stack, room_grant: &str, grants: pb::Grants) -> String {
    let mut request = Stack::request("backend", room_grant);
    request.grants = pb::Grants {
        room: room_grant.into(),
        ..grants
    };
    stack.issue(&request).0
}

pub(crate) fn admin() -> pb::Grants {
    pb::Grants {
        room_list: true,
        room_close: true,
        kick: true,
        room_data: true,
        room_create: true,
        room_admin: true,
        ..Default::default()
    }
}

pub(crate) async fn api(stack: &Stack) -> RoomServiceClient<Channel> {
    RoomServiceClient::connect(stack.signal_url.clone())
        .await
        .expect("room service")
}

pub(crate) fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

fn data_of(message: &Out) -> Option<pb::Data> {
    match message {
        Out::Data(d) => Some(d.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_token_a_grant_or_the_room_are_refused() {
    let stack = Stack::start().await;
    let mut api = api(&stack).await;
    let get = |room: &str| pb::GetRoomRequest { room: room.into() };

    let none = api.get_room(Request::new(get("r1"))).await;
    assert_eq!(none.expect_err("no token").code(), Code::Unauthenticated);
    let forged = api.get_room(with_token(get("r1"), "not-a-token")).await;
    assert_eq!(forged.expect_err("bad token").code(), Code::Unauthenticated);

    // A browser's token (publish, no backend grant).
    let browser = stack.token("alice", "r1");
    let refused = api.get_room(with_token(get("r1"), &browser)).await;
    let refused = refused.expect_err("no grant");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("roomList"), "{refused:?}");

    // roomList does not allow kick.
    let lister = backend_token(
        &stack,
        "*",
        pb::Grants {
            room_list: true,
            ..Default::default()
        },
    );
    assert!(api.get_room(with_token(get("r1"), &lister)).await.is_ok());
    let kick = pb::RemoveParticipantRequest {
        room: "r1".into(),
        identity: "alice".into(),
        reason: String::new(),
    };
    let refused = api.remove_participant(with_token(kick, &lister)).await;
    assert_eq!(refused.expect_err("no kick").code(), Code::PermissionDenied);

    // A grant for other rooms.
    let elsewhere = backend_token(&stack, "team-*", admin());
    let refused = api.get_room(with_token(get("r1"), &elsewhere)).await;
    let refused = refused.expect_err("another room");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("room"), "{refused:?}");
    assert!(
        api.get_room(with_token(get("team-a"), &elsewhere))
            .await
            .is_ok()
    );
    stack.shutdown().await;
}

/// RemoveParticipant closes exactly that WebSocket, with a reason its
/// client sees; the room hears `removed`; the others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_closes_the_right_websocket_with_the_reason() {
    let stack = Stack::start().await;
    let mut api = api(&stack).await;
    let token = backend_token(&stack, "r1", admin());
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;
    bob.join(&stack.token("bob", "r1")).await;

    let listed = api
        .list_participants(with_token(
            pb::ListParticipantsRequest { room: "r1".into() },
            &token,
        ))
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<_> = listed.participants.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["alice", "bob"]);
    let get = |identity: &str| pb::GetParticipantRequest {
        room: "r1".into(),
        identity: identity.into(),
    };
    let bob_seen = api
        .get_participant(with_token(get("bob"), &token))
        .await
        .expect("bob")
        .into_inner();
    assert_eq!(bob_seen.id, "bob");
    let nobody = api.get_participant(with_token(get("nobody"), &token)).await;
    assert_eq!(nobody.expect_err("absent").code(), Code::NotFound);

    api.remove_participant(with_token(
        pb::RemoveParticipantRequest {
            room: "r1".into(),
            identity: "bob".into(),
            reason: "spamming the chat".into(),
        },
        &token,
    ))
    .await
    .expect("removed");
    let closed = bob.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4410, "participant_removed: spamming the chat")
    );
    let left = alice.next_left().await;
    assert_eq!(
        (left.participant_id.as_str(), left.reason().as_str_name()),
        ("bob", "removed")
    );
    let again = api
        .remove_participant(with_token(
            pb::RemoveParticipantRequest {
                room: "r1".into(),
                identity: "bob".into(),
                reason: String::new(),
            },
            &token,
        ))
        .await;
    assert_eq!(again.expect_err("gone").code(), Code::NotFound);
    let room = api
        .get_room(with_token(pb::GetRoomRequest { room: "r1".into() }, &token))
        .await
        .expect("room")
        .into_inner();
    assert_eq!(room.num_participants, 1);

    let closed = api
        .close_room(with_token(
            pb::CloseRoomRequest {
                room: "r1".into(),
                reason: "the meeting is over".into(),
            },
            &token,
        ))
        .await
        .expect("closed")
        .into_inner();
    assert_eq!(closed.removed, 1);
    let closed = alice.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4410, "participant_removed: the meeting is over")
    );
    stack.shutdown().await;
}

/// SendData reaches exactly the chosen participants, in their session's
/// order, once: a retry with the same idempotency key delivers nothing, and
/// a recipient that was away gets it on resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_reaches_exactly_the_chosen_participants_once_and_survives_a_resume() {
    let stack = Stack::start().await;
    let mut api = api(&stack).await;
    let token = backend_token(&stack, "r1", admin());
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Binary).await;
    alice.join(&stack.token("alice", "r1")).await;
    let bob_token = stack.token("bob", "r1");
    let bob_joined = bob.join(&bob_token).await;
    alice
        .recv_until(|m| matches!(m, Out::ParticipantJoined(_)).then_some(()))
        .await;

    let send = |payload: &str, key: &str, to: &[&str]| pb::SendDataRequest {
        room: "r1".into(),
        identities: to.iter().map(|s| (*s).to_owned()).collect(),
        topic: "poll".into(),
        payload: payload.into(),
        idempotency_key: key.into(),
    };
    let sent = api
        .send_data(with_token(send("one", "k1", &["bob", "nobody"]), &token))
        .await
        .expect("sent")
        .into_inner();
    assert_eq!(
        (sent.delivered, sent.not_found.clone(), sent.duplicate),
        (1, vec!["nobody".to_owned()], false)
    );
    let retried = api
        .send_data(with_token(send("one", "k1", &["bob", "nobody"]), &token))
        .await
        .expect("retried")
        .into_inner();
    assert_eq!((retried.delivered, retried.duplicate), (0, true));
    let data = bob.recv_until(data_of).await;
    assert_eq!(
        (data.topic.as_str(), data.payload.as_str()),
        ("poll", "one")
    );

    // Bob is away: the data waits in his session's log.
    let last_seq = bob.last_seq;
    bob.drop_abruptly();
    let sent = api
        .send_data(with_token(send("two", "", &[]), &token))
        .await
        .expect("sent to all")
        .into_inner();
    assert_eq!(sent.delivered, 2, "alice and the absent bob");
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    bob.resume(
        &bob_joined.session_id,
        &bob_joined.resume_token,
        last_seq,
        &bob_token,
    )
    .await
    .expect("resumed");
    let data = bob.recv_until(data_of).await;
    assert_eq!(data.payload, "two");
    // Alice got only the one to everybody.
    let data = alice.recv_until(data_of).await;
    assert_eq!(data.payload, "two");
    let more = alice.next_within(Duration::from_millis(200)).await;
    assert!(
        !matches!(&more, Some(Ok(m)) if m.message.as_ref().and_then(data_of).is_some()),
        "{more:?}"
    );

    let big = "x".repeat(16 * 1024 + 1);
    let refused = api.send_data(with_token(send(&big, "", &[]), &token)).await;
    assert_eq!(
        refused.expect_err("too large").code(),
        Code::InvalidArgument
    );
    stack.shutdown().await;
}

/// With Redis, a call on replica 1 acts on sessions held by replica 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_one_replica_acts_on_sessions_of_another() {
    let (_redis, _key, one, two) = crate::replicas::two_replicas().await;
    let mut api = api(&one).await;
    let token = backend_token(&one, "r1", admin());
    let mut bob = WsClient::connect(&two.ws_url(), Format::Json).await;
    let mut carol = WsClient::connect(&two.ws_url(), Format::Json).await;
    bob.join(&two.token("bob", "r1")).await;
    carol.join(&two.token("carol", "r1")).await;
    let sent = api
        .send_data(with_token(
            pb::SendDataRequest {
                room: "r1".into(),
                identities: vec!["bob".into()],
                topic: "t".into(),
                payload: "across".into(),
                idempotency_key: "k".into(),
            },
            &token,
        ))
        .await
        .expect("sent")
        .into_inner();
    assert_eq!(sent.delivered, 1);
    assert_eq!(bob.recv_until(data_of).await.payload, "across");
    api.remove_participant(with_token(
        pb::RemoveParticipantRequest {
            room: "r1".into(),
            identity: "carol".into(),
            reason: "bye".into(),
        },
        &token,
    ))
    .await
    .expect("removed");
    assert_eq!(carol.closed().await.code, 4410);
    one.shutdown().await;
    two.shutdown().await;
}

/// The kind of a room event, for comparisons.
fn kind(event: &pb::RoomEvent) -> String {
    use pb::room_event::Event as E;
    match event.event.as_ref() {
        Some(E::RoomStarted(_)) => "started".into(),
        Some(E::RoomFinished(_)) => "finished".into(),
        Some(E::ParticipantJoined(j)) => format!(
            "joined {}",
            j.participant.as_ref().map_or("", |p| p.id.as_str())
        ),
        Some(E::ParticipantLeft(l)) => {
            format!("left {} {}", l.participant_id, l.reason().as_str_name())
        }
        Some(E::ParticipantUpdated(u)) => format!(
            "updated {}",
            u.participant.as_ref().map_or("", |p| p.id.as_str())
        ),
        Some(E::DataSent(d)) => format!("data {} {}", d.topic, d.delivered),
        Some(E::RoomUpdated(u)) => format!("room updated {}", u.metadata),
        Some(E::ParticipantMoved(m)) => format!(
            "moved {} from {}",
            m.participant.as_ref().map_or("", |p| p.id.as_str()),
            m.from_room
        ),
        Some(E::Missed(_)) => "missed".into(),
        None => "none".into(),
    }
}

async fn watch(
    stack: &Stack,
    token: &str,
    room: &str,
    cursor: &str,
) -> tonic::Streaming<pb::RoomEvent> {
    api(stack)
        .await
        .watch_room_events(with_token(
            pb::WatchRoomEventsRequest {
                room: room.into(),
                cursor: cursor.into(),
            },
            token,
        ))
        .await
        .expect("watch")
        .into_inner()
}

async fn next_events(stream: &mut tonic::Streaming<pb::RoomEvent>, n: usize) -> Vec<pb::RoomEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        let event = tokio::time::timeout(switchboard_tests::DEADLINE, stream.message())
            .await
            .expect("an event in time")
            .expect("ok")
            .expect("open");
        events.push(event);
    }
    events
}

/// Events arrive in order; a watcher that comes back with its last cursor
/// (here: to the other replica) gets exactly what it missed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_events_arrive_in_order_and_a_watcher_resumes_from_its_cursor() {
    let (_redis, _key, one, two) = crate::replicas::two_replicas().await;
    let token = backend_token(&one, "r*", admin());
    let mut watcher = watch(&one, &token, "r1", "").await;
    let mut alice = WsClient::connect(&one.ws_url(), Format::Json).await;
    alice.join(&one.token("alice", "r1")).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Json).await;
    bob.join(&two.token("bob", "r1")).await;
    let first = next_events(&mut watcher, 3).await;
    assert_eq!(
        first.iter().map(kind).collect::<Vec<_>>(),
        ["started", "joined alice", "joined bob"]
    );
    let cursor = first[2].cursor.clone();
    drop(watcher);

    // While nobody watches: data, a leave, the room's end; and another room.
    api(&one)
        .await
        .send_data(with_token(
            pb::SendDataRequest {
                room: "r1".into(),
                topic: "t".into(),
                payload: "p".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("sent");
    let mut carol = WsClient::connect(&one.ws_url(), Format::Json).await;
    carol.join(&one.token("carol", "r2")).await;
    bob.send(pb::client_message::Message::Leave(pb::Leave {}))
        .await;
    bob.closed().await;
    // Alice leaves once she has heard of bob's leave (the log has it
    // before the room hears it): the two leaves are in that order.
    alice.next_left().await;
    alice
        .send(pb::client_message::Message::Leave(pb::Leave {}))
        .await;
    alice.closed().await;

    let mut again = watch(&two, &token, "r1", &cursor).await;
    let missed = next_events(&mut again, 4).await;
    assert_eq!(
        missed.iter().map(kind).collect::<Vec<_>>(),
        ["data t 2", "left bob left", "left alice left", "finished"],
        "exactly what followed the cursor, r1 only"
    );
    let more = tokio::time::timeout(Duration::from_millis(600), again.message()).await;
    assert!(more.is_err(), "nothing twice: {more:?} after {missed:?}");

    // Every room the token covers, from now.
    let mut all = watch(&two, &token, "", "").await;
    let mut dave = WsClient::connect(&two.ws_url(), Format::Json).await;
    dave.join(&two.token("dave", "r3")).await;
    let events = next_events(&mut all, 2).await;
    assert_eq!(
        events
            .iter()
            .map(|e| (e.room.clone(), kind(e)))
            .collect::<Vec<_>>(),
        [
            ("r3".to_owned(), "started".to_owned()),
            ("r3".to_owned(), "joined dave".to_owned())
        ]
    );
    // A token for other rooms is refused for r1.
    let other = backend_token(&one, "team-*", admin());
    let refused = api(&one)
        .await
        .watch_room_events(with_token(
            pb::WatchRoomEventsRequest {
                room: "r1".into(),
                cursor: String::new(),
            },
            &other,
        ))
        .await;
    assert_eq!(
        refused.expect_err("another room").code(),
        Code::PermissionDenied
    );
    one.shutdown().await;
    two.shutdown().await;
}
