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

use tonic::{
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

use crate::{
    ErrorCode, SignalError, pb,
    service_credential::{Attach, ServiceCredential},
};

/// A verify call slower than this fails the join as `unavailable`.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// gRPC client of the auth service.
#[derive(Debug, Clone)]
pub struct AuthClient {
    client: pb::auth_client::AuthClient<InterceptedService<Channel, Attach>>,
    /// The revocation stream is open: auth is reachable and serving
    /// (readiness). HTTP/2 keepalive on the channel notices a dead peer.
    up: Arc<AtomicBool>,
}

impl AuthClient {
    /// A client of auth at `endpoint`, presenting `credential` (if any).
    pub fn new(endpoint: Endpoint, credential: Option<ServiceCredential>) -> Self {
        Self {
            client: pb::auth_client::AuthClient::with_interceptor(
                endpoint.connect_lazy(),
                Attach(credential),
            ),
            up: Arc::default(),
        }
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
        let mut client = self.client.clone();
        let call = client.verify_token(pb::VerifyTokenRequest {
            token: token.to_owned(),
        });
        match tokio::time::timeout(VERIFY_TIMEOUT, call).await {
            Ok(Ok(response)) => response
                .into_inner()
                .claims
                .ok_or_else(|| SignalError::new(ErrorCode::Internal, "auth returned no claims")),
            Ok(Err(status)) => Err(SignalError::from_status(&status)),
            Err(_) => Err(SignalError::new(
                ErrorCode::Unavailable,
                "auth did not answer in time",
            )),
        }
    }

    /// Exchanges `token` for a fresh access token.
    pub async fn refresh(&self, token: &str) -> Result<pb::RefreshTokenResponse, SignalError> {
        let mut client = self.client.clone();
        let call = client.refresh_token(pb::RefreshTokenRequest {
            token: token.to_owned(),
        });
        match tokio::time::timeout(VERIFY_TIMEOUT, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(SignalError::from_status(&status)),
            Err(_) => Err(SignalError::new(
                ErrorCode::Unavailable,
                "auth did not answer in time",
            )),
        }
    }

    /// The JWKS document of auth's verification keys.
    pub async fn jwks(&self) -> Result<String, SignalError> {
        let mut client = self.client.clone();
        match tokio::time::timeout(VERIFY_TIMEOUT, client.get_jwks(pb::GetJwksRequest {})).await {
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
        match tokio::time::timeout(VERIFY_TIMEOUT, client.issue_token(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(SignalError::from_status(&status)),
            Err(_) => Err(SignalError::new(
                ErrorCode::Unavailable,
                "auth did not answer in time",
            )),
        }
    }
}
