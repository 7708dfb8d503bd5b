//! The SessionStore behaviour suite, run against the in-memory store,
//! standalone Redis and a 3-master Redis Cluster (both started here on
//! ephemeral ports). Every implementation must pass the same assertions.

use std::{collections::HashMap, sync::Arc, time::Duration};

use switchboard_proto::{ParticipantId, RoomId, SessionId};
use switchboard_signal::store::{
    CreateOutcome, IdentityClaim, JoinOutcome, MemoryStore, MoveOutcome, RecordPatch,
    RedisConnection, RedisStore, RoomSettings, SessionRecord, SessionStore,
};
use switchboard_tests::{
    DEADLINE,
    redis_server::{RedisCluster, RedisServer, command},
};

fn record(room: &str, participant: &str) -> SessionRecord {
    SessionRecord {
        id: SessionId::random(),
        room: RoomId::new(room).expect("room"),
        participant: ParticipantId::new(participant).expect("participant"),
        name: format!("{participant} name"),
        attributes: HashMap::from([("audio".to_string(), "on".to_string())]),
        joined_at_ms: 1_700_000_000_000,
        publish: true,
        moved: false,
    }
}

fn ids(records: &[SessionRecord]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.participant.to_string()).collect();
    ids.sort();
    ids
}

/// Joins with room to spare: (replaced, the others listed, sorted).
async fn join(
    store: &Arc<dyn SessionStore>,
    record: &SessionRecord,
) -> (Option<SessionRecord>, Vec<String>) {
    match store.join(record.clone(), 1_000).await.expect("join") {
        JoinOutcome::Joined { replaced, others } => (replaced, ids(&others)),
        JoinOutcome::Full => panic!("room full"),
    }
}

async fn suite(store: Arc<dyn SessionStore>) {
    // A room admits `max_participants`; a participant already in it may
    // join again (replacing its session) when it is full.
    let (x, y, z) = (
        record("capped", "x"),
        record("capped", "y"),
        record("capped", "z"),
    );
    for r in [&x, &y] {
        assert!(matches!(
            store.join(r.clone(), 2).await.expect("join"),
            JoinOutcome::Joined { .. }
        ));
    }
    assert_eq!(
        store.join(z.clone(), 2).await.expect("join"),
        JoinOutcome::Full
    );
    assert_eq!(
        store.session(z.id).await.expect("session"),
        None,
        "nothing left behind"
    );
    let x2 = record("capped", "x");
    assert!(matches!(
        store.join(x2.clone(), 2).await.expect("join"),
        JoinOutcome::Joined {
            replaced: Some(_),
            ..
        }
    ));
    for r in [&x2, &y] {
        store.leave(r.id).await.expect("leave");
    }

    // Rooms with braces and spaces exercise the hash-tag key schema.
    for room in ["r1", "team {red}", "x}y{z", "}x", "{"] {
        let alice = record(room, "alice");
        let bob = record(room, "bob");
        assert_eq!(join(&store, &alice).await, (None, vec![]));
        assert_eq!(
            join(&store, &bob).await,
            (None, vec!["alice".to_string()]),
            "the join lists who was there at that instant"
        );
        let room_id = RoomId::new(room).expect("room");
        assert_eq!(
            store.session(alice.id).await.expect("session"),
            Some(alice.clone())
        );
        assert_eq!(
            ids(&store.members(&room_id).await.expect("members")),
            ["alice", "bob"]
        );
        assert_eq!(
            store
                .member(&room_id, &alice.participant)
                .await
                .expect("member"),
            Some(alice.id)
        );

        // The same identity joining again replaces the old session.
        let alice2 = record(room, "alice");
        assert_eq!(
            join(&store, &alice2).await,
            (Some(alice.clone()), vec!["bob".to_string()])
        );
        assert_eq!(store.session(alice.id).await.expect("session"), None);
        assert_eq!(
            store
                .member(&room_id, &alice.participant)
                .await
                .expect("member"),
            Some(alice2.id)
        );
        // One lookup answers for several participants, in order.
        let nobody = ParticipantId::new("nobody").expect("id");
        let holders = store
            .lookup(&room_id, &[&alice.participant, &nobody, &bob.participant])
            .await
            .expect("lookup");
        assert_eq!(holders, vec![Some(alice2.id), None, Some(bob.id)]);
        // Leaving the replaced session changes nothing.
        assert_eq!(store.leave(alice.id).await.expect("leave"), None);
        assert_eq!(
            ids(&store.members(&room_id).await.expect("members")),
            ["alice", "bob"]
        );

        // Attributes.
        let muted = HashMap::from([("audio".to_string(), "off".to_string())]);
        let patch = RecordPatch {
            attributes: Some(muted.clone()),
            ..RecordPatch::default()
        };
        let updated = store
            .update(bob.id, &patch)
            .await
            .expect("set")
            .expect("exists");
        assert_eq!(updated.attributes, muted);
        assert!(updated.publish, "what the patch does not name is kept");
        let revoked = RecordPatch {
            name: Some("Robert".into()),
            publish: Some(false),
            ..RecordPatch::default()
        };
        let updated = store.update(bob.id, &revoked).await.expect("set");
        let updated = updated.expect("exists");
        assert_eq!(
            (updated.name.as_str(), updated.publish, &updated.attributes),
            ("Robert", false, &muted)
        );
        assert_eq!(
            store
                .session(bob.id)
                .await
                .expect("session")
                .expect("exists")
                .attributes,
            muted
        );
        assert_eq!(
            store
                .update(SessionId::random(), &patch)
                .await
                .expect("set"),
            None
        );

        // Leaving.
        assert_eq!(
            store.leave(bob.id).await.expect("leave").map(|r| r.id),
            Some(bob.id)
        );
        assert_eq!(store.leave(bob.id).await.expect("leave again"), None);
        assert_eq!(
            store
                .member(&room_id, &bob.participant)
                .await
                .expect("member"),
            None
        );
        assert_eq!(
            ids(&store.members(&room_id).await.expect("members")),
            ["alice"]
        );
        assert!(store.leave(alice2.id).await.expect("leave").is_some());
        assert!(store.members(&room_id).await.expect("members").is_empty());
    }
    // Rooms do not see each other.
    let a = record("ra", "same");
    let b = record("rb", "same");
    join(&store, &a).await;
    join(&store, &b).await;
    assert_eq!(
        store.members(&a.room).await.expect("members"),
        vec![a.clone()]
    );
    assert_eq!(
        store.members(&b.room).await.expect("members"),
        vec![b.clone()]
    );
    store.leave(a.id).await.expect("leave");
    store.leave(b.id).await.expect("leave");
    rooms(&store).await;
    moves(&store).await;
    identities(&store).await;
}

/// An identity's sessions: claimed up to the maximum (a claim already held
/// is held), refused past it with the holders oldest first, released one
/// by one; nothing is left once all are released.
async fn identities(store: &Arc<dyn SessionStore>) {
    let alice = ParticipantId::new("alice").expect("identity");
    let bob = ParticipantId::new("bob").expect("identity");
    let (one, two, three) = (
        SessionId::random(),
        SessionId::random(),
        SessionId::random(),
    );
    let claim = |who: &ParticipantId, session: SessionId, at: u64| {
        let (store, who) = (store.clone(), who.clone());
        async move {
            store
                .claim_identity(&who, session, 2, at)
                .await
                .expect("claim")
        }
    };
    assert_eq!(claim(&alice, one, 1).await, IdentityClaim::Held);
    assert_eq!(claim(&alice, two, 2).await, IdentityClaim::Held);
    assert_eq!(
        claim(&alice, two, 3).await,
        IdentityClaim::Held,
        "already held"
    );
    assert_eq!(
        claim(&alice, three, 4).await,
        IdentityClaim::Full(vec![one, two])
    );
    assert_eq!(
        claim(&bob, three, 5).await,
        IdentityClaim::Held,
        "per identity"
    );
    store.release_identity(&alice, one).await.expect("release");
    store
        .release_identity(&alice, one)
        .await
        .expect("released twice");
    assert_eq!(claim(&alice, three, 6).await, IdentityClaim::Held);
    for (who, session) in [(&alice, two), (&alice, three), (&bob, three)] {
        store.release_identity(who, session).await.expect("release");
    }
}

/// A session moved to another room keeps its id; both rooms' membership
/// follows; a destination holding the identity, or full, refuses.
async fn moves(store: &Arc<dyn SessionStore>) {
    let (a, b, c) = (record("ma", "a"), record("ma", "b"), record("mb", "c"));
    for r in [&a, &b, &c] {
        join(store, r).await;
    }
    let to = RoomId::new("mb").expect("room");
    let MoveOutcome::Moved {
        record: moved,
        others,
        left_empty,
    } = store.move_session(b.id, &to, 1_000).await.expect("move")
    else {
        panic!("not moved");
    };
    assert_eq!((moved.id, &moved.room, moved.moved), (b.id, &to, true));
    assert_eq!((ids(&others), left_empty), (vec!["c".to_owned()], false));
    assert_eq!(ids(&store.members(&a.room).await.expect("members")), ["a"]);
    assert_eq!(ids(&store.members(&to).await.expect("members")), ["b", "c"]);
    let now = store.session(b.id).await.expect("session").expect("exists");
    assert_eq!((now.room, now.moved), (to.clone(), true));
    // The last one out empties its room.
    let MoveOutcome::Moved { left_empty, .. } =
        store.move_session(a.id, &to, 1_000).await.expect("move")
    else {
        panic!("not moved");
    };
    assert!(left_empty);
    assert!(store.members(&a.room).await.expect("members").is_empty());
    // Refusals.
    let d = record("mc", "c");
    join(store, &d).await;
    let mc = RoomId::new("mc").expect("room");
    assert_eq!(
        store.move_session(c.id, &mc, 1_000).await.expect("move"),
        MoveOutcome::Occupied
    );
    assert_eq!(
        store.move_session(a.id, &mc, 1).await.expect("move"),
        MoveOutcome::Full
    );
    assert_eq!(
        store
            .move_session(SessionId::random(), &mc, 1_000)
            .await
            .expect("move"),
        MoveOutcome::Gone
    );
    for r in [&a, &b, &c, &d] {
        store.leave(r.id).await.expect("leave");
    }
    assert!(
        store
            .list_rooms("m", "", 10)
            .await
            .expect("list")
            .is_empty()
    );
}

/// Rooms' own settings: creation, their maximum, metadata, the empty
/// timeout, listing by prefix in pages, deletion, the room limit.
async fn rooms(store: &Arc<dyn SessionStore>) {
    let name = |n: &str| RoomId::new(n).expect("room");
    let made = name("made");
    let settings = RoomSettings {
        max_participants: 2,
        empty_timeout: Duration::from_secs(2),
        metadata: "standup".into(),
        created: true,
        created_at_ms: 1,
    };
    let CreateOutcome::Created(info) = store
        .create_room(&made, settings.clone(), 100)
        .await
        .expect("create")
    else {
        panic!("not created");
    };
    assert_eq!((info.members, info.settings), (0, Some(settings.clone())));
    assert_eq!(
        store
            .create_room(&made, settings.clone(), 100)
            .await
            .expect("create"),
        CreateOutcome::Exists
    );
    // Its own maximum applies, below the service's.
    let (x, y, z) = (
        record("made", "x"),
        record("made", "y"),
        record("made", "z"),
    );
    join(store, &x).await;
    join(store, &y).await;
    assert_eq!(
        store.join(z.clone(), 1_000).await.expect("join"),
        JoinOutcome::Full
    );
    let updated = store.set_room_metadata(&made, "retro").await.expect("set");
    assert_eq!(
        updated.map(|i| (i.members, i.metadata().to_owned())),
        Some((2, "retro".into()))
    );
    assert_eq!(
        store
            .set_room_metadata(&name("nowhere"), "x")
            .await
            .expect("set"),
        None,
        "a room that does not exist has no metadata to set"
    );
    // Emptied, it lives on for its empty timeout, then goes.
    store.leave(x.id).await.expect("leave");
    store.leave(y.id).await.expect("leave");
    let info = store.room(&made).await.expect("room");
    assert!(info.exists() && info.members == 0, "{info:?}");
    switchboard_tests::wait_until("the empty room times out", DEADLINE, || async {
        !store.room(&made).await.expect("room").exists()
    })
    .await;
    assert!(
        store
            .list_rooms("made", "", 10)
            .await
            .expect("list")
            .is_empty()
    );

    // Metadata on a room that exists through its members goes with them.
    let p = record("plain", "p");
    join(store, &p).await;
    assert!(
        store
            .set_room_metadata(&p.room, "m")
            .await
            .expect("set")
            .is_some()
    );
    store.leave(p.id).await.expect("leave");
    assert_eq!(store.room(&p.room).await.expect("room").settings, None);

    // Listing: by prefix, in name order, a page at a time; occupied rooms
    // and created ones alike.
    let occupied = record("page-b", "o");
    join(store, &occupied).await;
    for room in ["page-c", "page-a", "other"] {
        let created = store.create_room(&name(room), settings.clone(), 100).await;
        assert!(matches!(
            created.expect("create"),
            CreateOutcome::Created(_)
        ));
    }
    let names = |rooms: Vec<switchboard_signal::store::RoomInfo>| {
        rooms
            .into_iter()
            .map(|r| r.name.to_string())
            .collect::<Vec<_>>()
    };
    let first = store.list_rooms("page-", "", 2).await.expect("list");
    assert_eq!(names(first), ["page-a", "page-b"]);
    let second = store.list_rooms("page-", "page-b", 2).await.expect("list");
    assert_eq!(names(second), ["page-c"]);
    // The limit counts every room that exists (4 here).
    assert_eq!(
        store
            .create_room(&name("fifth"), settings.clone(), 4)
            .await
            .expect("create"),
        CreateOutcome::TooMany
    );
    for room in ["page-c", "page-a", "other"] {
        store.delete_room(&name(room)).await.expect("delete");
    }
    store.leave(occupied.id).await.expect("leave");
    assert!(
        store
            .list_rooms("", "", 100)
            .await
            .expect("list")
            .is_empty()
    );
}

/// After the suite, nothing of Switchboard's is left in `port`'s keyspace.
async fn no_keys_left(port: u16) {
    let keys = command(port, "KEYS sb:*").await.expect("keys");
    assert_eq!(keys.trim(), "*0", "orphaned keys on port {port}: {keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_standalone_store() {
    let redis = RedisServer::start(false).await;
    let connection = RedisConnection::connect(&[redis.url()])
        .await
        .expect("connect");
    suite(Arc::new(RedisStore::new(
        connection,
        Duration::from_secs(60),
    )))
    .await;
    no_keys_left(redis.port).await;
    // Every key carries a TTL while it exists.
    let connection = RedisConnection::connect(&[redis.url()])
        .await
        .expect("connect");
    let store = RedisStore::new(connection, Duration::from_secs(60));
    store.join(record("ttl", "t"), 1_000).await.expect("join");
    let keys = command(redis.port, "KEYS sb:*").await.expect("keys");
    let keys: Vec<&str> = keys.lines().filter(|l| l.starts_with("sb:")).collect();
    assert_eq!(
        keys.len(),
        4,
        "members, session, locator keys and the index: {keys:?}"
    );
    // The room index is owned (its entries go with their rooms).
    for key in keys.into_iter().filter(|k| *k != "sb:rooms") {
        let ttl = command(redis.port, &format!("TTL \"{key}\""))
            .await
            .expect("ttl");
        let ttl: i64 = ttl.trim().trim_start_matches(':').parse().expect("integer");
        assert!((1..=60).contains(&ttl), "{key} has TTL {ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store() {
    let cluster = RedisCluster::start().await;
    let connection = RedisConnection::connect(&cluster.seeds())
        .await
        .expect("connect");
    suite(Arc::new(RedisStore::new(
        connection,
        Duration::from_secs(60),
    )))
    .await;
    for node in &cluster.nodes {
        no_keys_left(node.port).await;
    }
}
