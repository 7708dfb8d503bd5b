//! Turns parsed arguments into service configs and runs them: one service
//! per subcommand, or all of them in one process for `all`.

use std::{net::SocketAddr, time::Duration};

use switchboard_auth::AuthConfig;
use switchboard_edge::{EdgeConfig, OriginPolicy};
use switchboard_health::{HealthConfig, Target};
use switchboard_proto::{circuit_breaker::BreakerConfig, limits::MAX_MESSAGE_BYTES, pb};
use switchboard_signal::{
    JoinSettings, SignalConfig, TurnConfig,
    join_hook::{FailureMode, JoinHookConfig},
    keyed_rate::Rate,
    webhooks::WebhookConfig,
};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    cli::{
        AllArgs, AuthArgs, EdgeArgs, EdgeCommon, HealthArgs, SignalArgs, SignalCommon,
        TokenPolicyArgs,
    },
    keys,
    mesh::Mesh,
    shutdown,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long `all` waits for every service to be ready before giving up.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

/// TLS everywhere outside loopback: plain HTTP on another address needs an
/// explicit --allow-plaintext (a TLS-terminating proxy in front).
pub(crate) fn check_plaintext(listen: SocketAddr, common: &EdgeCommon) -> Result<(), BoxError> {
    let tls = common.tls_cert.is_some() || common.tls_self_signed;
    if !tls && !listen.ip().is_loopback() && !common.allow_plaintext {
        return Err(format!(
            "refusing plain HTTP on {listen}: give --tls-cert and --tls-key, or --allow-plaintext \
             if a TLS-terminating proxy stands in front"
        )
        .into());
    }
    Ok(())
}

/// Dev mode hands out any identity in any room (the dev token endpoint,
/// IssueToken without a credential): it may listen on loopback only, unless
/// the operator says otherwise in so many words.
pub(crate) fn check_dev_exposure(listen: &[SocketAddr], exposed: bool) -> Result<(), BoxError> {
    match listen.iter().find(|a| !a.ip().is_loopback()) {
        Some(addr) if !exposed => Err(format!(
            "refusing dev mode on the non-loopback address {addr}: anyone who reaches it can mint tokens for any identity and room. Run the services separately with a signing key and API keys, or pass --dangerously-expose-dev-mode for a throwaway demo"
        )
        .into()),
        Some(addr) => {
            tracing::warn!(%addr, "DEV MODE EXPOSED on a non-loopback address: anyone who reaches it can mint tokens");
            Ok(())
        }
        None => Ok(()),
    }
}

fn edge_config(common: &EdgeCommon, signal_urls: Vec<String>, dev: bool) -> EdgeConfig {
    EdgeConfig {
        signal_urls,
        local_signal: None,
        local_auth: None,
        auth_url: common.auth_url.clone(),
        service_credential: common.service_key.clone(),
        origins: OriginPolicy {
            allowed: common.allowed_origins.clone(),
            allow_loopback: dev,
            allow_missing: common.allow_missing_origin,
            // Set by the edge from whether it serves TLS.
            serves_https: false,
        },
        static_dir: common.static_dir.clone(),
        dev,
        max_connections: common.max_connections,
        max_sessions: common.max_sessions,
        lanes: common.lanes,
        drain_deadline: Duration::from_secs(common.drain_seconds),
        rebalance: None,
        header_read_timeout: Duration::from_secs(common.header_read_seconds.max(1)),
        tls: common.tls_cert.clone().zip(common.tls_key.clone()),
        connection: switchboard_edge::ConnectionLimits {
            rate: switchboard_edge::RateLimit {
                per_second: common.messages_per_second,
                burst: common.message_burst,
            },
            auth_deadline: Duration::from_secs(common.auth_deadline_seconds.max(1)),
            ping_interval: Duration::from_secs(common.ping_interval_seconds.max(1)),
            keepalive_timeout: Duration::from_secs(common.keepalive_timeout_seconds.max(1)),
            write_timeout: Duration::from_secs(common.write_timeout_seconds.max(1)),
            outbound_bytes: common.outbound_queue_bytes.max(MAX_MESSAGE_BYTES * 2),
            drain_spread: Duration::from_secs_f64(drain_spread(common).max(0.0)),
            ..switchboard_edge::ConnectionLimits::default()
        },
        admission: switchboard_edge::AdmissionConfig {
            per_ip: common.max_connections_per_ip.max(1),
            per_ip_rate: switchboard_edge::RateLimit {
                per_second: common.new_connections_per_ip_per_second.max(1),
                burst: common.new_connections_per_ip_burst.max(1),
            },
            trusted_proxies: common.trusted_proxies.clone(),
        },
        log_client_address: common.log_client_address.into(),
        tls_reload_every: Duration::from_secs(common.tls_reload_seconds.max(1)),
        // Set by `edge` from the mesh flags; `all` talks in process.
        mtls: None,
    }
}

fn signal_config(common: &SignalCommon) -> SignalConfig {
    let ice_servers = common
        .ice_servers
        .iter()
        .map(|url| pb::IceServer {
            urls: vec![url.clone()],
            ..Default::default()
        })
        .collect();
    let turn = common.turn_secret.as_ref().map(|secret| TurnConfig {
        secret: secret.as_bytes().to_vec(),
        urls: common.turn_urls.clone(),
    });
    SignalConfig {
        join: JoinSettings {
            ice_servers,
            turn,
            resume_window: Duration::from_secs(common.resume_window),
            max_participants: common.max_participants.max(1),
            max_rooms: common.max_rooms,
            data_per_room: Rate {
                per_second: common.data_per_room_per_second,
                burst: common.data_burst_per_room,
            },
            joins_per_identity: Rate {
                per_second: common.joins_per_identity_per_second,
                burst: common.join_burst_per_identity,
            },
            messages_per_room: Rate {
                per_second: common.messages_per_room_per_second,
                burst: common.message_burst_per_room,
            },
            max_sessions_per_identity: common.max_sessions_per_identity,
        },
        redis: (!common.redis.is_empty()).then(|| switchboard_signal::RedisConfig {
            urls: common.redis.clone(),
            record_ttl: Duration::from_secs(common.redis_key_ttl),
        }),
        webhooks: common.webhook_api_key.clone().map(|key| WebhookConfig {
            urls: common.webhook_urls.clone(),
            key,
            ca_file: common.webhook_ca_file.clone(),
            retry_min: Duration::from_millis(common.webhook_retry_min_ms.max(1)),
            retry_max: Duration::from_millis(common.webhook_retry_max_ms.max(1)),
        }),
        join_hook: common.join_hook_url.clone().map(|url| JoinHookConfig {
            url,
            ca_file: common.join_hook_ca_file.clone(),
            credential: common.join_hook_api_key.clone(),
            timeout: Duration::from_millis(common.join_hook_timeout_ms.max(1)),
            failure: match common.join_hook_failure {
                crate::cli::HookFailure::Closed => FailureMode::Closed,
                crate::cli::HookFailure::Open => FailureMode::Open,
            },
            breaker: BreakerConfig {
                failures: common.join_hook_breaker_failures.max(1),
                open_for: Duration::from_millis(common.join_hook_breaker_open_ms),
            },
        }),
        // Set by the caller (`signal`: its flags; `all`: this process's).
        ..SignalConfig::default()
    }
}

fn auth_config(
    keys: switchboard_auth::Keyring,
    policy: &TokenPolicyArgs,
    dev: bool,
    redis: &[String],
) -> AuthConfig {
    AuthConfig {
        redis: redis
            .first()
            .map(|u| u.trim_start_matches("cluster+").to_owned()),
        keys,
        default_ttl: Duration::from_secs(policy.token_ttl),
        refresh_ttl: Duration::from_secs(policy.refresh_ttl),
        dev,
    }
}

/// Connections the kernel queues for a listener before the process accepts
/// them (capped by `net.core.somaxconn`, 4,096 on current kernels). With
/// tokio's `TcpListener::bind` it is 128: in a reconnect storm (an edge
/// dies, its clients come to the others at once) the rest are dropped SYNs
/// that clients retry a second later.
const LISTEN_BACKLOG: u32 = 4096;

pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, BoxError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // A restarted process can bind while old connections linger.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e| format!("cannot listen on {addr}: {e}").into())
}

pub(crate) fn announce(
    service: &str,
    scheme: &str,
    listener: &TcpListener,
) -> Result<String, BoxError> {
    let url = format!("{scheme}://{}", listener.local_addr()?);
    println!("LISTEN {service} {url}");
    Ok(url)
}

/// Seconds a drain spreads its reconnects over (see the flag).
fn drain_spread(common: &EdgeCommon) -> f64 {
    common
        .drain_spread_seconds
        .unwrap_or_else(|| (common.drain_seconds as f64 / 2.0).min(5.0))
}

/// The drain's reconnects must all be asked before its deadline.
pub(crate) fn check_drain(common: &EdgeCommon) -> Result<(), BoxError> {
    let spread = drain_spread(common);
    if !spread.is_finite() || spread < 0.0 || spread >= common.drain_seconds as f64 {
        return Err(format!(
            "--drain-spread-seconds ({spread}) must be at least 0 and below --drain-seconds ({})",
            common.drain_seconds
        )
        .into());
    }
    Ok(())
}

fn rebalance_config(
    args: &EdgeArgs,
) -> Result<Option<switchboard_edge::RebalanceConfig>, BoxError> {
    let threshold = args.rebalance_threshold;
    if !threshold.is_finite() || threshold < 0.0 {
        return Err(format!("--rebalance-threshold ({threshold}) must be 0 or more").into());
    }
    if args.redis.is_empty() {
        return Ok(None);
    }
    Ok(Some(switchboard_edge::RebalanceConfig {
        // One URL: standalone; several (or `cluster+URL`): a cluster.
        redis_urls: args.redis.clone(),
        threshold,
        per_second: args.rebalance_per_second.max(1),
    }))
}

/// Checks an edge's arguments as `edge` would before it starts.
pub(crate) fn check_edge(args: &EdgeArgs) -> Result<(), BoxError> {
    check_plaintext(args.listen, &args.common)?;
    check_drain(&args.common)?;
    rebalance_config(args)?;
    if args.common.service_key.is_none() {
        return Err(
            "the edge needs --service-key (SWITCHBOARD_SERVICE_KEY): one of the API key \
                    pairs auth and signal accept"
                .into(),
        );
    }
    Ok(())
}

pub(crate) fn health_config(args: &HealthArgs, mesh: &Mesh) -> Result<HealthConfig, BoxError> {
    let config = HealthConfig {
        targets: args.targets.clone(),
        redis: args.redis.clone(),
        timeout: Duration::from_millis(args.target_timeout_ms.max(1)),
        mtls: mesh.mtls.clone(),
    };
    switchboard_health::validate(&config)?;
    Ok(config)
}

/// The admin port must be a port of its own.
pub(crate) fn check_metrics_port(
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<(), BoxError> {
    match metrics {
        Some(m) if m.port() != 0 && m.port() == listen.port() => {
            Err(format!("--metrics-listen {m} uses the service's own port ({listen})").into())
        }
        _ => Ok(()),
    }
}

/// The admin port of a gRPC-only or public service (`--metrics-listen`):
/// `/metrics` and `/health/live`, until SIGTERM.
async fn metrics_port(service: SocketAddr, listen: Option<SocketAddr>) -> Result<(), BoxError> {
    check_metrics_port(service, listen)?;
    if let Some(addr) = listen {
        let listener = bind(addr).await?;
        announce("metrics", "http", &listener)?;
        tokio::spawn(switchboard_health::serve_metrics(
            listener,
            shutdown::signal(),
        ));
    }
    Ok(())
}

/// `--tls-self-signed`: the edge's certificate files, made now.
fn use_self_signed(common: &mut EdgeCommon, listen: SocketAddr) -> Result<(), BoxError> {
    if common.tls_self_signed {
        let (cert, key) = crate::self_signed::generate(listen)?;
        common.tls_cert = Some(cert);
        common.tls_key = Some(key);
    }
    Ok(())
}

pub async fn edge(mut args: EdgeArgs, mesh: Mesh) -> Result<(), BoxError> {
    check_edge(&args)?;
    crate::check_config::check_edge_links(&args, &mesh)?;
    use_self_signed(&mut args.common, args.listen)?;
    metrics_port(args.listen, args.metrics_listen).await?;
    let listener = bind(args.listen).await?;
    announce(
        "edge",
        if args.common.tls_cert.is_some() {
            "https"
        } else {
            "http"
        },
        &listener,
    )?;
    let mut config = edge_config(&args.common, args.signal_urls.clone(), false);
    config.rebalance = rebalance_config(&args)?;
    config.mtls = mesh.mtls.clone();
    mesh.watch();
    switchboard_edge::run(listener, config, shutdown::signal(), |_| {}).await?;
    Ok(())
}

/// Peers auth answers unless `--mtls-allow` names others.
const AUTH_PEERS: &[&str] = &["edge", "signal", "health"];
/// Peers signal answers unless `--mtls-allow` names others.
const SIGNAL_PEERS: &[&str] = &["edge", "health"];

fn grpc_scheme(mesh: &Mesh) -> &'static str {
    if mesh.mtls.is_some() { "https" } else { "http" }
}

pub async fn auth(args: AuthArgs, mesh: Mesh) -> Result<(), BoxError> {
    if args.dev {
        check_dev_exposure(&[args.listen], args.dangerously_expose_dev_mode)?;
    }
    mesh.check_listen("auth", args.listen)?;
    metrics_port(args.listen, args.metrics_listen).await?;
    let listener = bind(args.listen).await?;
    announce("auth", grpc_scheme(&mesh), &listener)?;
    let listener = mesh.listeners("auth", listener, AUTH_PEERS).await?;
    let config = auth_config(
        keys::keyring(&args.keys, &args.tokens, args.dev)?,
        &args.tokens,
        args.dev,
        &args.redis,
    );
    switchboard_auth::run(listener, config, shutdown::signal()).await?;
    Ok(())
}

pub async fn signal(args: SignalArgs, mesh: Mesh) -> Result<(), BoxError> {
    mesh.check_listen("signal", args.listen)?;
    mesh.check_url("--auth-url", &args.auth_url)?;
    metrics_port(args.listen, args.metrics_listen).await?;
    let listener = bind(args.listen).await?;
    announce("signal", grpc_scheme(&mesh), &listener)?;
    let listener = mesh.listeners("signal", listener, SIGNAL_PEERS).await?;
    let mut config = signal_config(&args.common);
    config.auth_url = args.auth_url;
    config.mtls = mesh.mtls.clone();
    config.service_keys = args.api_keys;
    switchboard_signal::run(listener, config, shutdown::signal()).await?;
    Ok(())
}

pub async fn health(args: HealthArgs, mesh: Mesh) -> Result<(), BoxError> {
    crate::check_config::check_health_links(&args, &mesh)?;
    let config = health_config(&args, &mesh)?;
    mesh.watch();
    let listener = bind(args.listen).await?;
    announce("health", "http", &listener)?;
    switchboard_health::run(listener, config, shutdown::signal()).await?;
    Ok(())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Every service in one process. Shutdown goes edge first (clients are told
/// to reconnect and drained), then signal, auth and health.
pub async fn all(mut args: AllArgs, mesh: Mesh) -> Result<(), BoxError> {
    mesh.check_unused("all")?;
    mesh.check_listen("auth", args.auth_listen)?;
    mesh.check_listen("signal", args.signal_listen)?;
    check_plaintext(args.edge_listen, &args.edge)?;
    check_drain(&args.edge)?;
    check_dev_exposure(
        &[args.edge_listen, args.auth_listen],
        args.dangerously_expose_dev_mode,
    )?;
    let auth_listener = bind(args.auth_listen).await?;
    let signal_listener = bind(args.signal_listen).await?;
    let health_listener = bind(args.health_listen).await?;
    let edge_listener = bind(args.edge_listen).await?;
    let auth_url = announce("auth", "http", &auth_listener)?;
    let signal_url = announce("signal", "http", &signal_listener)?;
    let health_url = announce("health", "http", &health_listener)?;
    use_self_signed(&mut args.edge, args.edge_listen)?;
    let edge_scheme = if args.edge.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let edge_url = announce("edge", edge_scheme, &edge_listener)?;

    // The edge's credential towards auth and signal in this process: made
    // up unless given, known to both.
    let service_key = args.edge.service_key.clone().unwrap_or_else(|| {
        switchboard_edge::ServiceCredential::new(
            "switchboard-internal",
            hex::encode(rand::random::<[u8; 32]>()),
        )
    });
    let mut keys = args.keys.clone();
    keys.api_keys
        .push(format!("{}:{}", service_key.key, service_key.secret()));
    let auth_url_for_signal = auth_url.clone();
    let mut edge_common = args.edge.clone();
    edge_common.auth_url = auth_url.clone();
    edge_common.service_key = Some(service_key.clone());
    if edge_common.static_dir.is_none() && std::path::Path::new("client/out/index.html").exists() {
        edge_common.static_dir = Some("client/out".into());
    }
    let mut edge_config = edge_config(&edge_common, vec![signal_url.clone()], true);
    let auth_config = auth_config(
        keys::keyring(&keys, &args.tokens, true)?,
        &args.tokens,
        true,
        &args.signal.redis,
    );
    let health_config = HealthConfig {
        targets: vec![
            Target {
                name: "auth".into(),
                url: auth_url,
                service: switchboard_auth::SERVICE_NAME.into(),
            },
            Target {
                name: "signal".into(),
                url: signal_url,
                service: switchboard_signal::SERVICE_NAME.into(),
            },
        ],
        redis: None,
        timeout: switchboard_health::TARGET_TIMEOUT,
        mtls: None,
    };

    let (stop_edge, edge_rx) = watch::channel(false);
    let (stop_rest, rest_rx) = watch::channel(false);
    let (local_auth_tx, local_auth_rx) = tokio::sync::oneshot::channel();
    let auth = tokio::spawn(switchboard_auth::run_with(
        auth_listener,
        auth_config,
        stopped(rest_rx.clone()),
        move |local| {
            let _ = local_auth_tx.send(local);
        },
    ));
    // The edge and signal call this process's auth directly (unless the
    // gRPC hops are asked for); its port still serves health and backends.
    let local_auth = if args.grpc_link {
        None
    } else {
        let Ok(local) = local_auth_rx.await else {
            auth.await??;
            return Err("auth stopped before it served".into());
        };
        Some(local)
    };
    edge_config.local_auth = local_auth.clone();
    let (relay_tx, relay_rx) = tokio::sync::oneshot::channel();
    let signal = tokio::spawn(switchboard_signal::run_with(
        signal_listener,
        switchboard_signal::SignalConfig {
            auth_url: auth_url_for_signal,
            local_auth,
            service_keys: vec![service_key],
            ..signal_config(&args.signal)
        },
        stopped(rest_rx.clone()),
        move |relay| {
            let _ = relay_tx.send(relay);
        },
    ));
    if !args.grpc_link {
        // The edge's lanes go to this process's signal directly; its gRPC
        // port still serves health and any other edge.
        let Ok(relay) = relay_rx.await else {
            // Signal stopped before it served: its own error says why.
            signal.await??;
            return Err("signal stopped before it served".into());
        };
        edge_config.signal_urls.clear();
        edge_config.local_signal = Some(relay);
    }
    let health = tokio::spawn(switchboard_health::run(
        health_listener,
        health_config,
        stopped(rest_rx.clone()),
    ));
    let (link_tx, link_rx) = tokio::sync::oneshot::channel();
    let edge = tokio::spawn(switchboard_edge::run(
        edge_listener,
        edge_config,
        stopped(edge_rx),
        move |edge| {
            let _ = link_tx.send(edge.link);
        },
    ));

    let link = link_rx.await.map_err(|_| "edge failed to start")?;
    let ready = async {
        while !link.is_up() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let signal_received = shutdown::signal();
    tokio::pin!(signal_received);
    tokio::select! {
        result = tokio::time::timeout(STARTUP_DEADLINE, ready) => {
            result.map_err(|_| "services did not become ready in time")?;
            println!("READY {edge_url}");
            tracing::info!(url = %edge_url, health = %health_url, "switchboard is up: open {edge_url}/");
            signal_received.await;
        }
        () = &mut signal_received => {}
    }

    let _ = stop_edge.send(true);
    edge.await??;
    let _ = stop_rest.send(true);
    signal.await??;
    auth.await??;
    health.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::bind;

    /// A reconnect storm: thousands of clients connect at once while the
    /// process is busy. Connections the kernel cannot queue are dropped
    /// SYNs, which clients retry only after a second: the listener's
    /// backlog must hold the storm (tokio's default is 1,024).
    #[tokio::test]
    async fn the_listen_backlog_holds_a_reconnect_storm() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Nobody accepts: every connection waits in the backlog.
        let connects = (0..1_800).map(|_| {
            tokio::time::timeout(
                Duration::from_millis(800),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let results = futures_util::future::join_all(connects).await;
        let queued = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(queued, 1_800, "connections queued without an accept");
        drop(listener);
    }
}
