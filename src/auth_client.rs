//! A service's client of auth: verify, refresh, JWKS, dev tokens and the
//! revocation stream, each call bounded in time and carrying the service's
//! credential when it has one. The edge and signal both use it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tonic::{body::Body, service::interceptor::InterceptedService, transport::Channel};
use tower::{
    Service, ServiceExt,
    retry::budget::{Budget, TpsBudget},
    util::BoxCloneSyncService,
};

use crate::{
    ErrorCode, SignalError,
    circuit_breaker::{BreakerState, CircuitBreaker},
    grpc_metrics::ClientMetrics,
    pb,
    service_credential::{Attach, ServiceCredential},
};

/// A verify call slower than this fails the join as `unavailable`.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(3);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The auth service in this process (`switchboard all`), called without
/// HTTP/2 or TCP: the same requests, codec and handlers. A join's two
/// verifications (edge and signal) cost ≈ half a join's CPU over loopback
/// gRPC (BENCHMARKS.md).
#[derive(Clone)]
pub struct LocalAuth(BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>);

impl LocalAuth {
    /// `service` is auth's generated server (`AuthServer::new(..)`).
    pub fn new<S>(service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Self(BoxCloneSyncService::new(service.map_err(Into::into)))
    }
}

impl std::fmt::Debug for LocalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalAuth")
    }
}

/// How calls reach auth.
#[derive(Debug, Clone)]
enum Transport {
    Grpc(Channel),
    Local(LocalAuth),
}

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        match self {
            Self::Grpc(channel) => channel.poll_ready(cx).map_err(Into::into),
            Self::Local(local) => local.0.poll_ready(cx),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self {
            Self::Grpc(channel) => {
                let call = channel.call(request);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Self::Local(local) => Box::pin(local.0.call(request)),
        }
    }
}

/// gRPC client of the auth service.
#[derive(Debug, Clone)]
pub struct AuthClient {
    client: pb::auth_client::AuthClient<InterceptedService<ClientMetrics<Transport>, Attach>>,
    /// The revocation stream is open: auth is reachable and serving
    /// (readiness). HTTP/2 keepalive on the channel notices a dead peer.
    up: Arc<AtomicBool>,
    /// Verify and refresh fail fast while auth keeps failing (timeouts,
    /// transport errors): a hung auth costs each join a round of
    /// [`BREAKER_FAILURES`] timeouts, not one timeout per join.
    breaker: Arc<CircuitBreaker>,
    /// Retries of idempotent calls (verify, JWKS) that failed in the
    /// transport: one per call at most, and in all a tenth of the calls
    /// plus [`RETRIES_PER_SECOND`] (over 10 s), so a failing auth is never
    /// asked twice as often.
    retries: Arc<TpsBudget>,
}

/// Retries allowed a second whatever the call rate (a quiet edge whose
/// auth replica just restarted still gets its join through).
pub const RETRIES_PER_SECOND: u32 = 10;
/// Retries allowed per call made, on top.
pub const RETRY_SHARE: f32 = 0.1;

/// Consecutive failed calls to auth (no answer in time, no connection)
/// that open its breaker, and for how long.
pub const BREAKER_FAILURES: u32 = 3;
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(5);

impl AuthClient {
    /// A client of auth at `endpoint`, presenting `credential` (if any).
    pub fn new(dial: crate::grpc::Dial, credential: Option<ServiceCredential>) -> Self {
        Self::over(Transport::Grpc(dial.connect_lazy()), credential)
    }

    /// A client of the auth service in this process.
    pub fn local(auth: LocalAuth, credential: Option<ServiceCredential>) -> Self {
        Self::over(Transport::Local(auth), credential)
    }

    fn over(transport: Transport, credential: Option<ServiceCredential>) -> Self {
        Self {
            client: pb::auth_client::AuthClient::with_interceptor(
                ClientMetrics::new(transport),
                Attach(credential),
            ),
            up: Arc::default(),
            retries: Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                RETRIES_PER_SECOND,
                RETRY_SHARE,
            )),
            breaker: Arc::new({
                let breaker = crate::tuning::get().auth_breaker;
                CircuitBreaker::new(breaker.failures.max(1), breaker.open_for)
            }),
        }
    }

    /// Whether a call may go to auth now; if not, the error to answer.
    fn admit(&self) -> Result<(), SignalError> {
        if self.breaker.admit() {
            return Ok(());
        }
        Err(SignalError::new(
            ErrorCode::Unavailable,
            "auth is not answering; try again shortly",
        ))
    }

    /// Reports a call's outcome to the breaker: auth answering (even a
    /// refusal) is a success; silence or a broken transport a failure.
    fn outcome<T>(&self, result: &Result<T, tonic::Status>, timed_out: bool) {
        let failed = timed_out
            || result.as_ref().is_err_and(|status| {
                matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Unknown
                        | tonic::Code::Cancelled
                )
            });
        if failed {
            self.breaker.failure();
        } else {
            self.breaker.success();
        }
        let open = self.breaker.state() == BreakerState::Open;
        crate::metrics::metrics()
            .breaker_open
            .get_or_create(&vec![("guard", "auth".to_owned())])
            .set(i64::from(open));
    }

    /// Whether an idempotent call that failed with `status` on its
    /// `attempt`th try (from 1) is tried once more: it failed in the
    /// transport (a connection refused or reset: another replica or a new
    /// connection may serve it), not by an answer or a timeout, and the
    /// retry budget has room.
    fn may_retry(&self, status: &tonic::Status, attempt: u32) -> bool {
        attempt == 1 && status.code() == tonic::Code::Unavailable && self.retries.withdraw()
    }

    /// Whether auth is reachable (its revocation stream is open).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }

    /// Verifies `token`; typed errors come from auth's error table.
    pub async fn verify(&self, token: &str) -> Result<pb::Claims, SignalError> {
        if token.is_empty() {
            return Err(SignalError::new(
                ErrorCode::Unauthenticated,
                "missing token",
            ));
        }
        self.admit()?;
        self.retries.deposit();
        let deadline = tokio::time::Instant::now() + VERIFY_TIMEOUT;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.client.clone();
            let call = client.verify_token(with_deadline(pb::VerifyTokenRequest {
                token: token.to_owned(),
            }));
            let Ok(answer) = tokio::time::timeout_at(deadline, call).await else {
                self.outcome::<()>(&Ok(()), true);
                return Err(SignalError::new(
                    ErrorCode::Unavailable,
                    "auth did not answer in time",
                ));
            };
            self.outcome(&answer, false);
            return match answer {
                Ok(response) => response.into_inner().claims.ok_or_else(|| {
                    SignalError::new(ErrorCode::Internal, "auth returned no claims")
                }),
                Err(status) if self.may_retry(&status, attempt) => continue,
                Err(status) => Err(answer_error(&status)),
            };
        }
    }

    /// Exchanges `token` for a fresh access token.
    pub async fn refresh(&self, token: &str) -> Result<pb::RefreshTokenResponse, SignalError> {
        self.admit()?;
        let mut client = self.client.clone();
        let call = client.refresh_token(with_deadline(pb::RefreshTokenRequest {
            token: token.to_owned(),
        }));
        let answer = tokio::time::timeout(VERIFY_TIMEOUT, call).await;
        match answer {
            Ok(answer) => {
                self.outcome(&answer, false);
                answer
                    .map(tonic::Response::into_inner)
                    .map_err(|status| answer_error(&status))
            }
            Err(_) => {
                self.outcome::<()>(&Ok(()), true);
                Err(SignalError::new(
                    ErrorCode::Unavailable,
                    "auth did not answer in time",
                ))
            }
        }
    }

    /// The JWKS document of auth's verification keys.
    pub async fn jwks(&self) -> Result<String, SignalError> {
        let mut client = self.client.clone();
        match tokio::time::timeout(
            VERIFY_TIMEOUT,
            client.get_jwks(with_deadline(pb::GetJwksRequest {})),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response.into_inner().json),
            Ok(Err(status)) => Err(SignalError::from_status(&status)),
            Err(_) => Err(SignalError::new(
                ErrorCode::Unavailable,
                "auth did not answer in time",
            )),
        }
    }

    /// Opens the revocation event stream.
    pub async fn watch_revocations(
        &self,
    ) -> Result<tonic::Streaming<pb::Revocation>, tonic::Status> {
        let mut client = self.client.clone();
        Ok(client
            .watch_revocations(pb::WatchRevocationsRequest {})
            .await?
            .into_inner())
    }

    /// Mints a dev token (dev mode only; auth refuses otherwise).
    pub async fn issue(
        &self,
        request: pb::IssueTokenRequest,
    ) -> Result<pb::IssueTokenResponse, SignalError> {
        let mut client = self.client.clone();
        match tokio::time::timeout(VERIFY_TIMEOUT, client.issue_token(with_deadline(request))).await
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(SignalError::from_status(&status)),
            Err(_) => Err(SignalError::new(
                ErrorCode::Unavailable,
                "auth did not answer in time",
            )),
        }
    }
}

/// A call carrying its deadline ([`VERIFY_TIMEOUT`]) as `grpc-timeout`:
/// auth stops working on it when the caller has given up (tonic enforces
/// the header on the server).
fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(VERIFY_TIMEOUT);
    request
}

/// The error of a call auth did not complete: its deadline (sent as
/// `grpc-timeout`, enforced by tonic's client as CANCELLED) reads as no
/// answer in time; anything else as auth said.
fn answer_error(status: &tonic::Status) -> SignalError {
    match status.code() {
        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
            SignalError::new(ErrorCode::Unavailable, "auth did not answer in time")
        }
        _ => SignalError::from_status(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transport_failures_are_retried_once_and_within_the_budget() {
        let dial =
            crate::grpc::Dial::new("http://127.0.0.1:9", None, &crate::mtls::PeerName::auth())
                .expect("dial");
        let client = AuthClient::new(dial, None);
        let down = tonic::Status::unavailable("tcp connect error");
        assert!(client.may_retry(&down, 1));
        assert!(!client.may_retry(&down, 2), "once per call");
        assert!(
            !client.may_retry(&tonic::Status::unauthenticated("bad token"), 1),
            "an answer is not retried"
        );
        // With no calls made, the floor alone: RETRIES_PER_SECOND over the
        // budget's 10 s window, then no more.
        let mut allowed = 1;
        while client.may_retry(&down, 1) {
            allowed += 1;
            assert!(allowed <= 1_000, "the budget never ran out");
        }
        let floor = RETRIES_PER_SECOND * 10;
        assert!((floor - 1..=floor + 1).contains(&allowed), "{allowed}");
        // Calls made earn RETRY_SHARE of a retry each.
        for _ in 0..100 {
            client.retries.deposit();
        }
        let mut earned = 0;
        while client.may_retry(&down, 1) {
            earned += 1;
            assert!(earned <= 1_000);
        }
        assert!((9..=11).contains(&earned), "{earned}");
        // The window passes: the floor is back.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(client.may_retry(&down, 1));
    }
}
