//! The `switchboard.v1.Auth` gRPC service.

use std::time::Duration;

use switchboard_proto::{ErrorCode, ParticipantId, RoomId, SignalError, pb};
use tonic::{Request, Response, Status};

use crate::tokens::{Grant, TokenKeys};

/// Serves token issue and verification.
#[derive(Debug, Clone)]
pub struct AuthService {
    keys: TokenKeys,
    default_ttl: Duration,
    /// Whether `IssueToken` may be called without a credential (dev mode).
    open_issue: bool,
}

impl AuthService {
    pub fn new(keys: TokenKeys, default_ttl: Duration, open_issue: bool) -> Self {
        Self {
            keys,
            default_ttl,
            open_issue,
        }
    }
}

fn invalid(message: String) -> Status {
    SignalError::new(ErrorCode::BadRequest, message).into()
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        if !self.open_issue {
            return Err(SignalError::new(
                ErrorCode::PermissionDenied,
                "IssueToken is only open in dev mode; mint tokens with the signing secret",
            )
            .into());
        }
        let req = request.into_inner();
        let grant = Grant {
            identity: ParticipantId::new(&req.identity).map_err(|e| invalid(e.to_string()))?,
            room: RoomId::new(&req.room).map_err(|e| invalid(e.to_string()))?,
            name: req.name,
            ttl: match req.ttl_seconds {
                0 => self.default_ttl,
                s => Duration::from_secs(s.into()),
            },
        };
        let (token, claims) = self.keys.issue(&grant)?;
        tracing::info!(room = %grant.room, "token issued");
        Ok(Response::new(pb::IssueTokenResponse {
            token,
            expires_at: claims.exp,
        }))
    }

    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        let claims = self.keys.verify(&request.into_inner().token)?;
        Ok(Response::new(pb::VerifyTokenResponse {
            claims: Some(claims.into()),
        }))
    }
}
