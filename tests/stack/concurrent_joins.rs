//! Concurrent joins to one room, over two replicas sharing Redis
//! (standalone and a 3-master cluster): every joiner's log starts with
//! Joined (seq 1), and for every pair exactly one of "listed in Joined" or
//! "announced after it" holds — never both, never neither.

use std::{collections::HashSet, sync::Arc, time::Duration};

use switchboard_auth::{Jwk, KeyAlg};
use switchboard_proto::{pb::server_message::Message as Out, wire::Format};
use switchboard_signal::RedisConfig;
use switchboard_tests::{
    Stack, WsClient,
    redis_server::{RedisCluster, RedisServer},
};
use tokio::sync::Barrier;

const CLIENTS: usize = 10;
const ROUNDS: usize = 5;

async fn replicas(urls: Vec<String>) -> (Stack, Stack) {
    let key = Jwk::generate(KeyAlg::EdDsa, "shared").expect("key");
    let start = || {
        let (urls, key) = (urls.clone(), key.clone());
        Stack::start_with(move |config| {
            config.signal.redis = Some(RedisConfig {
                urls,
                record_ttl: Duration::from_secs(120),
            });
            config.keyring.signing_key = key;
        })
    };
    (start().await, start().await)
}

/// What one participant learnt of the others, and what broke the contract.
#[derive(Default)]
struct View {
    known: HashSet<String>,
    violations: Vec<String>,
}

impl View {
    fn take(&mut self, me: &str, message: &Out) {
        if let Out::ParticipantJoined(joined) = message {
            let id = joined
                .participant
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default();
            if !self.known.insert(id.clone()) {
                self.violations
                    .push(format!("{me} was told {id} joined, but already knew it"));
            }
        }
    }
}

async fn rounds(one: &Stack, two: &Stack, label: &str) {
    let mut violations = Vec::new();
    for round in 0..ROUNDS {
        let room = format!("{label}-{round}");
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let stack = if i % 2 == 0 { one } else { two };
                let (url, token) = (stack.ws_url(), stack.token(&format!("p{i}"), &room));
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let mut client = WsClient::connect(&url, Format::Json).await;
                    barrier.wait().await;
                    // join() asserts that the first message is Joined, seq 1.
                    let joined = client.join(&token).await;
                    (client, joined)
                })
            })
            .collect();
        let mut peers = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            let (client, joined) = task
                .await
                .expect("a join whose first message is Joined (seq 1)");
            let view = View {
                known: joined.participants.iter().map(|p| p.id.clone()).collect(),
                ..Default::default()
            };
            peers.push((format!("p{i}"), client, view));
        }
        // Everyone learns of everyone else...
        for (me, client, view) in &mut peers {
            while view.known.len() < CLIENTS - 1 {
                let message = client.recv().await;
                if let Some(m) = &message.message {
                    view.take(me, m);
                }
            }
        }
        // ...and nothing more: two round trips through every session's path
        // (the first orders every join's announcements before the second's
        // Ack in each log).
        for _ in 0..2 {
            for (me, client, view) in &mut peers {
                for message in client.barrier().await {
                    if let Some(m) = &message.message {
                        view.take(me, m);
                    }
                }
            }
        }
        for (me, _, view) in &peers {
            assert_eq!(view.known.len(), CLIENTS - 1, "{me} knows everyone");
            violations.extend(view.violations.iter().cloned());
        }
    }
    assert!(
        violations.is_empty(),
        "{} violations of the join contract, e.g. {:?}",
        violations.len(),
        violations.iter().take(5).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_on_redis_keep_the_join_contract() {
    let redis = RedisServer::start(false).await;
    let (one, two) = replicas(vec![redis.url()]).await;
    rounds(&one, &two, "standalone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_on_a_cluster_keep_the_join_contract() {
    let cluster = RedisCluster::start().await;
    let (one, two) = replicas(cluster.seeds()).await;
    rounds(&one, &two, "cluster").await;
}
