//! A signal replica killed or stalled under streaming senders.

use std::time::Duration;

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};
use switchboard_proto::{pb::server_message::Message as Out, wire::Format};

use tokio::sync::watch;

use crate::{cluster::*, peers::*};
use switchboard_tests::{WsClient, description, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_replica_killed_mid_stream_loses_nothing() {
    let mut cluster = Cluster::start("2").await;
    let (edge0, edge1) = (ws(cluster.edge(0)), ws(cluster.edge(1)));
    // Alice and the watcher on pair 0; bob and carol on pair 1.
    let mut alice = WsClient::connect(&edge0, Format::Json).await;
    alice.join(&token("alice", "faults")).await;
    let mut watcher = WsClient::connect(&edge0, Format::Json).await;
    watcher.join(&token("watcher", "faults")).await;
    let mut bob = Receiver::join(&edge1, token("bob", "faults")).await;
    let mut carol = WsClient::connect(&edge1, Format::Json).await;
    carol.join(&token("carol", "faults")).await;

    let (third, under_way) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(async move {
        let mut third = Some(third);
        // A steady pace: one message every 3 ms.
        let mut pace = tokio::time::interval(Duration::from_millis(3));
        for n in 0..STREAM {
            pace.tick().await;
            alice
                .signal("bob", description(true, &format!("n={n}")))
                .await;
            if n == STREAM / 3 {
                let _ = third.take().map(|t| t.send(()));
            }
        }
        alice
    });
    let receiver = tokio::spawn(async move {
        let edges = [edge0.clone()];
        bob.receive(STREAM, "alice", &edges).await;
        bob
    });
    // Kill replica 1 (holding bob's and carol's sessions) a third of the
    // way through the stream.
    under_way.await.expect("sender running");
    cluster.signals[1].take().expect("running").kill9().await;

    let _alice = sender.await.expect("sender");
    let bob = receiver.await.expect("receiver");
    let (lost, duplicated, reordered) = bob.checker.counts(STREAM);
    eprintln!(
        "replica kill -9: sent {STREAM}, received {}, lost {lost}, duplicated {duplicated}, reordered {reordered}, \
         wrong sender {}, resumes {:?}",
        bob.checker.received.len(),
        bob.checker.wrong_sender,
        bob.resumes
    );
    assert_eq!(
        (lost, duplicated, reordered, bob.checker.wrong_sender),
        (0, 0, 0, 0)
    );
    assert!(
        !bob.resumes.is_empty(),
        "bob had to resume on the surviving replica"
    );

    // Carol never came back: the surviving replica reaps the dead one and
    // ends her session when the resume window passes.
    let left = watcher.recv_until(|m| match m {
        Out::ParticipantLeft(l) if l.participant_id == "carol" => Some(l.clone()),
        _ => None,
    });
    let left = tokio::time::timeout(Duration::from_secs(20), left)
        .await
        .expect("carol's session ended");
    assert_eq!(left.reason().as_str_name(), "disconnected");
    drop(carol);
}

/// Pairs streaming numbered messages across a fault: sender i on edge
/// `i % 2`, its receiver on the other edge, so both sides of every pair
/// feel a fault of either replica.
pub struct Streams {
    pub pairs: usize,
    pub count: u64,
    pub every: Duration,
    /// Edges clients resume through.
    pub edges: Vec<String>,
}

/// What the checker counted over every pair.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub delivered: u64,
    /// Neither delivered nor refused with an error its sender saw.
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub wrong_sender: u64,
    /// Refused with an error the sender saw (and not delivered).
    pub refused: u64,
    pub resumes: usize,
    pub resent: usize,
}

impl Tally {
    /// Every message delivered exactly once and in order, or refused with
    /// an error its sender saw.
    pub fn assert_exactly_once(&self, what: &str) {
        assert_eq!(
            (
                self.lost,
                self.duplicated,
                self.reordered,
                self.wrong_sender
            ),
            (0, 0, 0, 0),
            "{what}: {self:?}"
        );
    }
}

impl Streams {
    /// Runs the streams in `room`; `fault` runs once a third of all
    /// messages were sent.
    pub async fn run<F: std::future::Future<Output = ()>>(
        &self,
        cluster: &Cluster,
        room: &str,
        fault: F,
    ) -> Tally {
        let urls = [ws(cluster.edge(0)), ws(cluster.edge(1))];
        let progress = Arc::new(AtomicU64::new(0));
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for i in 0..self.pairs {
            let mut sender = Sender::join(&urls[i % 2], token(&format!("s{i}"), room)).await;
            sender.progress = progress.clone();
            senders.push(sender);
            receivers.push(Receiver::join(&urls[(i + 1) % 2], token(&format!("r{i}"), room)).await);
        }
        let mut expected_txs = Vec::new();
        let receiving: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                let (tx, rx) = watch::channel(None);
                expected_txs.push(tx);
                let edges = self.edges.clone();
                tokio::spawn(async move {
                    r.receive_expected(&format!("s{i}"), &edges, rx, Duration::from_secs(30))
                        .await;
                    r
                })
            })
            .collect();
        let sending: Vec<_> = senders
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let (edges, count, every) = (self.edges.clone(), self.count, self.every);
                tokio::spawn(s.run(
                    format!("r{i}"),
                    count,
                    every,
                    edges,
                    Duration::from_secs(60),
                ))
            })
            .collect();
        let third = self.pairs as u64 * self.count / 3;
        wait_until(
            "a third of the stream sent",
            Duration::from_secs(60),
            || {
                let progress = progress.clone();
                async move { progress.load(Ordering::Relaxed) >= third }
            },
        )
        .await;
        fault.await;

        let mut tally = Tally::default();
        let mut refusals = Vec::new();
        for s in sending {
            let s = s.await.expect("sender");
            tally.resumes += s.resumes.len();
            tally.resent += s.resent;
            refusals.push(s.refused);
        }
        for (tx, refused) in expected_txs.iter().zip(&refusals) {
            let expected: HashSet<u64> = (0..self.count).filter(|n| !refused.contains(n)).collect();
            let _ = tx.send(Some(expected));
        }
        for (r, refused) in receiving.into_iter().zip(&refusals) {
            let r = r.await.expect("receiver");
            let (lost, duplicated, reordered) = r.checker.counts(self.count);
            let got: HashSet<u64> = r.checker.received.iter().copied().collect();
            let refused_only = refused.iter().filter(|n| !got.contains(n)).count() as u64;
            tally.sent += self.count;
            tally.delivered += got.len() as u64;
            tally.lost += lost - refused_only;
            tally.refused += refused_only;
            tally.duplicated += duplicated;
            tally.reordered += reordered;
            tally.wrong_sender += r.checker.wrong_sender;
            tally.resumes += r.resumes.len();
        }
        tally
    }
}

/// A `kill -9` of one of two replicas while 20 senders stream at 50 msg/s,
/// repeated: every message is delivered exactly once (client seq, Accepted,
/// resend after resume, duplicates dropped by the receiver's log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_twenty_senders_loses_and_duplicates_nothing() {
    const REPETITIONS: usize = 10;
    let mut totals = Vec::new();
    for round in 0..REPETITIONS {
        let mut cluster = Cluster::start("30").await;
        let streams = Streams {
            pairs: 20,
            count: 60,
            every: Duration::from_millis(20),
            edges: vec![ws(cluster.edge(0))],
        };
        let victim = cluster.signals[1].take().expect("running");
        let tally = streams
            .run(&cluster, &format!("kill-{round}"), victim.kill9())
            .await;
        eprintln!("replica kill -9, round {round}: {tally:?}");
        assert!(tally.resumes > 0, "the kill was felt: {tally:?}");
        totals.push(tally);
    }
    for (round, tally) in totals.iter().enumerate() {
        tally.assert_exactly_once(&format!("round {round}"));
    }
}

/// Stops replica 1 (`SIGSTOP`) for `stall` mid-stream, then lets it go on.
async fn stall(cluster: &Cluster, stall: Duration, room: &str) -> Tally {
    let pid = cluster.signals[1]
        .as_ref()
        .expect("running")
        .child
        .id()
        .expect("pid");
    let streams = Streams {
        pairs: 10,
        count: (stall.as_secs() * 20 + 60).max(100),
        every: Duration::from_millis(50),
        edges: vec![ws(cluster.edge(0)), ws(cluster.edge(1))],
    };
    let fault = async move {
        signal(pid, "-STOP");
        tokio::time::sleep_until(tokio::time::Instant::now() + stall).await;
        signal(pid, "-CONT");
    };
    streams.run(cluster, room, fault).await
}

pub fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// A replica that stalls for 2 s (under the stall budget) keeps its
/// sessions; one that stalls for 10 s is reaped by the other, finds out
/// when it wakes (fenced), and closes its connections so its clients
/// resume. Either way every message is delivered or refused with an error
/// its sender saw: none is silently lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_replica_loses_nothing_silently() {
    for seconds in [2, 10] {
        let cluster = Cluster::start("30").await;
        let tally = stall(
            &cluster,
            Duration::from_secs(seconds),
            &format!("stall-{seconds}"),
        )
        .await;
        eprintln!("replica SIGSTOP {seconds} s: {tally:?}");
        tally.assert_exactly_once(&format!("{seconds} s stall"));
        if seconds == 10 {
            assert!(
                tally.resumes > 0,
                "the fenced replica's clients resumed: {tally:?}"
            );
        }
    }
}
