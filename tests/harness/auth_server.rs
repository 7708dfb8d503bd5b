//! A lone auth service on a chosen port (so a test can stop it and start
//! another in its place), knowing the test stacks' API key.

use std::{net::SocketAddr, time::Duration};

use switchboard_auth::{ApiKey, AuthConfig, Jwk, Keyring, KeyringConfig};
use tokio::{net::TcpSocket, sync::oneshot, task::JoinHandle};

use crate::stack::{API_KEY, API_SECRET, AUDIENCE, ISSUER};

pub struct AuthServer {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// A free loopback port's address.
pub fn free_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr")
}

impl AuthServer {
    /// Serves auth on `addr`, signing with `signing_key`, sharing
    /// revocations through `redis` if given.
    pub async fn start(addr: SocketAddr, signing_key: Jwk, redis: Option<String>) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(addr).expect("bind (the same port again)");
        let listener = socket.listen(64).expect("listen");
        let keys = Keyring::new(KeyringConfig {
            signing_key,
            verification_keys: vec![],
            // The edge's service credential and the tests' backend key.
            api_keys: vec![ApiKey::new(API_KEY, API_SECRET).expect("api key")],
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            max_session: Duration::from_secs(3600),
        })
        .expect("keyring");
        let config = AuthConfig {
            keys,
            default_ttl: Duration::from_secs(600),
            refresh_ttl: Duration::from_secs(600),
            dev: false,
            redis,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            switchboard_auth::run(listener, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("auth");
        });
        Self {
            url: format!("http://{addr}"),
            stop: Some(stop),
            task,
        }
    }

    /// Stops it and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("auth stopped");
    }
}
