//! A real HTTP server standing in for an application's webhook endpoint:
//! it records every request (headers, raw body, the status it answered)
//! and fails the first attempts it is told to fail.

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    pub fn accepted(&self) -> bool {
        self.status == 200
    }
}

/// The receiver; it stops when dropped.
pub struct WebhookReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
    _stop: watch::Sender<bool>,
}

impl WebhookReceiver {
    /// Listens on `127.0.0.1:0`; answers 500 to the first `fail_first`
    /// requests, then 200.
    pub async fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let (stop, mut stopped) = watch::channel(false);
        let (log, left) = (received.clone(), failures.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    _ = stopped.changed() => return,
                };
                let (log, left) = (log.clone(), left.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (log, left) = (log.clone(), left.clone());
                    async move {
                        let headers = request.headers().clone();
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let fail = left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        let status = if fail { 500 } else { 200 };
                        log.lock().expect("log").push(Received {
                            headers,
                            body,
                            status,
                        });
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() =
                            StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        Self {
            url,
            received,
            failures,
            _stop: stop,
        }
    }

    /// Makes the next `n` requests fail.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }

    /// Waits until `done` holds for what was received (deadline `within`).
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        crate::wait_until(what, within, || async { done(&self.received()) }).await;
        self.received()
    }
}
