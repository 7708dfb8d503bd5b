//! The whole stack in this process, every service on its own ephemeral
//! port, talking real gRPC over loopback.

use std::time::Duration;

use switchboard_auth::{
    ApiKey, AuthConfig, Claims, Jwk, KeyAlg, Keyring, KeyringConfig, TokenRequest, TokenType,
};
use switchboard_edge::{Admission, EdgeConfig, OriginPolicy, ServiceCredential, SignalLink};
use switchboard_health::{HealthConfig, Target};
use switchboard_proto::pb;
use switchboard_signal::SignalConfig;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::wait::{DEADLINE, wait_until};

/// The backend API key of every test stack.
pub const API_KEY: &str = "test-key";
pub const API_SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
pub const ISSUER: &str = "switchboard";
pub const AUDIENCE: &str = "switchboard";

/// What a test may change before the stack starts.
pub struct StackConfig {
    pub edge: EdgeConfig,
    pub signal: SignalConfig,
    pub keyring: KeyringConfig,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Dev mode of auth: IssueToken without an API credential.
    pub auth_dev: bool,
    /// Share auth's revocations through this Redis.
    pub auth_redis: Option<String>,
}

/// A running stack.
pub struct Stack {
    /// `http://127.0.0.1:PORT` of the edge.
    pub edge_url: String,
    pub auth_url: String,
    pub signal_url: String,
    pub health_url: String,
    pub keys: Keyring,
    /// The private key the stack's auth signs with.
    pub signing_key: Jwk,
    pub api: ApiKey,
    pub link: SignalLink,
    /// The edge's per-address admission (refusal counts).
    pub admission: Admission,
    stop_edge: watch::Sender<bool>,
    stop_rest: watch::Sender<bool>,
    edge: JoinHandle<()>,
    rest: Vec<JoinHandle<()>>,
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a stack after letting `tune` adjust its configuration.
    pub async fn start_with(tune: impl FnOnce(&mut StackConfig)) -> Self {
        let (auth_l, auth_url) = listener().await;
        let (signal_l, signal_url) = listener().await;
        let (health_l, health_url) = listener().await;
        let (edge_l, edge_url) = listener().await;
        let api = ApiKey::new(API_KEY, API_SECRET).expect("api key");
        let mut config = StackConfig {
            edge: EdgeConfig {
                signal_urls: vec![signal_url.clone()],
                auth_url: auth_url.clone(),
                service_credential: Some(ServiceCredential::new(API_KEY, API_SECRET)),
                origins: OriginPolicy {
                    allowed: vec!["https://app.example.com".into()],
                    allow_loopback: false,
                    allow_missing: false,
                    serves_https: false,
                },
                dev: true,
                drain_deadline: Duration::from_secs(3),
                ..EdgeConfig::default()
            },
            signal: SignalConfig {
                auth_url: auth_url.clone(),
                service_keys: vec![ServiceCredential::new(API_KEY, API_SECRET)],
                ..SignalConfig::default()
            },
            keyring: KeyringConfig {
                signing_key: Jwk::generate(KeyAlg::EdDsa, "k1").expect("key"),
                verification_keys: vec![],
                api_keys: vec![api.clone()],
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                max_session: Duration::from_secs(3600),
            },
            token_ttl: Duration::from_secs(600),
            refresh_ttl: Duration::from_secs(600),
            auth_dev: true,
            auth_redis: None,
        };
        tune(&mut config);
        let keys = Keyring::new(config.keyring.clone()).expect("keyring");
        let signing_key = config.keyring.signing_key.clone();
        let (stop_edge, edge_rx) = watch::channel(false);
        let (stop_rest, rest_rx) = watch::channel(false);
        let auth_config = AuthConfig {
            keys: keys.clone(),
            default_ttl: config.token_ttl,
            refresh_ttl: config.refresh_ttl,
            dev: config.auth_dev,
            redis: config.auth_redis.clone(),
        };
        let mut rest = vec![
            tokio::spawn({
                let stop = stopped(rest_rx.clone());
                async move {
                    switchboard_auth::run(auth_l, auth_config, stop)
                        .await
                        .expect("auth")
                }
            }),
            tokio::spawn({
                let stop = stopped(rest_rx.clone());
                let signal_config = config.signal.clone();
                async move {
                    switchboard_signal::run(signal_l, signal_config, stop)
                        .await
                        .expect("signal")
                }
            }),
        ];
        let health_config = HealthConfig {
            targets: vec![
                Target {
                    name: "auth".into(),
                    url: auth_url.clone(),
                    service: switchboard_auth::SERVICE_NAME.into(),
                },
                Target {
                    name: "signal".into(),
                    url: signal_url.clone(),
                    service: switchboard_signal::SERVICE_NAME.into(),
                },
            ],
            redis: None,
            timeout: switchboard_health::TARGET_TIMEOUT,
            mtls: None,
        };
        rest.push(tokio::spawn({
            let stop = stopped(rest_rx.clone());
            async move {
                switchboard_health::run(health_l, health_config, stop)
                    .await
                    .expect("health")
            }
        }));

        let edge_config = config.edge;
        let plaintext = edge_config.tls.is_none();
        let (link_tx, link_rx) = tokio::sync::oneshot::channel();
        let edge = tokio::spawn(async move {
            switchboard_edge::run(edge_l, edge_config, stopped(edge_rx), move |edge| {
                let _ = link_tx.send(edge);
            })
            .await
            .expect("edge")
        });
        let handle = link_rx.await.expect("edge started");
        let (link, admission) = (handle.link, handle.admission);
        wait_until("edge linked to signal", DEADLINE, || {
            let up = link.is_up();
            async move { up }
        })
        .await;
        // (Over TLS the test itself waits: this client speaks plain HTTP.)
        let ready_url = edge_url.clone();
        wait_until("edge ready", DEADLINE, || {
            let url = ready_url.clone();
            async move {
                !plaintext
                    || crate::http::request(&url, "GET", "/health/ready", "")
                        .await
                        .0
                        == 200
            }
        })
        .await;
        Self {
            edge_url,
            auth_url,
            signal_url,
            health_url,
            keys,
            signing_key,
            api,
            link,
            admission,
            stop_edge,
            stop_rest,
            edge,
            rest,
        }
    }

    /// `ws://…/ws` of the edge.
    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.edge_url.replacen("http://", "ws://", 1))
    }

    /// A valid access token for `identity` in `room` with the publish grant.
    pub fn token(&self, identity: &str, room: &str) -> String {
        self.issue(&Self::request(identity, room)).0
    }

    /// A token request for `identity` in `room` (publish granted), to adjust.
    pub fn request(identity: &str, room: &str) -> TokenRequest {
        TokenRequest {
            identity: identity.into(),
            name: format!("{identity} (test)"),
            grants: pb::Grants {
                room: room.into(),
                publish: true,
                ..Default::default()
            },
            metadata: Default::default(),
            ttl: Duration::from_secs(600),
            token_type: TokenType::Access,
            auth_time: 0,
            chain: String::new(),
        }
    }

    /// Issues a service token (signed with the stack's signing key).
    pub fn issue(&self, request: &TokenRequest) -> (String, Claims) {
        self.keys.issue(request).expect("issue")
    }

    /// Claims of a valid token, to be altered and signed with `keys.sign`
    /// (service key) or `api.mint` (HS256 with the API key).
    pub fn claims(&self, identity: &str, room: &str) -> Claims {
        self.issue(&Self::request(identity, room)).1
    }

    /// A gRPC client of the stack's auth service.
    pub async fn auth_client(&self) -> pb::auth_client::AuthClient<tonic::transport::Channel> {
        pb::auth_client::AuthClient::connect(self.auth_url.clone())
            .await
            .expect("auth client")
    }

    /// `request` with this stack's API credential in its metadata.
    pub fn with_api_credential<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert(
            switchboard_auth::API_KEY_METADATA,
            API_KEY.parse().expect("ascii"),
        );
        metadata.insert(
            switchboard_auth::API_SECRET_METADATA,
            API_SECRET.parse().expect("ascii"),
        );
        request
    }

    /// Shuts down in production order: edge first, then the rest.
    pub async fn shutdown(self) {
        let _ = self.stop_edge.send(true);
        self.edge.await.expect("edge task");
        let _ = self.stop_rest.send(true);
        for task in self.rest {
            task.await.expect("service task");
        }
    }
}
