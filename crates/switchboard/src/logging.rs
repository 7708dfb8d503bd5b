//! The process's log subscriber: `RUST_LOG` (default `info`) for
//! Switchboard's own crates, and a hard cap at `info` for every dependency,
//! whatever `RUST_LOG` says. At debug and trace, h2, hyper, tungstenite,
//! tonic and friends print frames — headers with bearer tokens, WebSocket
//! payloads with SDP and ICE passwords — so no log level may reach them.

use tracing::{Level, Metadata};
use tracing_subscriber::{
    EnvFilter, Layer, filter::filter_fn, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::{
    cli::LogFormat,
    log_rate::LogRate,
    telemetry::{Telemetry, TelemetryError, TraceConfig},
};

/// Whether an event or span may be logged at all: anything of ours, and
/// a dependency's only up to info.
pub fn allowed(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("switchboard") || *meta.level() <= Level::INFO
}

/// Installs the log (and, with `traces`, the trace exporter).
/// `lines_per_second`: per call site (0 = no limit), bursts of ten times
/// that ([`LogRate`]); its reporter is returned for the caller to run.
pub fn init(
    format: LogFormat,
    lines_per_second: u32,
    traces: Option<&TraceConfig>,
) -> Result<(Option<Telemetry>, Option<LogRate>), TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log file or collector gets plain text.
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let output = match format {
        LogFormat::Text => output.boxed(),
        // The message at the top level of each JSON line.
        LogFormat::Json => output.json().flatten_event(true).boxed(),
    };
    let (traces, telemetry) = match traces {
        Some(config) => {
            let (layer, telemetry) = crate::telemetry::layer(config)?;
            (Some(layer), Some(telemetry))
        }
        None => (None, None),
    };
    let rate = (lines_per_second > 0)
        .then(|| LogRate::new(lines_per_second, lines_per_second.saturating_mul(10)));
    tracing_subscriber::registry()
        .with(
            output
                .with_filter(filter)
                .with_filter(filter_fn(allowed))
                .with_filter(rate.clone()),
        )
        .with(traces)
        .init();
    // Records of the `log` crate come only from dependencies (tungstenite,
    // ...), which are capped at info anyway. Without this static cap every
    // `log::trace!` on the hot path is turned into a tracing event only to
    // be filtered out: ≈ 4 % of a saturated core in the relay profile.
    log::set_max_level(log::LevelFilter::Info);
    Ok((telemetry, rate))
}

#[cfg(test)]
mod tests {
    use tracing::{Level, callsite::Identifier, field::FieldSet, metadata::Kind};

    use super::*;

    struct Site;
    impl tracing::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!()
        }
    }
    static SITE: Site = Site;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new(
            "event",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&SITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn dependencies_are_capped_at_info() {
        for dependency in [
            "h2::codec",
            "tungstenite::protocol",
            "hyper::proto",
            "tonic",
        ] {
            assert!(!allowed(&meta(dependency, Level::TRACE)), "{dependency}");
            assert!(!allowed(&meta(dependency, Level::DEBUG)), "{dependency}");
            assert!(allowed(&meta(dependency, Level::INFO)), "{dependency}");
        }
        assert!(allowed(&meta("switchboard_edge::connection", Level::TRACE)));
    }
}
