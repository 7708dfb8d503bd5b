//! The baseline: a bare WebSocket relay with the edge's socket settings that
//! forwards each frame, unparsed, to the other connection of its pair
//! (`/ws?pair=N`). No auth, no parsing, no gRPC hop: what any relay must
//! at least cost.

use std::{collections::HashMap, sync::Arc};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::TcpListener,
    sync::{Mutex, mpsc, oneshot},
};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{Request, Response},
    protocol::WebSocketConfig,
};

type Waiting = Arc<
    Mutex<
        HashMap<
            String,
            (
                mpsc::Sender<Message>,
                oneshot::Sender<mpsc::Sender<Message>>,
            ),
        >,
    >,
>;

pub async fn run(listener: TcpListener) {
    let waiting: Waiting = Arc::default();
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let mut pair = String::new();
            let config = WebSocketConfig::default()
                .read_buffer_size(8 * 1024)
                .write_buffer_size(64 * 1024)
                .max_write_buffer_size(256 * 1024)
                .max_message_size(Some(64 * 1024));
            #[allow(clippy::result_large_err)] // tungstenite's callback signature
            let callback = |req: &Request, resp: Response| {
                pair = req.uri().query().unwrap_or_default().to_owned();
                Ok(resp)
            };
            let Ok(ws) =
                tokio_tungstenite::accept_hdr_async_with_config(socket, callback, Some(config))
                    .await
            else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let (my_tx, mut my_rx) = mpsc::channel::<Message>(256);
            let partner = {
                let mut map = waiting.lock().await;
                match map.remove(&pair) {
                    Some((partner_tx, notify)) => {
                        let _ = notify.send(my_tx);
                        Ok(partner_tx)
                    }
                    None => {
                        let (notify_tx, notify_rx) = oneshot::channel();
                        map.insert(pair, (my_tx, notify_tx));
                        Err(notify_rx)
                    }
                }
            };
            let partner = match partner {
                Ok(tx) => tx,
                Err(rx) => match rx.await {
                    Ok(tx) => tx,
                    Err(_) => return,
                },
            };
            // What is queued when the writer wakes goes out in one flush,
            // as the edge's writer does: the ceiling is the best a relay
            // with these sockets can do, not one syscall per frame.
            let writer = async move {
                while let Some(message) = my_rx.recv().await {
                    if sink.feed(message).await.is_err() {
                        break;
                    }
                    while let Ok(message) = my_rx.try_recv() {
                        if sink.feed(message).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        break;
                    }
                }
            };
            let reader = async move {
                while let Some(Ok(message)) = stream.next().await {
                    if (message.is_text() || message.is_binary())
                        && partner.send(message).await.is_err()
                    {
                        break;
                    }
                }
            };
            tokio::select! { () = writer => {}, () = reader => {} }
        });
    }
}
