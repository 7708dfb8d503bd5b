//! The OTLP trace exporter (`--otlp-endpoint`, off unless given): spans
//! of `switchboard_proto::trace::TARGET` only, batched and sent over gRPC
//! from a task of this process's runtime. A collector that is down or slow
//! costs dropped spans (the batch queue is bounded), never a stalled call.
//! Plain `http://` only to loopback (a node-local agent through a sidecar);
//! anything else must be `https://`, verified against the web PKI roots.

use std::time::Duration;

use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    runtime::Tokio,
    trace::{Sampler, SdkTracerProvider, span_processor_with_async_runtime::BatchSpanProcessor},
};
use tracing::Subscriber;
use tracing_subscriber::{Layer, filter::filter_fn, registry::LookupSpan};

/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("--otlp-endpoint {0}: plain http is allowed only to loopback; use https")]
    Plaintext(String),
    #[error("--otlp-endpoint {0}: not an http(s) URL")]
    Url(String),
    #[error("--trace-sample-ratio must be within 0..=1, not {0}")]
    Ratio(f64),
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// Where traces go, and how many.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    pub endpoint: String,
    pub sample_ratio: f64,
    /// `service.name` of this process's spans.
    pub service: &'static str,
}

/// The exporter, flushed when the process stops.
#[derive(Debug)]
pub struct Telemetry(SdkTracerProvider);

impl Telemetry {
    /// Sends what is batched (bounded by the export timeout).
    pub fn shutdown(self) {
        if let Err(err) = self.0.shutdown() {
            tracing::debug!(error = %err, "trace exporter did not flush");
        }
    }
}

/// Checks the endpoint and ratio (also for `--check-config`).
pub fn check(config: &TraceConfig) -> Result<(), TelemetryError> {
    if !(0.0..=1.0).contains(&config.sample_ratio) {
        return Err(TelemetryError::Ratio(config.sample_ratio));
    }
    let url = &config.endpoint;
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(TelemetryError::Url(url.clone()));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    if host.is_empty() {
        return Err(TelemetryError::Url(url.clone()));
    }
    if !https && !switchboard_proto::grpc::is_loopback_host(host) {
        return Err(TelemetryError::Plaintext(url.clone()));
    }
    Ok(())
}

/// The tracing layer that exports this process's spans, and its handle.
/// Must run inside the Tokio runtime (the exporter's task lives there).
pub fn layer<S>(config: &TraceConfig) -> Result<(impl Layer<S>, Telemetry), TelemetryError>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    check(config)?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT);
    if config.endpoint.starts_with("https://") {
        exporter =
            exporter.with_tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots());
    }
    let exporter = exporter
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let processor = BatchSpanProcessor::builder(exporter, Tokio).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        // Whether a trace is sampled is decided where it starts
        // (`switchboard_proto::trace`); a span exists only if it is.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service)
                .build(),
        )
        .build();
    let tracer = provider.tracer("switchboard");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Only the trace spans: log lines and the log's own spans (with
        // their fields) never leave the process this way.
        .with_filter(filter_fn(|meta| {
            meta.target() == switchboard_proto::trace::TARGET
        }));
    switchboard_proto::trace::configure(config.sample_ratio);
    Ok((layer, Telemetry(provider)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str, ratio: f64) -> TraceConfig {
        TraceConfig {
            endpoint: endpoint.into(),
            sample_ratio: ratio,
            service: "switchboard-test",
        }
    }

    #[test]
    fn plaintext_only_to_loopback() {
        assert!(check(&config("http://127.0.0.1:4317", 0.1)).is_ok());
        assert!(check(&config("http://localhost:4317", 0.1)).is_ok());
        assert!(check(&config("http://[::1]:4317", 0.1)).is_ok());
        assert!(check(&config("https://otel.example:4317", 0.1)).is_ok());
        assert!(matches!(
            check(&config("http://otel.example:4317", 0.1)),
            Err(TelemetryError::Plaintext(_))
        ));
        assert!(matches!(
            check(&config("otel:4317", 0.1)),
            Err(TelemetryError::Url(_))
        ));
        assert!(matches!(
            check(&config("http://127.0.0.1:4317", 1.5)),
            Err(TelemetryError::Ratio(_))
        ));
    }
}
