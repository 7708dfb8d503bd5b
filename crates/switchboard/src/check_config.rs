//! `--check-config`: the arguments checked as the service would check them
//! at start, and what it would serve printed as one JSON line (the
//! Kubernetes checker, scripts/k8s-check.py, reads it), without starting
//! anything or reading secret files.

use crate::{
    cli::{EdgeArgs, HealthArgs},
    mesh::Mesh,
    services::{
        BoxError, check_dev_exposure, check_drain, check_edge, check_metrics_port, check_plaintext,
        health_config,
    },
};

/// The edge's URLs of auth and signal against the plaintext rule.
pub(crate) fn check_edge_links(args: &EdgeArgs, mesh: &Mesh) -> Result<(), BoxError> {
    mesh.check_url("--auth-url", &args.common.auth_url)?;
    for url in &args.signal_urls {
        mesh.check_url("--signal-url", url)?;
    }
    Ok(())
}

/// The aggregator's targets against the plaintext rule.
pub(crate) fn check_health_links(args: &HealthArgs, mesh: &Mesh) -> Result<(), BoxError> {
    for target in &args.targets {
        mesh.check_url("--target", &target.url)?;
    }
    Ok(())
}

/// `--check-config`: what the service would serve, as one JSON line.
pub fn check(
    command: &crate::cli::Command,
    files: &[std::path::PathBuf],
    mesh: &Mesh,
) -> Result<(), BoxError> {
    use crate::cli::Command;
    use switchboard_proto::health::LIVENESS;
    let grpc = |name: &str| serde_json::json!(["", LIVENESS, name]);
    let (service, listen, http_paths, grpc_health) = match command {
        Command::Edge(args) => {
            check_edge(args)?;
            check_edge_links(args, mesh)?;
            let paths = serde_json::json!(["/health/live", "/health/ready", "/ws"]);
            ("edge", args.listen, paths, serde_json::json!([]))
        }
        Command::Auth(args) => {
            if args.dev {
                check_dev_exposure(&[args.listen], args.dangerously_expose_dev_mode)?;
            }
            mesh.check_listen("auth", args.listen)?;
            let names = grpc(switchboard_auth::SERVICE_NAME);
            ("auth", args.listen, serde_json::json!([]), names)
        }
        Command::Signal(args) => {
            mesh.check_listen("signal", args.listen)?;
            mesh.check_url("--auth-url", &args.auth_url)?;
            let names = grpc(switchboard_signal::SERVICE_NAME);
            ("signal", args.listen, serde_json::json!([]), names)
        }
        Command::Health(args) => {
            health_config(args, mesh)?;
            check_health_links(args, mesh)?;
            let paths = serde_json::json!(["/health/live", "/health/ready", "/metrics"]);
            ("health", args.listen, paths, serde_json::json!([]))
        }
        Command::All(args) => {
            mesh.check_unused("all")?;
            mesh.check_listen("auth", args.auth_listen)?;
            mesh.check_listen("signal", args.signal_listen)?;
            check_plaintext(args.edge_listen, &args.edge)?;
            check_drain(&args.edge)?;
            let paths = serde_json::json!(["/health/live", "/health/ready", "/ws"]);
            ("all", args.edge_listen, paths, serde_json::json!([]))
        }
        Command::Token(_) | Command::Keys(_) | Command::Certs(_) => {
            return Err("--check-config applies to edge, auth, signal, health and all".into());
        }
    };
    // Files the service reads at start besides the config and `*_FILE`s.
    let mut files: Vec<std::path::PathBuf> = files.to_vec();
    match command {
        Command::Edge(args) => {
            files.extend(
                args.common
                    .tls_cert
                    .iter()
                    .chain(&args.common.tls_key)
                    .cloned(),
            );
        }
        Command::Auth(args) => {
            files.extend(args.keys.signing_key.iter().cloned());
            files.extend(args.keys.verification_keys.iter().cloned());
        }
        Command::All(args) => {
            files.extend(args.edge.tls_cert.iter().chain(&args.edge.tls_key).cloned());
            files.extend(args.keys.signing_key.iter().cloned());
            files.extend(args.keys.verification_keys.iter().cloned());
        }
        _ => {}
    }
    files.extend(mesh.files());
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    // The admin port (`--metrics-listen`), serving /metrics and /health/live.
    let metrics_listen = match command {
        Command::Edge(args) => args.metrics_listen,
        Command::Auth(args) => args.metrics_listen,
        Command::Signal(args) => args.metrics_listen,
        _ => None,
    };
    check_metrics_port(listen, metrics_listen)?;
    // The plaintext health port of a gRPC server with mTLS (Kubernetes'
    // gRPC probes go there).
    let grpc_health_listen = match command {
        Command::Auth(_) | Command::Signal(_) => mesh.health_listen(),
        _ => None,
    };
    println!(
        "{}",
        serde_json::json!({
            "service": service,
            "listen": listen.to_string(),
            "http_paths": http_paths,
            "grpc_health_services": grpc_health,
            "files": files,
            "metrics_listen": metrics_listen.map(|a| a.to_string()),
            "grpc_health_listen": grpc_health_listen.map(|a| a.to_string()),
            "grpc_tls": mesh.has_identity(),
        })
    );
    Ok(())
}
