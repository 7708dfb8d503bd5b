//! Process-wide settings of the infrastructure every service shares (the
//! gRPC server guard, the breaker on calls to auth), set once from the
//! command line before any service starts. A process that sets nothing
//! (tests, embedders) gets the defaults.

use std::sync::OnceLock;

use crate::{auth_client, circuit_breaker::BreakerConfig, grpc};

/// See the module's doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Calls a gRPC server runs in its handlers at once; more are shed
    /// (RESOURCE_EXHAUSTED) at once (`grpc_metrics::CallGuardLayer`).
    pub max_concurrent_calls: usize,
    /// The breaker on every call to auth (edge and signal).
    pub auth_breaker: BreakerConfig,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            max_concurrent_calls: grpc::MAX_CONCURRENT_CALLS,
            auth_breaker: BreakerConfig {
                failures: auth_client::BREAKER_FAILURES,
                open_for: auth_client::BREAKER_OPEN_FOR,
            },
        }
    }
}

static TUNING: OnceLock<Tuning> = OnceLock::new();

/// Sets the process's settings; only the first call counts (returns
/// whether this one did).
pub fn set(tuning: Tuning) -> bool {
    TUNING.set(tuning).is_ok()
}

/// The process's settings.
pub fn get() -> Tuning {
    TUNING.get().copied().unwrap_or_default()
}
