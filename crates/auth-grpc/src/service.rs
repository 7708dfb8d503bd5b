//! The `switchboard.v1.Auth` gRPC service.

use std::{pin::Pin, time::Duration};

use futures_util::{Stream, StreamExt};
use switchboard_proto::{ErrorCode, SignalError, pb};
use tokio::sync::watch;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use tonic::{Request, Response, Status};

use crate::{
    claims::TokenType,
    keyring::{Keyring, MAX_TTL, TokenRequest},
    now_secs,
};

/// Metadata carrying a backend's (or a service's) API credential.
pub use switchboard_proto::service_credential::{
    KEY_METADATA as API_KEY_METADATA, SECRET_METADATA as API_SECRET_METADATA,
};

/// Serves token issue, verification, refresh and revocation.
#[derive(Debug, Clone)]
pub struct AuthService {
    keys: Keyring,
    default_ttl: Duration,
    refresh_ttl: Duration,
    /// Dev mode: `IssueToken` needs no credential.
    dev: bool,
    /// Becomes true at shutdown; ends revocation streams.
    stop: watch::Receiver<bool>,
}

impl AuthService {
    pub fn new(
        keys: Keyring,
        default_ttl: Duration,
        refresh_ttl: Duration,
        dev: bool,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            keys,
            default_ttl,
            refresh_ttl,
            dev,
            stop,
        }
    }

    /// Checks the caller's API credential; returns its key. In dev mode,
    /// `dev_open` calls may come without one (returns "dev").
    fn authorize<T>(&self, request: &Request<T>, dev_open: bool) -> Result<String, Status> {
        let value = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok());
        match (value(API_KEY_METADATA), value(API_SECRET_METADATA)) {
            (Some(key), Some(secret)) => match self.keys.api_key(key, secret) {
                Some(api) => Ok(api.key.clone()),
                None => Err(
                    SignalError::new(ErrorCode::Unauthenticated, "invalid API credential").into(),
                ),
            },
            _ if self.dev && dev_open => Ok("dev".into()),
            _ => Err(SignalError::new(
                ErrorCode::Unauthenticated,
                "API credential required (x-api-key, x-api-secret)",
            )
            .into()),
        }
    }
}

impl AuthService {
    /// Revokes token id `token_id` (and the chain it may start) for as
    /// long as any token it covers can verify; `expires_at` is a lower
    /// bound.
    async fn revoke_id(&self, token_id: &str, expires_at: u64) -> Result<(), Status> {
        // The id may be a chain's (its first token's): the chain's
        // refreshed tokens and its refresh token live up to the maximum
        // session past now, whatever `expires_at` the caller passes.
        let chain_end = now_secs()
            .saturating_add(self.keys.max_session().as_secs())
            .saturating_add(MAX_TTL.as_secs());
        let until = expires_at
            .saturating_add(crate::keyring::LEEWAY.as_secs())
            .max(chain_end);
        self.keys
            .revocations()
            .revoke_token(token_id, until)
            .await
            .map_err(unavailable)
    }

    /// Revokes every token of chain `chain`.
    async fn revoke_chain(&self, chain: &str) -> Result<(), Status> {
        self.revoke_id(chain, 0).await
    }
}

fn unavailable(err: crate::revocations::RevocationStoreError) -> Status {
    tracing::warn!(error = %err, "revocation not shared");
    // Honest partial success: it holds here (and on the edges this replica
    // feeds), not yet on the other replicas.
    SignalError::new(
        ErrorCode::Unavailable,
        "revoked on this auth replica only: the revocation store is unavailable; retry",
    )
    .into()
}

type RevocationStream = Pin<Box<dyn Stream<Item = Result<pb::Revocation, Status>> + Send>>;

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let caller = self.authorize(&request, true)?;
        let req = request.into_inner();
        let grants = req.grants.unwrap_or_default();
        if grants.room.is_empty()
            && !(grants.room_create
                || grants.room_list
                || grants.room_close
                || grants.kick
                || grants.room_data
                || grants.room_admin)
        {
            return Err(SignalError::new(ErrorCode::BadRequest, "grants.room is required").into());
        }
        let ttl = match req.ttl_seconds {
            0 => self.default_ttl,
            s => Duration::from_secs(s.into()),
        };
        let mut request = TokenRequest {
            identity: req.identity,
            name: req.name,
            grants,
            metadata: req.metadata,
            ttl,
            token_type: TokenType::Access,
            auth_time: 0,
            chain: String::new(),
        };
        let (token, claims) = self.keys.issue(&request)?;
        let mut response = pb::IssueTokenResponse {
            token,
            expires_at: claims.exp,
            chain_id: claims.chain().to_owned(),
            ..Default::default()
        };
        if req.with_refresh_token {
            request.token_type = TokenType::Refresh;
            request.auth_time = claims.auth_time;
            // One chain: revoking the access token's id revokes this too.
            request.chain = claims.jti.clone();
            request.ttl = self.keys.max_session();
            let (refresh, refresh_claims) = self.keys.issue(&request)?;
            response.refresh_token = refresh;
            response.refresh_expires_at = refresh_claims.exp;
        }
        tracing::info!(caller = %caller, kid = self.keys.signer_kid(), "token issued");
        Ok(Response::new(response))
    }

    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        let claims = self
            .keys
            .verify(&request.into_inner().token, TokenType::Access)?;
        Ok(Response::new(pb::VerifyTokenResponse {
            claims: Some(claims.into()),
        }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        // A refresh token may be exchanged by whoever holds it; an access
        // token only by a service (the edge, for its live sessions), or a
        // leaked short-lived token would become a session-long one.
        let presented = self.keys.verify_any(&request.get_ref().token)?;
        if presented.token_type == TokenType::Access {
            self.authorize(&request, false).map_err(|_| {
                Status::from(SignalError::new(
                    ErrorCode::Unauthenticated,
                    "refreshing an access token needs a service credential",
                ))
            })?;
        }
        let mut rotated = None;
        if presented.token_type == TokenType::Refresh {
            // Single use: a second exchange means two holders (one of them
            // a thief); the whole chain is revoked, both are out.
            let first = self
                .keys
                .revocations()
                .spend(&presented.jti, presented.exp)
                .await
                .map_err(unavailable)?;
            if !first {
                self.revoke_chain(presented.chain()).await?;
                tracing::warn!("refresh token reused; chain revoked");
                return Err(SignalError::new(
                    ErrorCode::TokenRevoked,
                    "refresh token reused: the session is revoked",
                )
                .into());
            }
            // The replacement: same chain, to the end of the session.
            rotated = Some(
                self.keys
                    .continue_chain(&presented, TokenType::Refresh, None)?,
            );
        }
        let (token, claims) =
            self.keys
                .continue_chain(&presented, TokenType::Access, Some(self.refresh_ttl))?;
        let (refresh_token, refresh_expires_at) = rotated
            .map(|(token, claims)| (token, claims.exp))
            .unwrap_or_default();
        Ok(Response::new(pb::RefreshTokenResponse {
            token,
            expires_at: claims.exp,
            token_id: claims.jti,
            refresh_token,
            refresh_expires_at,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        // Revocation always needs a credential, dev mode or not.
        let caller = self.authorize(&request, false)?;
        let req = request.into_inner();
        if req.token_id.is_empty() {
            return Err(SignalError::new(ErrorCode::BadRequest, "token_id is required").into());
        }
        self.revoke_id(&req.token_id, req.expires_at).await?;
        tracing::info!(caller = %caller, "token revoked");
        Ok(Response::new(pb::RevokeResponse {}))
    }

    async fn revoke_user(
        &self,
        request: Request<pb::RevokeUserRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        // Revocation always needs a credential, dev mode or not.
        let caller = self.authorize(&request, false)?;
        let subject = request.into_inner().subject;
        if subject.is_empty() {
            return Err(SignalError::new(ErrorCode::BadRequest, "subject is required").into());
        }
        // Refresh can keep a chain alive for max_session; a refresh token
        // lives as long.
        let until = now_secs() + self.keys.max_session().as_secs() + MAX_TTL.as_secs();
        self.keys
            .revocations()
            .revoke_subject(&subject, until)
            .await
            .map_err(unavailable)?;
        tracing::info!(caller = %caller, "user revoked");
        Ok(Response::new(pb::RevokeResponse {}))
    }

    type WatchRevocationsStream = RevocationStream;

    async fn watch_revocations(
        &self,
        request: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        // Every revoked token id and user id: services only.
        self.authorize(&request, false)?;
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        // What is revoked now first, then what happens: a watcher that
        // (re)connects also learns what it missed while it was away.
        let (current, events) = self.keys.revocations().watch();
        let stream = futures_util::stream::iter(current.into_iter().map(Ok))
            .chain(BroadcastStream::new(events).map(|event| match event {
                Ok(revocation) => Ok(revocation),
                // The watcher fell behind: make it reconnect (and re-verify).
                Err(BroadcastStreamRecvError::Lagged(n)) => Err(Status::data_loss(format!(
                    "watcher lagged by {n} revocations"
                ))),
            }))
            .take_until(stopped);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::Jwks>, Status> {
        Ok(Response::new(pb::Jwks {
            json: self.keys.jwks_json(),
        }))
    }
}
