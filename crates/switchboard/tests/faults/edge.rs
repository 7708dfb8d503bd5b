//! An edge restart, and clients whose network drops.

use std::time::Duration;

use crate::{cluster::*, peers::*};
use switchboard_proto::wire::Format;
use switchboard_tests::WsClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_restart_and_client_drops_lose_nothing() {
    let mut cluster = Cluster::start("30").await;
    let (edge0, edge1) = (ws(cluster.edge(0)), ws(cluster.edge(1)));
    const PER: u64 = 60;
    const RECEIVERS: usize = 10;

    // Edge 1 restarts (SIGTERM: drain, clients told 1012) mid-stream.
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "edge-restart")).await;
    let list = receivers(&edge1, RECEIVERS, "edge-restart").await;
    let (third, under_way) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(stream(alice, RECEIVERS, PER, third));
    let handles = spawn_receivers(list, PER, vec![edge0.clone()]);
    under_way.await.expect("sender running");
    let edge = cluster.edges[1].take().expect("running");
    let (status, drained) = edge.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "edge exit status {status:?}");
    let alice = sender.await.expect("sender");
    let mut resumes = check(handles, PER, "edge restart").await;
    assert_eq!(
        resumes.len(),
        RECEIVERS,
        "every client of the restarted edge resumed once"
    );
    eprintln!(
        "edge restart: drained in {drained:?}; resume p50 {:?}, p99 {:?}",
        percentile(&mut resumes, 0.5),
        percentile(&mut resumes, 0.99)
    );
    drop(alice);

    // Clients whose network drops mid-stream resume through the other edge.
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "drops")).await;
    let mut list = receivers(&edge0, RECEIVERS, "drops").await;
    for (i, r) in list.iter_mut().enumerate() {
        r.drop_at = Some(10 + i);
    }
    let (third, _under_way) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(stream(alice, RECEIVERS, PER, third));
    let handles = spawn_receivers(list, PER, vec![edge0.clone()]);
    let _alice = sender.await.expect("sender");
    let resumes = check(handles, PER, "client drop").await;
    assert_eq!(resumes.len(), RECEIVERS);
    let _ = edge1;
}
