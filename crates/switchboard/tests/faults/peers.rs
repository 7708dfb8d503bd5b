//! Test participants that survive faults: receivers that resume and check
//! what they get, senders that number, resend and account.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::cluster::*;
use switchboard_proto::{
    pb::{self, peer_signal::Kind, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{WsClient, description};

/// What the receiver saw of a numbered stream.
#[derive(Debug, Default)]
pub struct Checker {
    pub received: Vec<u64>,
    pub wrong_sender: u64,
}

impl Checker {
    pub fn record(&mut self, signal: &pb::PeerSignal, from: &str) {
        if signal.from != from {
            self.wrong_sender += 1;
            return;
        }
        if let Some(Kind::Description(d)) = &signal.kind
            && let Some(n) = d.sdp.strip_prefix("n=").and_then(|n| n.parse().ok())
        {
            self.received.push(n);
        }
    }

    /// (lost, duplicated, reordered) against 0..total.
    pub fn counts(&self, total: u64) -> (u64, u64, u64) {
        let mut seen = std::collections::HashSet::new();
        let duplicated = self.received.iter().filter(|n| !seen.insert(**n)).count() as u64;
        let lost = (0..total).filter(|n| !seen.contains(n)).count() as u64;
        let reordered = self.received.windows(2).filter(|w| w[1] < w[0]).count() as u64;
        (lost, duplicated, reordered)
    }
}

/// A receiving participant that reconnects and resumes through any edge
/// whenever its connection closes, until it has `total` messages.
pub struct Receiver {
    pub token: String,
    pub session: String,
    pub resume_token: String,
    pub client: WsClient,
    pub checker: Checker,
    pub resumes: Vec<Duration>,
    /// When each of its connections was closed under it.
    pub closes: Vec<Instant>,
    /// Drop the socket abruptly once this many messages arrived.
    pub drop_at: Option<usize>,
}

impl Receiver {
    pub async fn join(url: &str, token: String) -> Self {
        let mut client = WsClient::connect(url, Format::Json).await;
        let joined = client.join(&token).await;
        Self {
            token,
            session: joined.session_id,
            resume_token: joined.resume_token,
            client,
            checker: Checker::default(),
            resumes: Vec::new(),
            closes: Vec::new(),
            drop_at: None,
        }
    }

    pub async fn receive(&mut self, total: u64, from: &str, edges: &[String]) {
        let mut attempt = 0;
        while (self.checker.received.len() as u64) < total {
            let next = if self.drop_at == Some(self.checker.received.len()) {
                // The network goes away under the client.
                self.drop_at = None;
                let client = std::mem::replace(
                    &mut self.client,
                    WsClient::connect(&edges[0], Format::Json).await,
                );
                let last_seq = client.last_seq;
                client.drop_abruptly();
                self.client.last_seq = last_seq;
                Err(switchboard_tests::Closed {
                    code: 1006,
                    reason: "dropped".into(),
                })
            } else {
                self.client.next().await
            };
            self.take(next, from, edges, &mut attempt).await;
        }
    }

    /// Receives until every message in `expected` (once it is known) has
    /// arrived, or `deadline` passes after it is known.
    pub async fn receive_expected(
        &mut self,
        from: &str,
        edges: &[String],
        mut expected: watch::Receiver<Option<HashSet<u64>>>,
        deadline: Duration,
    ) {
        let mut attempt = 0;
        let mut until: Option<tokio::time::Instant> = None;
        loop {
            if let Some(set) = expected.borrow().as_ref() {
                let got: HashSet<u64> = self.checker.received.iter().copied().collect();
                if set.is_subset(&got) {
                    return;
                }
                until.get_or_insert_with(|| tokio::time::Instant::now() + deadline);
            }
            let within = until.map_or(Duration::from_secs(120), |u| {
                u.saturating_duration_since(tokio::time::Instant::now())
            });
            tokio::select! {
                next = self.client.next_within(within) => match next {
                    Some(next) => self.take(next, from, edges, &mut attempt).await,
                    None => return, // the caller counts what is missing
                },
                _ = expected.changed() => {}
            }
        }
    }

    /// Records a message, or resumes through `edges` after a close.
    async fn take(
        &mut self,
        next: Result<pb::ServerMessage, switchboard_tests::Closed>,
        from: &str,
        edges: &[String],
        attempt: &mut usize,
    ) {
        match next {
            Ok(message) => {
                if let Some(Out::Signal(signal)) = &message.message {
                    self.checker.record(signal, from);
                }
                if let Some(Out::TokenRefreshed(t)) = &message.message {
                    self.token = t.token.clone();
                }
            }
            Err(closed) => {
                let started = Instant::now();
                self.closes.push(started);
                let (client, resumed) = resume(
                    edges,
                    attempt,
                    &self.session,
                    &self.resume_token,
                    self.client.last_seq,
                    &self.token,
                )
                .await;
                assert!(resumed.complete, "resume after {closed:?} was incomplete");
                self.resume_token = resumed.resume_token;
                self.client = client;
                self.resumes.push(started.elapsed());
            }
        }
    }
}

/// Reconnects through the next edge (round robin) and resumes, until a
/// resume succeeds; a refusal must be retryable (the replica holding the
/// session may still be going away).
pub async fn resume(
    edges: &[String],
    attempt: &mut usize,
    session: &str,
    resume_token: &str,
    last_seq: u64,
    token: &str,
) -> (WsClient, pb::Resumed) {
    loop {
        *attempt += 1;
        let url = &edges[*attempt % edges.len()];
        let mut client = WsClient::connect(url, Format::Json).await;
        match client.resume(session, resume_token, last_seq, token).await {
            Ok(resumed) => return (client, resumed),
            Err(err) => assert!(err.retryable || *attempt < 40, "resume refused: {err:?}"),
        }
    }
}

/// A sending participant that numbers its messages (client seq), keeps
/// what the server has not accepted, resumes through any edge when its
/// connection closes and sends the unaccepted again: exactly once.
pub struct Sender {
    pub token: String,
    pub session: String,
    pub resume_token: String,
    pub client: WsClient,
    next_id: u32,
    next_seq: u64,
    /// Sent, not yet covered by an Accepted.
    outbox: VecDeque<pb::ClientMessage>,
    /// Request id → stream number, to account for refusals.
    numbers: HashMap<u32, u64>,
    /// Stream numbers refused with an error this sender saw.
    pub refused: HashSet<u64>,
    pub resumes: Vec<Duration>,
    /// Messages sent again after a resume.
    pub resent: usize,
    /// Counts first sends (shared by the senders of a test).
    pub progress: Arc<AtomicU64>,
}

impl Sender {
    pub async fn join(url: &str, token: String) -> Self {
        let mut client = WsClient::connect(url, Format::Json).await;
        let joined = client.join(&token).await;
        Self {
            token,
            session: joined.session_id,
            resume_token: joined.resume_token,
            client,
            next_id: 100,
            next_seq: 0,
            outbox: VecDeque::new(),
            numbers: HashMap::new(),
            refused: HashSet::new(),
            resumes: Vec::new(),
            resent: 0,
            progress: Arc::default(),
        }
    }

    /// Sends `n=0..count` to `to`, one every `every`, then waits until the
    /// server accepted everything (at most `deadline` past the last send).
    pub async fn run(
        mut self,
        to: String,
        count: u64,
        every: Duration,
        edges: Vec<String>,
        deadline: Duration,
    ) -> Self {
        let mut pace = tokio::time::interval(every);
        let (mut n, mut attempt) = (0, 0);
        let mut until: Option<tokio::time::Instant> = None;
        while n < count || !self.outbox.is_empty() {
            if n >= count {
                let until = *until.get_or_insert_with(|| tokio::time::Instant::now() + deadline);
                assert!(
                    tokio::time::Instant::now() < until,
                    "{} messages never accepted",
                    self.outbox.len()
                );
            }
            tokio::select! {
                _ = pace.tick(), if n < count => {
                    self.send(&to, n).await;
                    n += 1;
                }
                next = self.client.next_within(deadline) => match next {
                    Some(Ok(message)) => self.handle(message),
                    Some(Err(_closed)) => {
                        let started = Instant::now();
                        let (client, resumed) = resume(
                            &edges,
                            &mut attempt,
                            &self.session,
                            &self.resume_token,
                            self.client.last_seq,
                            &self.token,
                        )
                        .await;
                        self.client = client;
                        self.resume_token = resumed.resume_token;
                        self.resumes.push(started.elapsed());
                        // Everything not accepted goes again, in order,
                        // same id and seq; the server drops duplicates.
                        for message in &self.outbox {
                            let _ = self.client.try_send_message(message).await;
                        }
                        self.resent += self.outbox.len();
                    }
                    None => panic!("sender heard nothing for {deadline:?}"),
                },
            }
        }
        self
    }

    async fn send(&mut self, to: &str, n: u64) {
        self.next_seq += 1;
        let message = pb::ClientMessage {
            id: self.next_id,
            seq: self.next_seq,
            ack: 0,
            message: Some(pb::client_message::Message::Signal(pb::PeerSignal {
                to: to.into(),
                from: String::new(),
                kind: Some(description(true, &format!("n={n}"))),
                probe: None,
            })),
        };
        self.numbers.insert(self.next_id, n);
        self.next_id += 1;
        // A send into a connection that is going away is sent again after
        // the resume.
        let _ = self.client.try_send_message(&message).await;
        self.outbox.push_back(message);
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    fn handle(&mut self, message: pb::ServerMessage) {
        match message.message {
            Some(Out::Accepted(accepted)) => {
                while self.outbox.front().is_some_and(|m| m.seq <= accepted.seq) {
                    self.outbox.pop_front();
                }
            }
            Some(Out::Error(error)) => {
                if let Some(n) = self.numbers.get(&error.request_id) {
                    self.refused.insert(*n);
                }
            }
            Some(Out::TokenRefreshed(t)) => self.token = t.token,
            _ => {}
        }
    }
}

pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// Alice streams `per` numbered messages to each receiver, round robin.
pub async fn stream(
    mut alice: WsClient,
    receivers: usize,
    per: u64,
    third: tokio::sync::oneshot::Sender<()>,
) -> WsClient {
    let mut third = Some(third);
    let mut pace = tokio::time::interval(Duration::from_millis(1));
    for n in 0..per {
        for r in 0..receivers {
            pace.tick().await;
            alice
                .signal(&format!("r{r}"), description(true, &format!("n={n}")))
                .await;
        }
        if n == per / 3 {
            let _ = third.take().map(|t| t.send(()));
        }
    }
    alice
}

pub async fn receivers(edge: &str, count: usize, room: &str) -> Vec<Receiver> {
    let mut all = Vec::new();
    for r in 0..count {
        all.push(Receiver::join(edge, token(&format!("r{r}"), room)).await);
    }
    all
}

pub fn spawn_receivers(
    list: Vec<Receiver>,
    per: u64,
    edges: Vec<String>,
) -> Vec<tokio::task::JoinHandle<Receiver>> {
    list.into_iter()
        .map(|mut r| {
            let edges = edges.clone();
            tokio::spawn(async move {
                r.receive(per, "alice", &edges).await;
                r
            })
        })
        .collect()
}

/// Checks every receiver; returns (total received, resume times).
pub async fn check(
    handles: Vec<tokio::task::JoinHandle<Receiver>>,
    per: u64,
    what: &str,
) -> Vec<Duration> {
    let mut resumes = Vec::new();
    let (mut received, mut lost, mut duplicated, mut reordered, mut wrong) = (0, 0, 0, 0, 0);
    for handle in handles {
        let r = handle.await.expect("receiver");
        let (l, d, o) = r.checker.counts(per);
        received += r.checker.received.len();
        (lost, duplicated, reordered, wrong) = (
            lost + l,
            duplicated + d,
            reordered + o,
            wrong + r.checker.wrong_sender,
        );
        resumes.extend(r.resumes);
    }
    eprintln!(
        "{what}: received {received}, lost {lost}, duplicated {duplicated}, reordered {reordered}, wrong sender {wrong}, \
         resumes {}",
        resumes.len()
    );
    assert_eq!((lost, duplicated, reordered, wrong), (0, 0, 0, 0), "{what}");
    resumes
}
