//! Follows one gRPC target's `grpc.health.v1` status: `Watch` pushes every
//! change as it happens, and a `Check` every [`CHECK_INTERVAL`], bounded by
//! the target's timeout, measures the latency and catches what a Watch
//! cannot see: a process that is stopped (SIGSTOP, a stalled node) keeps
//! its TCP connection and its stream open but answers nothing. Either
//! failing marks the target down; the watch reconnects with backoff.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use switchboard_proto::health_pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use switchboard_proto::{
    grpc::Dial,
    mtls::{Mtls, PeerName},
};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use crate::state::{Observation, Probe};

/// Backoff bounds between watch attempts on a target that is down.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How often a followed target is also checked (latency, stalls).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One gRPC service to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The group it belongs to in `/health/ready` (targets sharing a name
    /// are replicas: the group serves while one of them does).
    pub name: String,
    /// gRPC address, e.g. `http://127.0.0.1:50051`.
    pub url: String,
    /// The `grpc.health.v1` service name to follow (`""` = the process).
    pub service: String,
}

/// Why a target was refused at start.
#[derive(Debug, thiserror::Error)]
#[error("health target {0:?}: {1}")]
pub struct TargetError(pub String, pub &'static str);

impl std::str::FromStr for Target {
    type Err = TargetError;

    /// `NAME=URL[#SERVICE]`, URL `http://host:port`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let refuse = |why| TargetError(raw.to_owned(), why);
        let (name, rest) = raw
            .split_once('=')
            .ok_or_else(|| refuse("expected NAME=URL[#SERVICE]"))?;
        let (url, service) = rest.split_once('#').unwrap_or((rest, ""));
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(refuse("the name must be letters, digits, '-', '_' or '.'"));
        }
        let uri: http::Uri = url.parse().map_err(|_| refuse("unparseable URL"))?;
        let scheme = uri.scheme_str();
        if !matches!(scheme, Some("http" | "https"))
            || uri.port_u16().is_none()
            || uri.host().is_none()
        {
            return Err(refuse("the URL must be http(s)://HOST:PORT"));
        }
        // Over mTLS the target's certificate must name the group.
        if scheme == Some("https") && name.parse::<PeerName>().is_err() {
            return Err(refuse(
                "an https:// target's NAME is the peer name its certificate carries: letters, digits, '-', '.'",
            ));
        }
        Endpoint::from_shared(url.to_owned()).map_err(|_| refuse("unparseable URL"))?;
        Ok(Self {
            name: name.into(),
            url: url.into(),
            service: service.into(),
        })
    }
}

/// Keeps `probe` up to date with the target until `stop` fires.
pub async fn follow(
    target: Target,
    mtls: Option<Arc<Mtls>>,
    timeout: Duration,
    probe: watch::Sender<Probe>,
    mut stop: watch::Receiver<bool>,
) {
    // Refused at start (Target::from_str, crate::validate) otherwise.
    let Ok(peer) = target
        .name
        .parse::<PeerName>()
        .or_else(|_| "unnamed".parse())
    else {
        return;
    };
    let Ok(dial) = Dial::new(&target.url, mtls.as_deref(), &peer) else {
        return;
    };
    let channel = dial.with_connect_timeout(timeout).connect_lazy();
    let mut retry = RETRY_MIN;
    loop {
        let attempt = watch_until_failure(&target, &channel, timeout, &probe);
        let why = tokio::select! {
            why = attempt => why,
            _ = stop.wait_for(|s| *s) => return,
        };
        tracing::debug!(target = %target.name, url = %target.url, error = %why, "health target down");
        probe.send_modify(|p| p.observe(Observation::Unreachable(why), None));
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        retry = (retry * 2).min(RETRY_MAX);
        if probe.borrow().is_serving() {
            retry = RETRY_MIN;
        }
    }
}

fn observation(status: i32) -> Observation {
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Serving) => Observation::Serving,
        Ok(ServingStatus::ServiceUnknown) => Observation::Unknown,
        _ => Observation::NotServing,
    }
}

/// Watches, and checks every [`CHECK_INTERVAL`], until either fails;
/// returns why.
async fn watch_until_failure(
    target: &Target,
    channel: &Channel,
    timeout: Duration,
    probe: &watch::Sender<Probe>,
) -> String {
    let request = || HealthCheckRequest {
        service: target.service.clone(),
    };
    let mut client = HealthClient::new(channel.clone());
    let opened = tokio::time::timeout(timeout, client.watch(request())).await;
    let mut stream = match opened {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => return format!("watch refused: {}", status.code()),
        Err(_) => return "watch timed out".into(),
    };
    let mut checks = tokio::time::interval(CHECK_INTERVAL);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            update = stream.message() => match update {
                Ok(Some(update)) => probe.send_modify(|p| p.observe(observation(update.status), None)),
                Ok(None) => return "watch ended".into(),
                Err(status) => return format!("watch failed: {}", status.code()),
            },
            _ = checks.tick() => {
                let started = Instant::now();
                let mut client = HealthClient::new(channel.clone());
                match tokio::time::timeout(timeout, client.check(request())).await {
                    Ok(Ok(answer)) => {
                        let latency = started.elapsed();
                        let seen = observation(answer.into_inner().status);
                        probe.send_modify(|p| p.observe(seen, Some(latency)));
                    }
                    Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
                        probe.send_modify(|p| p.observe(Observation::Unknown, Some(started.elapsed())));
                    }
                    Ok(Err(status)) => return format!("check failed: {}", status.code()),
                    Err(_) => return format!("check timed out after {} ms", timeout.as_millis()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_are_refused_with_the_reason() {
        let t: Target = "signal=http://10.0.0.1:50052#switchboard.v1.Signal"
            .parse()
            .expect("valid");
        assert_eq!(
            (t.name.as_str(), t.url.as_str(), t.service.as_str()),
            ("signal", "http://10.0.0.1:50052", "switchboard.v1.Signal")
        );
        let t: Target = "auth=http://auth:50051".parse().expect("valid");
        assert_eq!(t.service, "");
        for bad in [
            "",
            "signal",
            "=http://a:1",
            "signal=",
            "signal=auth:50051",
            "signal=http://a",
            "signal=ftp://a:1",
            "sig nal=http://a:1",
            "signal=http://a:99999",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?} was accepted");
        }
    }
}
