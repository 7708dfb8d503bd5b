//! The application's join hook (proto `switchboard.v1.JoinHook`, docs/api.md
//! "Join hooks"): asked before every join, after the token was verified.
//! Each call has a deadline and passes a circuit breaker; when the hook
//! cannot answer (down, slow, erroring, or the breaker open) the configured
//! failure mode decides: closed refuses the join as `unavailable`
//! (retryable), open lets it through as the token says.

use std::{collections::HashMap, sync::Arc, time::Duration};

use switchboard_proto::{
    ErrorCode, SignalError,
    circuit_breaker::{BreakerConfig, CircuitBreaker},
    grpc,
    grpc_metrics::ClientMetrics,
    metrics::Metrics,
    pb,
    pb::join_hook_client::JoinHookClient,
    service_credential::{Attach, ServiceCredential},
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// Default deadline of one call.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Consecutive failures that open the breaker, and for how long.
pub const BREAKER_FAILURES: u32 = 5;
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(10);
/// Longest refusal reason passed on to the client.
pub const MAX_REASON_BYTES: usize = 100;

/// What happens to joins while the hook cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Refused as `unavailable` (retryable): nobody joins unchecked.
    Closed,
    /// Let through, as the token says.
    Open,
}

#[derive(Debug, Clone)]
pub struct JoinHookConfig {
    /// gRPC URL of the application's JoinHook service: `https://` (checked
    /// against `ca_file`, else the system's roots), `http://` only to
    /// loopback.
    pub url: String,
    /// CA bundle (PEM) for an https hook.
    pub ca_file: Option<std::path::PathBuf>,
    /// The credential signal presents to it.
    pub credential: Option<ServiceCredential>,
    pub timeout: Duration,
    pub failure: FailureMode,
    /// Failures in a row that open its breaker, and for how long.
    pub breaker: BreakerConfig,
}

/// What the hook decided for one join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub name: Option<String>,
    pub attributes: Option<HashMap<String, String>>,
    pub publish: Option<bool>,
}

/// The hook's client, shared by every join of this process.
#[derive(Clone)]
pub struct JoinHook {
    client: JoinHookClient<InterceptedService<ClientMetrics<Channel>, Attach>>,
    timeout: Duration,
    failure: FailureMode,
    breaker: Arc<CircuitBreaker>,
}

impl std::fmt::Debug for JoinHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHook")
            .field("timeout", &self.timeout)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl JoinHook {
    pub fn new(config: &JoinHookConfig) -> Result<Self, grpc::DialError> {
        let roots = config
            .ca_file
            .as_deref()
            .unwrap_or(std::path::Path::new(crate::webhooks::SYSTEM_ROOTS));
        let channel = grpc::Dial::application(&config.url, roots)?.connect_lazy();
        let client = JoinHookClient::with_interceptor(
            ClientMetrics::new(channel),
            Attach(config.credential.clone()),
        );
        Ok(Self {
            client,
            timeout: config.timeout,
            failure: config.failure,
            breaker: Arc::new(CircuitBreaker::new(
                config.breaker.failures.max(1),
                config.breaker.open_for,
            )),
        })
    }

    /// Asks the hook about a join: the changes to make, or the refusal.
    pub async fn check(&self, request: pb::CheckJoinRequest) -> Result<Changes, SignalError> {
        let metrics = switchboard_proto::metrics::metrics();
        let count = |outcome: &str| Metrics::count(&metrics.join_hook_calls, "outcome", outcome);
        if !self.breaker.admit() {
            count("breaker_open");
            return self.unanswered("the join check is failing; try again shortly");
        }
        let mut client = self.client.clone();
        let answer = tokio::time::timeout(self.timeout, client.check_join(request)).await;
        let answer = match answer {
            Ok(Ok(answer)) => answer.into_inner(),
            Ok(Err(status)) => {
                count("failed");
                self.breaker.failure();
                tracing::warn!(code = ?status.code(), "join hook failed");
                return self.unanswered("the join check failed; try again");
            }
            Err(_) => {
                count("failed");
                self.breaker.failure();
                tracing::warn!(timeout = ?self.timeout, "join hook did not answer in time");
                return self.unanswered("the join check did not answer; try again");
            }
        };
        self.breaker.success();
        self.report_breaker();
        count(if answer.allow { "allowed" } else { "refused" });
        if !answer.allow {
            let mut reason = answer.reason;
            if reason.len() > MAX_REASON_BYTES {
                let cut = (0..=MAX_REASON_BYTES)
                    .rev()
                    .find(|i| reason.is_char_boundary(*i))
                    .unwrap_or(0);
                reason.truncate(cut);
            }
            let reason = if reason.is_empty() {
                "by the application".to_owned()
            } else {
                reason
            };
            return Err(SignalError::new(
                ErrorCode::PermissionDenied,
                format!("join refused: {reason}"),
            ));
        }
        Ok(Changes {
            name: answer.name,
            attributes: answer.replace_attributes.then_some(answer.attributes),
            publish: answer.permissions.map(|p| p.publish),
        })
    }

    /// `switchboard_breaker_open{guard="join_hook"}` follows the breaker.
    fn report_breaker(&self) {
        let open = self.breaker.state() == switchboard_proto::circuit_breaker::BreakerState::Open;
        switchboard_proto::metrics::metrics()
            .breaker_open
            .get_or_create(&vec![("guard", "join_hook".to_owned())])
            .set(i64::from(open));
    }

    fn unanswered(&self, message: &str) -> Result<Changes, SignalError> {
        self.report_breaker();
        match self.failure {
            FailureMode::Open => Ok(Changes::default()),
            FailureMode::Closed => Err(SignalError::new(ErrorCode::Unavailable, message)),
        }
    }
}
