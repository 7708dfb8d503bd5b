//! The edge's side of the edge–signal mapping: every browser session is
//! multiplexed over a few long-lived `Relay` streams ("lanes"); each gRPC
//! message is a batch of (connection, event) envelopes, drained from a queue
//! without timers. One stream per session costs more CPU and memory and can
//! trip h2's small-DATA-frame GOAWAY, dropping every session at once
//! (docs/architecture.md).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use prost::Message as _;
use switchboard_proto::{
    ConnId, ErrorCode,
    local_relay::{Batches, LocalRelay},
    pb,
    service_credential::{Attach, ServiceCredential},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tonic::{Status, transport::Channel};

use crate::conns::{ConnHandle, Connections, Outbound};

/// Most envelopes per outbound batch (see signal's `link::MAX_BATCH_ENVELOPES`).
const MAX_BATCH_ENVELOPES: usize = 128;
/// A batch is closed once it holds this many bytes (signal's
/// `link::MAX_BATCH_BYTES`).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Largest gRPC message either side accepts.
const MAX_GRPC_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Envelopes queued per lane before senders wait (backpressure on readers).
const LANE_QUEUE: usize = 4096;
/// Encoded bytes queued per lane before senders wait: with 64 KiB messages
/// the count bound alone would allow 256 MiB.
const LANE_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// Reconnect backoff bounds for a failed lane.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where a signal replica is.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// Over gRPC (boxed: an endpoint is large, and these are few).
    Grpc(Box<switchboard_proto::grpc::Dial>),
    /// In this process (`switchboard all`).
    Local(LocalRelay),
}

/// How a lane opens its stream.
#[derive(Debug, Clone)]
enum Connect {
    Grpc(Channel, Attach),
    Local(LocalRelay),
}

impl Connect {
    /// Opens one Relay stream carrying `outbound`.
    async fn relay(
        &self,
        outbound: mpsc::Receiver<pb::EdgeBatch>,
    ) -> Result<Batches<pb::SignalBatch>, Status> {
        let outbound = tokio_stream::wrappers::ReceiverStream::new(outbound);
        match self {
            Self::Grpc(channel, credential) => {
                let mut client = pb::signal_client::SignalClient::with_interceptor(
                    channel.clone(),
                    credential.clone(),
                )
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
                let inbound = client.relay(outbound).await?.into_inner();
                Ok(Box::pin(inbound))
            }
            Self::Local(relay) => relay.open(Box::pin(outbound.map(Ok))),
        }
    }
}

/// Handle on the lanes to one signal service.
#[derive(Debug, Clone)]
pub struct SignalLink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    lanes: Vec<Lane>,
    conns: Connections,
    next_conn: AtomicU64,
}

/// An envelope and the share of its lane's byte budget it holds until it
/// is handed to the stream.
pub(crate) type Queued = (pb::EdgeEnvelope, OwnedSemaphorePermit);

#[derive(Debug)]
struct Lane {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
    up: AtomicBool,
    /// Whether the lane's replica reports itself ready (`grpc.health.v1`
    /// `""`, followed by [`follow_health`]; in process: always). A replica
    /// whose store is down keeps its streams open but cannot serve.
    serving: Arc<AtomicBool>,
}

impl Lane {
    fn available(&self) -> bool {
        self.up.load(Ordering::Acquire) && self.serving.load(Ordering::Acquire)
    }
}

/// Backoff bounds of a failed health watch.
const HEALTH_RETRY_MIN: Duration = Duration::from_millis(100);
const HEALTH_RETRY_MAX: Duration = Duration::from_secs(2);

/// Keeps `serving` equal to the replica's readiness (`""` over
/// `grpc.health.v1` Watch; false while the watch is down) until `stop`.
async fn follow_health(
    channel: Channel,
    serving: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    use switchboard_proto::health_pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut retry = HEALTH_RETRY_MIN;
    loop {
        let watching = async {
            let mut client = HealthClient::new(channel.clone());
            let request = HealthCheckRequest {
                service: String::new(),
            };
            let mut stream = client.watch(request).await?.into_inner();
            while let Some(update) = stream.message().await? {
                retry = HEALTH_RETRY_MIN;
                let now = update.status == ServingStatus::Serving as i32;
                if serving.swap(now, Ordering::AcqRel) != now {
                    tracing::info!(serving = now, "signal replica readiness changed");
                }
            }
            Ok::<(), Status>(())
        };
        tokio::select! {
            _ = watching => {}
            () = crate::stopped(&mut stop) => return,
        }
        serving.store(false, Ordering::Release);
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = crate::stopped(&mut stop) => return,
        }
        retry = (retry * 2).min(HEALTH_RETRY_MAX);
    }
}

impl SignalLink {
    /// Starts `lanes` streams to each signal replica at `upstreams` (each
    /// reconnecting on failure) until `shutdown` fires.
    pub fn start(
        upstreams: Vec<Upstream>,
        lanes: usize,
        credential: Option<ServiceCredential>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let lanes = lanes.max(1);
        let mut receivers = Vec::new();
        let mut lane_handles = Vec::new();
        for upstream in upstreams {
            let (connect, serving) = match upstream {
                // The lanes to one replica share its HTTP/2 connection.
                Upstream::Grpc(endpoint) => {
                    let channel = endpoint.connect_lazy();
                    let serving = Arc::new(AtomicBool::new(false));
                    tokio::spawn(follow_health(
                        channel.clone(),
                        serving.clone(),
                        shutdown.clone(),
                    ));
                    (Connect::Grpc(channel, Attach(credential.clone())), serving)
                }
                Upstream::Local(relay) => (Connect::Local(relay), Arc::new(AtomicBool::new(true))),
            };
            for _ in 0..lanes {
                let (tx, rx) = mpsc::channel(LANE_QUEUE);
                lane_handles.push(Lane {
                    tx,
                    bytes: Arc::new(Semaphore::new(LANE_QUEUE_BYTES)),
                    up: AtomicBool::new(false),
                    serving: serving.clone(),
                });
                receivers.push((connect.clone(), rx));
            }
        }
        let link = Self {
            inner: Arc::new(Inner {
                lanes: lane_handles,
                conns: Connections::default(),
                next_conn: AtomicU64::new(1),
            }),
        };
        for (index, (connect, rx)) in receivers.into_iter().enumerate() {
            tokio::spawn(run_lane(link.clone(), index, connect, rx, shutdown.clone()));
        }
        link
    }

    /// A link of `lanes` lanes that are up but lead nowhere: the test
    /// reads what would be sent to signal from the receivers.
    #[cfg(test)]
    pub fn detached(lanes: usize) -> (Self, Vec<mpsc::Receiver<Queued>>) {
        let (lanes, receivers): (Vec<_>, Vec<_>) = (0..lanes)
            .map(|_| {
                let (tx, rx) = mpsc::channel(LANE_QUEUE);
                let lane = Lane {
                    tx,
                    bytes: Arc::new(Semaphore::new(LANE_QUEUE_BYTES)),
                    up: AtomicBool::new(true),
                    serving: Arc::new(AtomicBool::new(true)),
                };
                (lane, rx)
            })
            .unzip();
        let link = Self {
            inner: Arc::new(Inner {
                lanes,
                conns: Connections::default(),
                next_conn: AtomicU64::new(1),
            }),
        };
        (link, receivers)
    }

    /// The handles of every open connection.
    #[cfg(test)]
    pub fn handles(&self) -> Vec<ConnHandle> {
        self.inner.conns.matching(|_| true)
    }

    /// Registers a new connection on a lane that is up, to a replica that
    /// is ready if any is (round robin), returning its id and lane.
    pub fn register(&self, mut handle: ConnHandle) -> (ConnId, usize) {
        let conn = ConnId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed));
        let lanes = &self.inner.lanes;
        let mut up: Vec<usize> = (0..lanes.len()).filter(|i| lanes[*i].available()).collect();
        if up.is_empty() {
            up = (0..lanes.len())
                .filter(|i| lanes[*i].up.load(Ordering::Acquire))
                .collect();
        }
        let lane = if up.is_empty() {
            (conn.0 % self.inner.lanes.len() as u64) as usize
        } else {
            up[(conn.0 % up.len() as u64) as usize]
        };
        handle.lane = lane;
        self.inner.conns.insert(conn, handle);
        (conn, lane)
    }

    pub fn deregister(&self, conn: ConnId) {
        self.inner.conns.remove(conn);
    }

    /// Sends an event for `conn` to signal. Waits while the lane's queue is
    /// full (in envelopes or bytes); fails only if the lane task is gone
    /// (shutdown).
    pub async fn send(
        &self,
        lane: usize,
        conn: ConnId,
        event: pb::edge_envelope::Event,
    ) -> Result<(), ErrorCode> {
        let lane = &self.inner.lanes[lane];
        if !lane.up.load(Ordering::Acquire) {
            return Err(ErrorCode::Unavailable);
        }
        let envelope = pb::EdgeEnvelope {
            conn: conn.0,
            event: Some(event),
        };
        let size = envelope.encoded_len().clamp(1, LANE_QUEUE_BYTES) as u32;
        // The common case: room in the queue, nothing to wait for. The
        // waiting path is boxed, so a connection's future does not carry
        // its state (≈ 1 KiB) for the connection's whole life.
        let envelope = match lane.bytes.clone().try_acquire_many_owned(size) {
            Ok(permit) => match lane.tx.try_send((envelope, permit)) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(ErrorCode::ShuttingDown),
                Err(mpsc::error::TrySendError::Full((envelope, _permit))) => envelope,
            },
            Err(_) => envelope,
        };
        Box::pin(Self::send_waiting(lane, envelope, size)).await
    }

    async fn send_waiting(
        lane: &Lane,
        envelope: pb::EdgeEnvelope,
        size: u32,
    ) -> Result<(), ErrorCode> {
        let permit = lane
            .bytes
            .clone()
            .acquire_many_owned(size)
            .await
            .map_err(|_| ErrorCode::ShuttingDown)?;
        lane.tx
            .send((envelope, permit))
            .await
            .map_err(|_| ErrorCode::ShuttingDown)
    }

    /// Whether some lane has a live stream to a ready replica (readiness:
    /// the edge can serve).
    pub fn is_serving(&self) -> bool {
        self.inner.lanes.iter().any(Lane::available)
    }

    /// Whether every lane has a live stream.
    pub fn is_up(&self) -> bool {
        self.inner
            .lanes
            .iter()
            .all(|l| l.up.load(Ordering::Acquire))
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.inner.conns.len()
    }

    /// Bytes queued for the writers of every open connection.
    pub fn queued_bytes(&self) -> usize {
        self.inner.conns.queued_bytes()
    }

    /// Closes every joined connection whose auth matches; returns how many.
    pub fn kill_where(
        &self,
        pick: impl Fn(&crate::conns::ConnAuth) -> bool,
        code: ErrorCode,
        reason: &str,
    ) -> usize {
        let mut killed = 0;
        for handle in self.inner.conns.matching(|_| true) {
            if handle.auth.get().is_some_and(&pick) {
                handle.kill(code, reason);
                killed += 1;
            }
        }
        killed
    }

    /// Closes at most `limit` joined connections with `code` (rebalancing:
    /// which ones does not matter, each resumes elsewhere). Returns how
    /// many.
    pub fn kill_some(&self, limit: usize, code: ErrorCode, reason: &str) -> usize {
        let mut killed = 0;
        for handle in self.inner.conns.matching(|_| true) {
            if killed == limit {
                break;
            }
            if handle.auth.get().is_some() && handle.kill.borrow().is_none() {
                handle.kill(code, reason);
                killed += 1;
            }
        }
        killed
    }

    fn dispatch(&self, envelope: pb::SignalEnvelope) {
        let Some(handle) = self.inner.conns.get(ConnId(envelope.conn)) else {
            return; // the connection closed meanwhile
        };
        match envelope.event {
            Some(pb::signal_envelope::Event::Message(mut message)) => {
                crate::relay_probe::arrived(&mut message);
                handle.push(Outbound::Message(Box::new(message)))
            }
            Some(pb::signal_envelope::Event::Close(close)) => {
                handle.push(Outbound::Close(ErrorCode::of(close.code), close.message))
            }
            None => {}
        }
    }

    /// A lane's stream died: its sessions on signal are gone, so its
    /// connections are closed and their clients reconnect.
    fn fail_lane(&self, index: usize) {
        for handle in self.inner.conns.matching(|_| true) {
            if handle.lane == index {
                handle.kill(ErrorCode::Unavailable, "signal link lost");
            }
        }
    }
}

async fn run_lane(
    link: SignalLink,
    index: usize,
    connect: Connect,
    mut rx: mpsc::Receiver<Queued>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    while !*shutdown.borrow() {
        let (batch_tx, batch_rx) = mpsc::channel::<pb::EdgeBatch>(8);
        let call = connect.relay(batch_rx);
        let mut inbound = tokio::select! {
            result = call => match result {
                Ok(inbound) => inbound,
                Err(status) => {
                    tracing::warn!(lane = index, error = %status.message(), "signal link refused");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        link.inner.lanes[index].up.store(true, Ordering::Release);
        backoff = BACKOFF_MIN;
        tracing::info!(lane = index, "signal link up");
        loop {
            tokio::select! {
                envelope = rx.recv() => {
                    let Some((first, permit)) = envelope else { return };
                    let mut bytes = permit.num_permits();
                    let mut envelopes = Vec::with_capacity(8);
                    let mut permits = vec![permit];
                    envelopes.push(first);
                    while envelopes.len() < MAX_BATCH_ENVELOPES && bytes < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok((e, permit)) => {
                                bytes += permit.num_permits();
                                envelopes.push(e);
                                permits.push(permit);
                            }
                            Err(_) => break,
                        }
                    }
                    // Small batches padded over gRPC (grpc::padding); the
                    // queued bytes tell which are small, without measuring.
                    let batch = match connect {
                        Connect::Grpc(..) if bytes < switchboard_proto::grpc::SMALL_DATA_FRAME => {
                            switchboard_proto::grpc::padded_edge_batch(envelopes)
                        }
                        _ => pb::EdgeBatch { envelopes, padding: Vec::new() },
                    };
                    if batch_tx.send(batch).await.is_err() {
                        break;
                    }
                    // The budget comes back once the batch is on its way.
                    drop(permits);
                }
                message = inbound.next() => match message {
                    Some(Ok(batch)) => {
                        for envelope in batch.envelopes {
                            link.dispatch(envelope);
                        }
                    }
                    None => {
                        tracing::warn!(lane = index, "signal ended the link");
                        break;
                    }
                    Some(Err(status)) => {
                        tracing::warn!(lane = index, error = %status.message(), "signal link failed");
                        break;
                    }
                },
                // Dropping the request stream ends the link; signal then
                // ends whatever sessions are still on it.
                _ = shutdown.changed() => return,
            }
        }
        link.inner.lanes[index].up.store(false, Ordering::Release);
        link.fail_lane(index);
    }
}
