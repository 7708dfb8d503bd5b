//! The edge–signal link survives a signal that falls behind: h2 (0.4.20 and
//! later) counts every small DATA frame it buffers for the application
//! against a budget of half its connection window, and on exhaustion closes
//! the whole connection with GOAWAY `ENHANCE_YOUR_CALM` — every session of
//! that edge on that replica would get 1013 at once. A lane at a low rate
//! sends one tiny batch per message; a replica busy for a second or two
//! (CPU-starved, waiting on Redis) buffers thousands of them. Batches are
//! padded to at least h2's small-frame threshold
//! (`switchboard_proto::grpc::padding`), so they never draw on the budget.

use std::{pin::Pin, time::Duration};

use futures_util::Stream;
use switchboard_proto::{grpc, pb};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Request, Response, Status, Streaming};

/// A Signal whose Relay handler does not read for a while, then counts.
struct Sluggish {
    release: watch::Receiver<bool>,
    received: mpsc::Sender<Result<usize, Status>>,
}

type Out = Pin<Box<dyn Stream<Item = Result<pb::SignalBatch, Status>> + Send>>;

#[tonic::async_trait]
impl pb::signal_server::Signal for Sluggish {
    type RelayStream = Out;

    async fn relay(
        &self,
        request: Request<Streaming<pb::EdgeBatch>>,
    ) -> Result<Response<Out>, Status> {
        let mut inbound = request.into_inner();
        let (mut release, received) = (self.release.clone(), self.received.clone());
        tokio::spawn(async move {
            let _ = release.wait_for(|r| *r).await;
            let mut count = 0;
            let result = loop {
                match inbound.message().await {
                    Ok(Some(batch)) => count += batch.envelopes.len(),
                    Ok(None) => break Ok(count),
                    Err(status) => break Err(status),
                }
            };
            let _ = received.send(result).await;
        });
        Ok(Response::new(Box::pin(futures_util::stream::pending())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_falls_behind_keeps_its_link() {
    // h2's budget at signal (half its 1 MiB window) holds ≈ 2,200 frames
    // of a tiny batch.
    const BATCHES: usize = 3_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (release_tx, release) = watch::channel(false);
    let (received_tx, mut received) = mpsc::channel(1);
    let (stop_tx, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(
        grpc::server_builder()
            .add_service(pb::signal_server::SignalServer::new(Sluggish {
                release,
                received: received_tx,
            }))
            .serve_with_incoming_shutdown(grpc::incoming(listener), async {
                let _ = stop.await;
            }),
    );

    // The lane's traffic at a low rate: one small envelope per batch, each
    // batch as the edge's lane builds it, each in its own DATA frame (a
    // millisecond apart, as a lane at 1,000 msg/s sends them).
    let channel = grpc::endpoint(&url).expect("url").connect_lazy();
    let (tx, rx) = mpsc::channel(1);
    let mut client = pb::signal_client::SignalClient::new(channel);
    let call = client.relay(tokio_stream::wrappers::ReceiverStream::new(rx));
    let sending = tokio::spawn({
        let tx = tx.clone();
        async move {
            let mut pace = tokio::time::interval(Duration::from_millis(1));
            for conn in 0..BATCHES as u64 {
                pace.tick().await;
                let acked = pb::edge_envelope::Event::Acked(pb::Acked { seq: conn });
                let batch = grpc::padded_edge_batch(vec![pb::EdgeEnvelope {
                    conn,
                    event: Some(acked),
                }]);
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
        }
    });
    let _inbound = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("relay opened in time")
        .expect("relay opened");
    sending.await.expect("sent");
    // Everything is handed to the client's HTTP/2 connection, and from
    // there to the server's buffers, unread.
    switchboard_tests::wait_until("every batch sent", switchboard_tests::DEADLINE, || {
        let all = tx.capacity() == tx.max_capacity();
        async move { all }
    })
    .await;
    drop(tx);
    release_tx.send_replace(true);
    let result = tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("the server read in time")
        .expect("a result");
    assert_eq!(
        result.map_err(|s| s.message().to_owned()),
        Ok(BATCHES),
        "every batch read, the connection kept"
    );
    // The Relay's response stream never ends: stop without a drain.
    drop(stop_tx);
    server.abort();
}
