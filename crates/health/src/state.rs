//! What the aggregator knows of each dependency, and the readiness rule.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One observation of a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    Serving,
    NotServing,
    /// The target does not know the service name it was asked about.
    Unknown,
    /// No answer (refused, timed out, stream broken): why.
    Unreachable(String),
}

/// The state of one followed dependency.
#[derive(Debug, Clone)]
pub struct Probe {
    pub status: Observation,
    /// The last successful check's round trip.
    pub latency: Option<Duration>,
    /// When `status` last changed.
    pub since: SystemTime,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            status: Observation::Unreachable("not checked yet".into()),
            latency: None,
            since: SystemTime::now(),
        }
    }
}

impl Probe {
    pub fn is_serving(&self) -> bool {
        self.status == Observation::Serving
    }

    /// Records an observation (and a latency, for a check that answered).
    pub fn observe(&mut self, status: Observation, latency: Option<Duration>) {
        if latency.is_some() {
            self.latency = latency;
        }
        // The reason of an unreachable target may change; its state has not.
        let changed = !matches!(
            (&self.status, &status),
            (Observation::Unreachable(_), Observation::Unreachable(_))
        ) && self.status != status;
        if changed {
            self.since = SystemTime::now();
        }
        self.status = status;
    }

    pub fn to_json(&self, url: &str) -> serde_json::Value {
        let (status, error) = match &self.status {
            Observation::Serving => ("serving", None),
            Observation::NotServing => ("not_serving", None),
            Observation::Unknown => ("service_unknown", None),
            Observation::Unreachable(why) => ("unreachable", Some(why.as_str())),
        };
        let mut value = serde_json::json!({
            "url": url,
            "status": status,
            "latency_ms": self.latency.map(|l| (l.as_secs_f64() * 1e4).round() / 10.0),
            "since_unix_ms": self.since.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        });
        if let Some(error) = error {
            value["error"] = error.into();
        }
        value
    }
}

/// An address as shown in `/health/ready`: without credentials
/// (`redis://:secret@host` → `redis://host`).
pub fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => url.rsplit_once('@').map_or(url, |(_, h)| h).to_owned(),
    }
}

/// The readiness rule: every group (a name given to one or more targets,
/// and Redis when configured) has at least one serving member.
pub fn group_serving<'a>(members: impl IntoIterator<Item = &'a Probe>) -> bool {
    members.into_iter().any(Probe::is_serving)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_serves_while_one_member_does() {
        let serving = Probe {
            status: Observation::Serving,
            ..Probe::default()
        };
        let down = Probe::default();
        assert!(group_serving([&down, &serving]));
        assert!(!group_serving([&down, &down]));
        assert!(!group_serving([]));
    }

    #[test]
    fn since_moves_only_when_the_state_changes() {
        let mut probe = Probe::default();
        let first = probe.since;
        std::thread::sleep(Duration::from_millis(2));
        probe.observe(Observation::Unreachable("refused".into()), None);
        assert_eq!(probe.since, first, "still unreachable");
        probe.observe(Observation::Serving, Some(Duration::from_micros(1500)));
        assert!(probe.since > first);
        assert_eq!(probe.to_json("http://a:1")["latency_ms"], 1.5);
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            display_url("redis://:hunter2@redis:6379"),
            "redis://redis:6379"
        );
        assert_eq!(
            display_url("redis://user:pw@10.0.0.1:6379/0"),
            "redis://10.0.0.1:6379/0"
        );
        assert_eq!(display_url("http://auth:50051"), "http://auth:50051");
    }
}
