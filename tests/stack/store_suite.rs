//! The SessionStore behaviour suite, run against the in-memory store,
//! standalone Redis and a 3-master Redis Cluster (both started here on
//! ephemeral ports). Every implementation must pass the same assertions.

use std::{collections::HashMap, sync::Arc, time::Duration};

use switchboard_proto::{ParticipantId, RoomId, SessionId};
use switchboard_signal::store::{
    JoinOutcome, MemoryStore, RedisConnection, RedisStore, SessionRecord, SessionStore,
};
use switchboard_tests::redis_server::{RedisCluster, RedisServer, command};

fn record(room: &str, participant: &str) -> SessionRecord {
    SessionRecord {
        id: SessionId::random(),
        room: RoomId::new(room).expect("room"),
        participant: ParticipantId::new(participant).expect("participant"),
        name: format!("{participant} name"),
        attributes: HashMap::from([("audio".to_string(), "on".to_string())]),
        joined_at_ms: 1_700_000_000_000,
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
        let updated = store
            .set_attributes(bob.id, muted.clone())
            .await
            .expect("set")
            .expect("exists");
        assert_eq!(updated.attributes, muted);
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
                .set_attributes(SessionId::random(), muted)
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
    assert_eq!(keys.len(), 3, "members, session and locator keys: {keys:?}");
    for key in keys {
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
