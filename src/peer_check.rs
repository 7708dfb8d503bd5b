//! The per-call check of who is calling (crate::grpc_listen's [`Access`]):
//! a call on the health port that is not `grpc.health.v1`, or from a peer
//! whose certificate names no allowed peer, is answered
//! `PERMISSION_DENIED` with what would be let in — the caller learns why
//! from the status, not from a reset connection. Calls that come without
//! connection information (in process) pass.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use crate::{
    error::{ErrorCode, SignalError},
    grpc_listen::{Access, ConnInfo},
};

/// The path prefix the health port serves.
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

/// Why `path` may not be called over a connection of `access`, if not.
pub fn refusal(access: &Access, path: &str) -> Option<String> {
    match access {
        Access::Plaintext | Access::Peer(_) => None,
        Access::HealthOnly if path.starts_with(HEALTH_PATH) => None,
        Access::HealthOnly => Some(
            "this port serves grpc.health.v1 only; call the mTLS port with a client certificate"
                .into(),
        ),
        Access::Unlisted(allowed) => Some(format!(
            "the client certificate names none of the peers this service accepts ({})",
            allowed
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// [`refusal`] in front of a service.
#[derive(Debug, Clone)]
pub struct PeerCheck<S> {
    pub(crate) inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for PeerCheck<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let refused = request
            .extensions()
            .get::<ConnInfo>()
            .and_then(|info| refusal(&info.access, request.uri().path()));
        match refused {
            None => Box::pin(self.inner.call(request)),
            Some(why) => {
                tracing::warn!(method = %request.uri().path(), %why, "gRPC call refused");
                let status = SignalError::new(ErrorCode::PermissionDenied, why).to_status();
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::mtls::PeerName;

    #[test]
    fn each_access_reaches_what_it_may() {
        let health = "/grpc.health.v1.Health/Check";
        let auth = "/switchboard.v1.Auth/VerifyToken";
        assert!(refusal(&Access::Plaintext, auth).is_none());
        assert!(refusal(&Access::Peer(PeerName::signal()), auth).is_none());
        assert!(refusal(&Access::HealthOnly, health).is_none());
        assert!(refusal(&Access::HealthOnly, "/grpc.health.v1.HealthX/Check").is_some());
        let why = refusal(&Access::HealthOnly, auth).expect("refused");
        assert!(why.contains("grpc.health.v1 only"), "{why}");
        let allowed: Arc<[PeerName]> =
            vec![PeerName::signal(), "edge".parse().expect("name")].into();
        let why = refusal(&Access::Unlisted(allowed), health).expect("refused");
        assert!(why.contains("(signal, edge)"), "{why}");
    }
}
