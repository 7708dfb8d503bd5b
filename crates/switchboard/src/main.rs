//! The `switchboard` binary: parse the command line, start tracing, run the
//! chosen service until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

mod cli;
mod keys;
mod services;
mod shutdown;
mod token;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Edge(args) => services::edge(args).await,
        Command::Auth(args) => services::auth(args).await,
        Command::Signal(args) => services::signal(args).await,
        Command::Health(args) => services::health(args).await,
        Command::All(args) => services::all(*args).await,
        Command::Token(args) => token::run(args).await,
        Command::Keys(command) => keys::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "switchboard failed");
            eprintln!("switchboard: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
