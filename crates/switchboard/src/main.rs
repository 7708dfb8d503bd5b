//! The `switchboard` binary: parse the command line, start tracing, run the
//! chosen service until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

mod certs;
mod check_config;
mod cli;
mod config;
mod keys;
mod log_rate;
mod logging;
mod mesh;
mod self_signed;
mod services;
mod shutdown;
mod telemetry;
mod token;

use crate::cli::Command;

/// mimalloc instead of glibc's malloc: the relay path allocates and frees
/// small buffers per message, and glibc's malloc/free took ≈ 10 % of a
/// saturated core in the profile (BENCHMARKS.md, "Where the time goes").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let (cli, sources) = match config::parse() {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("switchboard: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let traces = cli
        .otlp_endpoint
        .clone()
        .map(|endpoint| telemetry::TraceConfig {
            endpoint,
            sample_ratio: cli.trace_sample_ratio,
            service: cli.command.service_name(),
        });
    if cli.check_config {
        if let Some(Err(err)) = traces.as_ref().map(telemetry::check) {
            eprintln!("switchboard: {err}");
            return std::process::ExitCode::FAILURE;
        }
        return match mesh::Mesh::unloaded(&cli.mesh)
            .and_then(|mesh| check_config::check(&cli.command, &sources.files, &mesh))
        {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("switchboard: {err}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let (telemetry, log_rate) =
        match logging::init(cli.log_format, cli.log_lines_per_second, traces.as_ref()) {
            Ok(installed) => installed,
            Err(err) => {
                eprintln!("switchboard: {err}");
                return std::process::ExitCode::FAILURE;
            }
        };
    switchboard_proto::tuning::set(switchboard_proto::tuning::Tuning {
        max_concurrent_calls: cli.grpc_max_concurrent_calls.max(1),
        auth_breaker: switchboard_proto::circuit_breaker::BreakerConfig {
            failures: cli.auth_breaker_failures.max(1),
            open_for: std::time::Duration::from_millis(cli.auth_breaker_open_ms),
        },
    });
    let reporter = log_rate.map(|rate| tokio::spawn(rate.report()));
    let result = match mesh::Mesh::load(&cli.mesh) {
        Err(err) => Err(err),
        Ok(mesh) => match cli.command {
            Command::Edge(args) => services::edge(args, mesh).await,
            Command::Auth(args) => services::auth(args, mesh).await,
            Command::Signal(args) => services::signal(args, mesh).await,
            Command::Health(args) => services::health(args, mesh).await,
            Command::All(args) => services::all(*args, mesh).await,
            Command::Token(args) => token::run(args, mesh).await,
            Command::Keys(command) => keys::run(command),
            Command::Certs(command) => certs::run(command),
        },
    };
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "switchboard failed");
            eprintln!("switchboard: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
