//! RoomService's administration of rooms and live participants: a
//! permission change on the live session, rooms created with their own
//! settings, SendData's room rate, moving a participant. (Reading,
//! removing, data and events: `room_service`.)

use switchboard_proto::{
    pb::{self, client_message::Message as In, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{Stack, WsClient, description};
use tonic::Code;

use crate::room_service::{admin, api, backend_token, with_token};

fn update_of(message: &Out) -> Option<pb::SelfUpdated> {
    match message {
        Out::SelfUpdated(u) => Some(u.clone()),
        _ => None,
    }
}

/// UpdateParticipant acts on the live session: a revoked `publish` refuses
/// the next offer (answers and candidates still pass), granting it back
/// lets offers through again; the participant hears SelfUpdated, the room
/// ParticipantUpdated; a resume keeps the change. With Redis, the call is
/// made on replica 1 and the session lives on replica 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_change_takes_effect_on_the_live_session() {
    let (_redis, _key, one, two) = crate::replicas::two_replicas().await;
    let mut api = api(&one).await;
    let token = backend_token(&one, "r1", admin());
    let mut alice = WsClient::connect(&two.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Json).await;
    alice.join(&two.token("alice", "r1")).await;
    let bob_token = two.token("bob", "r1");
    let bob_joined = bob.join(&bob_token).await;
    assert_eq!(
        bob_joined.self_.as_ref().and_then(|p| p.permissions),
        Some(pb::Permissions { publish: true }),
        "the token's grant, shown in Joined"
    );
    alice
        .recv_until(|m| matches!(m, Out::ParticipantJoined(_)).then_some(()))
        .await;
    // Control: bob's offer reaches alice.
    bob.signal("alice", description(true, "v=0 first")).await;
    assert_eq!(alice.next_signal().await.from, "bob");

    let update = |publish: bool| pb::UpdateParticipantRequest {
        room: "r1".into(),
        identity: "bob".into(),
        name: Some("Bob (viewer)".into()),
        replace_attributes: true,
        attributes: [("role".to_owned(), "viewer".to_owned())].into(),
        permissions: Some(pb::Permissions { publish }),
    };
    let updated = api
        .update_participant(with_token(update(false), &token))
        .await
        .expect("updated")
        .into_inner();
    assert_eq!(
        (updated.name.as_str(), updated.permissions),
        ("Bob (viewer)", Some(pb::Permissions { publish: false }))
    );
    let told = bob.recv_until(update_of).await;
    let told = told.self_.expect("self");
    assert_eq!(
        (
            told.name.as_str(),
            told.attributes.get("role").map(String::as_str)
        ),
        ("Bob (viewer)", Some("viewer"))
    );
    // The next offer is refused, with the reason; an answer still passes.
    let offer = bob.signal("alice", description(true, "v=0 second")).await;
    let err = bob.next_error().await;
    assert_eq!(
        (
            err.code().as_str_name(),
            err.request_id,
            err.message.as_str()
        ),
        (
            "permission_denied",
            offer,
            "this participant may not publish"
        )
    );
    let seen = alice
        .recv_until(|m| match m {
            Out::ParticipantUpdated(u) => u.participant.clone(),
            _ => None,
        })
        .await;
    assert_eq!(
        (seen.id.as_str(), seen.permissions),
        ("bob", Some(pb::Permissions { publish: false }))
    );
    bob.signal("alice", description(false, "v=0 answer")).await;
    let got = alice.next_signal().await;
    assert_eq!(got.kind, Some(description(false, "v=0 answer")));

    // A resume (on the other replica) keeps the change.
    let last_seq = bob.last_seq;
    bob.drop_abruptly();
    let mut bob = WsClient::connect(&one.ws_url(), Format::Json).await;
    bob.resume(
        &bob_joined.session_id,
        &bob_joined.resume_token,
        last_seq,
        &bob_token,
    )
    .await
    .expect("resumed");
    let offer = bob.signal("alice", description(true, "v=0 third")).await;
    let err = bob.next_error().await;
    assert_eq!(
        (err.code().as_str_name(), err.request_id),
        ("permission_denied", offer)
    );

    // Granted back: offers pass again.
    api.update_participant(with_token(update(true), &token))
        .await
        .expect("updated");
    bob.signal("alice", description(true, "v=0 fourth")).await;
    let got = alice.next_signal().await;
    assert_eq!(got.kind, Some(description(true, "v=0 fourth")));

    // Someone not in the room; a token without roomAdmin.
    let mut nobody = update(true);
    nobody.identity = "nobody".into();
    let refused = api.update_participant(with_token(nobody, &token)).await;
    assert_eq!(refused.expect_err("absent").code(), Code::NotFound);
    let kicker = backend_token(
        &one,
        "r1",
        pb::Grants {
            kick: true,
            ..Default::default()
        },
    );
    let refused = api
        .update_participant(with_token(update(true), &kicker))
        .await;
    let refused = refused.expect_err("no roomAdmin");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("roomAdmin"), "{refused:?}");
    one.shutdown().await;
    two.shutdown().await;
}

/// A room created ahead of its first join: its own maximum (in Joined's
/// limits, and enforced), its metadata (in Joined, then RoomUpdated to
/// every participant), listed by prefix in pages, deleted by CloseRoom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_room_has_its_own_maximum_and_metadata() {
    let stack = Stack::start().await;
    let mut api = api(&stack).await;
    let token = backend_token(&stack, "*", admin());
    let create = |room: &str| pb::CreateRoomRequest {
        room: room.into(),
        max_participants: 2,
        empty_timeout_seconds: 60,
        metadata: "{\"topic\":\"standup\"}".into(),
    };
    let room = api
        .create_room(with_token(create("team-standup"), &token))
        .await
        .expect("created")
        .into_inner();
    assert_eq!(
        (
            room.created,
            room.max_participants,
            room.num_participants,
            room.empty_timeout_seconds
        ),
        (true, 2, 0, 60)
    );
    let again = api
        .create_room(with_token(create("team-standup"), &token))
        .await;
    assert_eq!(again.expect_err("exists").code(), Code::AlreadyExists);
    let lister = backend_token(
        &stack,
        "*",
        pb::Grants {
            room_list: true,
            ..Default::default()
        },
    );
    let refused = api
        .create_room(with_token(create("team-other"), &lister))
        .await;
    let refused = refused.expect_err("no roomCreate");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("roomCreate"), "{refused:?}");

    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = alice.join(&stack.token("alice", "team-standup")).await;
    assert_eq!(joined.limits.map(|l| l.max_participants), Some(2));
    assert_eq!(joined.room_metadata, "{\"topic\":\"standup\"}");
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    bob.join(&stack.token("bob", "team-standup")).await;
    let mut carol = WsClient::connect(&stack.ws_url(), Format::Json).await;
    carol
        .send(In::Join(Box::new(pb::Join {
            token: stack.token("carol", "team-standup"),
            ..Default::default()
        })))
        .await;
    let err = carol.next_error().await;
    assert_eq!(err.code().as_str_name(), "room_full");
    assert!(err.message.contains("maximum of 2"), "{}", err.message);

    let updated = api
        .update_room_metadata(with_token(
            pb::UpdateRoomMetadataRequest {
                room: "team-standup".into(),
                metadata: "retro".into(),
            },
            &token,
        ))
        .await
        .expect("updated")
        .into_inner();
    assert_eq!(
        (updated.metadata.as_str(), updated.num_participants),
        ("retro", 2)
    );
    for client in [&mut alice, &mut bob] {
        let told = client
            .recv_until(|m| match m {
                Out::RoomUpdated(u) => Some(u.metadata.clone()),
                _ => None,
            })
            .await;
        assert_eq!(told, "retro");
    }
    let big = pb::UpdateRoomMetadataRequest {
        room: "team-standup".into(),
        metadata: "x".repeat(4 * 1024 + 1),
    };
    let refused = api.update_room_metadata(with_token(big, &token)).await;
    assert_eq!(refused.expect_err("too big").code(), Code::InvalidArgument);

    // Listing: created and occupied rooms, by prefix, a page at a time.
    for room in ["team-a", "team-b"] {
        api.create_room(with_token(create(room), &token))
            .await
            .expect("created");
    }
    let mut dave = WsClient::connect(&stack.ws_url(), Format::Json).await;
    dave.join(&stack.token("dave", "lobby")).await;
    let list = |page_token: &str| pb::ListRoomsRequest {
        prefix: "team-".into(),
        page_size: 2,
        page_token: page_token.into(),
    };
    let first = api
        .list_rooms(with_token(list(""), &token))
        .await
        .expect("listed")
        .into_inner();
    let names: Vec<_> = first.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["team-a", "team-b"]);
    let second = api
        .list_rooms(with_token(list(&first.next_page_token), &token))
        .await
        .expect("listed")
        .into_inner();
    let names: Vec<_> = second
        .rooms
        .iter()
        .map(|r| (r.name.as_str(), r.num_participants))
        .collect();
    assert_eq!(names, [("team-standup", 2)]);
    let all = api
        .list_rooms(with_token(pb::ListRoomsRequest::default(), &token))
        .await
        .expect("listed")
        .into_inner();
    let names: Vec<_> = all
        .rooms
        .iter()
        .map(|r| (r.name.as_str(), r.created))
        .collect();
    assert_eq!(
        names,
        [
            ("lobby", false),
            ("team-a", true),
            ("team-b", true),
            ("team-standup", true)
        ]
    );
    // A token for team-* lists only those.
    let team = backend_token(&stack, "team-*", admin());
    let listed = api
        .list_rooms(with_token(pb::ListRoomsRequest::default(), &team))
        .await
        .expect("listed")
        .into_inner();
    assert!(
        listed.rooms.iter().all(|r| r.name.starts_with("team-")),
        "{listed:?}"
    );
    // Paging one room at a time names no other room either, not even in
    // the page token ("lobby" sorts before, a later room after).
    let mut page_token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = api
            .list_rooms(with_token(
                pb::ListRoomsRequest {
                    page_size: 1,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &team,
            ))
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.rooms.iter().map(|r| r.name.clone()));
        assert!(
            page.next_page_token.is_empty() || page.next_page_token.starts_with("team-"),
            "the page token names a room outside the grant: {page:?}"
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ["team-a", "team-b", "team-standup"]);
    // A token for one exact room lists at most that room.
    let one = backend_token(&stack, "team", admin());
    let listed = api
        .list_rooms(with_token(pb::ListRoomsRequest::default(), &one))
        .await
        .expect("listed")
        .into_inner();
    assert!(
        listed.rooms.is_empty() && listed.next_page_token.is_empty(),
        "{listed:?}"
    );

    // CloseRoom deletes a created room.
    api.close_room(with_token(
        pb::CloseRoomRequest {
            room: "team-a".into(),
            reason: String::new(),
        },
        &token,
    ))
    .await
    .expect("closed");
    let room = api
        .get_room(with_token(
            pb::GetRoomRequest {
                room: "team-a".into(),
            },
            &token,
        ))
        .await
        .expect("room")
        .into_inner();
    assert!(!room.created, "{room:?}");
    stack.shutdown().await;
}

/// SendData into one room is rate limited (per room: another room is not
/// affected), with a clear, retryable code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_into_one_room_is_rate_limited() {
    let stack = Stack::start().await;
    let mut api = api(&stack).await;
    let token = backend_token(&stack, "*", admin());
    let send = |room: &str| pb::SendDataRequest {
        room: room.into(),
        topic: "t".into(),
        payload: "p".into(),
        ..Default::default()
    };
    let mut refused = None;
    for i in 0..1_000 {
        if let Err(status) = api.send_data(with_token(send("busy"), &token)).await {
            refused = Some((i, status));
            break;
        }
    }
    let (i, status) = refused.expect("refused within 1,000 calls");
    assert!(i >= 100, "the burst of 100 passes first (refused at {i})");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("SendData calls a second"),
        "{status:?}"
    );
    assert!(
        api.send_data(with_token(send("quiet"), &token))
            .await
            .is_ok(),
        "another room has its own rate"
    );
    stack.shutdown().await;
}

/// MoveParticipant keeps the session (its seq, its resume token) and moves
/// it: the old room hears `moved`, the new one a join, the participant
/// `moved` with its new peers; its signals follow it at once (the link
/// learns the new room), and a resume (whose token grants only the old
/// room) continues it in the new one. With Redis, across replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_keeps_the_session_and_its_seq() {
    let (_redis, _key, one, two) = crate::replicas::two_replicas().await;
    let mut api = api(&one).await;
    let token = backend_token(&one, "*", admin());
    let mut alice = WsClient::connect(&two.ws_url(), Format::Json).await;
    let mut bob = WsClient::connect(&two.ws_url(), Format::Json).await;
    let mut carol = WsClient::connect(&one.ws_url(), Format::Json).await;
    alice.join(&two.token("alice", "r1")).await;
    let bob_token = two.token("bob", "r1");
    let bob_joined = bob.join(&bob_token).await;
    carol.join(&one.token("carol", "r2")).await;
    alice
        .recv_until(|m| matches!(m, Out::ParticipantJoined(_)).then_some(()))
        .await;
    let seq_before = bob.last_seq;

    let moved = api
        .move_participant(with_token(
            pb::MoveParticipantRequest {
                room: "r1".into(),
                identity: "bob".into(),
                destination: "r2".into(),
            },
            &token,
        ))
        .await
        .expect("moved")
        .into_inner();
    assert_eq!(moved.id, "bob");
    let told = bob
        .recv_until(|m| match m {
            Out::Moved(m) => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        bob.last_seq,
        seq_before + 1,
        "the same session's next message"
    );
    let peers: Vec<_> = told.participants.iter().map(|p| p.id.as_str()).collect();
    assert_eq!((told.room.as_str(), peers), ("r2", vec!["carol"]));
    let left = alice.next_left().await;
    assert_eq!(
        (left.participant_id.as_str(), left.reason().as_str_name()),
        ("bob", "moved")
    );
    let joined = carol
        .recv_until(|m| match m {
            Out::ParticipantJoined(j) => j.participant.clone(),
            _ => None,
        })
        .await;
    assert_eq!(joined.id, "bob");

    // Bob's signals go to his new room at once; alice is out of reach.
    bob.signal("carol", description(true, "v=0 after the move"))
        .await;
    let got = carol.next_signal().await;
    assert_eq!(
        (got.from.as_str(), got.kind),
        ("bob", Some(description(true, "v=0 after the move")))
    );
    carol.signal("bob", description(false, "v=0 answer")).await;
    assert_eq!(bob.next_signal().await.from, "carol");
    let to_alice = bob.signal("alice", description(true, "v=0 old room")).await;
    let err = bob.next_error().await;
    assert_eq!(
        (err.code().as_str_name(), err.request_id),
        ("not_found", to_alice)
    );

    // A resume (its token grants r1 only) continues the session in r2.
    let last_seq = bob.last_seq;
    bob.drop_abruptly();
    let mut bob = WsClient::connect(&one.ws_url(), Format::Json).await;
    let resumed = bob
        .resume(
            &bob_joined.session_id,
            &bob_joined.resume_token,
            last_seq,
            &bob_token,
        )
        .await
        .expect("resumed");
    let peers: Vec<_> = resumed.participants.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(peers, ["carol"]);

    // Refusals: already there, a full destination, not in the room.
    let again = |room: &str, destination: &str| {
        let request = pb::MoveParticipantRequest {
            room: room.into(),
            identity: "bob".into(),
            destination: destination.into(),
        };
        with_token(request, &token)
    };
    let mut bob_elsewhere = WsClient::connect(&one.ws_url(), Format::Json).await;
    bob_elsewhere.join(&one.token("bob", "r3")).await;
    let occupied = api.move_participant(again("r2", "r3")).await;
    assert_eq!(
        occupied.expect_err("occupied").code(),
        Code::FailedPrecondition
    );
    api.create_room(with_token(
        pb::CreateRoomRequest {
            room: "tiny".into(),
            max_participants: 1,
            ..Default::default()
        },
        &token,
    ))
    .await
    .expect("created");
    let mut erin = WsClient::connect(&one.ws_url(), Format::Json).await;
    erin.join(&one.token("erin", "tiny")).await;
    let full = api.move_participant(again("r2", "tiny")).await;
    assert_eq!(full.expect_err("full").code(), Code::ResourceExhausted);
    let absent = api.move_participant(again("r1", "r2")).await;
    assert_eq!(absent.expect_err("not in r1").code(), Code::NotFound);
    one.shutdown().await;
    two.shutdown().await;
}
