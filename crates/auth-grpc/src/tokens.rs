//! Access tokens: HS256 JWTs signed with the configured secret.
//!
//! Verification is strict (RFC 8725): the algorithm is fixed by the key,
//! never read from the header; `iss` and `aud` must match; `exp`, `nbf`,
//! `iat`, `iss`, `aud` and `sub` are required.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use switchboard_proto::{ErrorCode, ParticipantId, RoomId, SignalError, pb, validate};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(5);
/// Longest lifetime a token may be issued with.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The JWT claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    /// The room the holder may join.
    pub room: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// What a token is to be issued for.
#[derive(Debug, Clone)]
pub struct Grant {
    pub identity: ParticipantId,
    pub room: RoomId,
    pub name: String,
    pub ttl: Duration,
}

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TokenKeys")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// Mints a token valid from now for `grant.ttl` (capped at [`MAX_TTL`]).
    pub fn issue(&self, grant: &Grant) -> Result<(String, Claims), SignalError> {
        validate::name(&grant.name)?;
        let now = now_secs();
        let ttl = grant.ttl.min(MAX_TTL).as_secs().max(1);
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.identity.to_string(),
            exp: now + ttl,
            nbf: now,
            iat: now,
            jti: hex::encode(jti),
            room: grant.room.to_string(),
            name: grant.name.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| {
            SignalError::new(ErrorCode::Internal, format!("signing failed: {e}"))
        })?;
        Ok((token, claims))
    }

    /// Signs `claims` as they are, unchecked (for tools and tests that need
    /// a token with unusual claims).
    pub fn sign(&self, claims: &Claims) -> Result<String, SignalError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| SignalError::new(ErrorCode::Internal, format!("signing failed: {e}")))
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, SignalError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    SignalError::new(ErrorCode::TokenExpired, "token expired")
                }
                ErrorKind::ImmatureSignature => {
                    SignalError::new(ErrorCode::Unauthenticated, "token not yet valid")
                }
                ErrorKind::InvalidSignature => {
                    SignalError::new(ErrorCode::Unauthenticated, "invalid token signature")
                }
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => SignalError::new(
                    ErrorCode::Unauthenticated,
                    "token not issued for this service",
                ),
                _ => SignalError::new(ErrorCode::Unauthenticated, "invalid token"),
            },
        )?;
        let claims = data.claims;
        ParticipantId::new(&claims.sub)
            .map_err(|e| SignalError::new(ErrorCode::Unauthenticated, format!("sub: {e}")))?;
        RoomId::new(&claims.room)
            .map_err(|e| SignalError::new(ErrorCode::Unauthenticated, format!("room: {e}")))?;
        Ok(claims)
    }
}

impl From<Claims> for pb::Claims {
    fn from(c: Claims) -> Self {
        pb::Claims {
            subject: c.sub,
            room: c.room,
            name: c.name,
            issued_at: c.iat,
            expires_at: c.exp,
            token_id: c.jti,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "switchboard",
            "switchboard",
        )
    }

    fn grant(ttl: u64) -> Grant {
        Grant {
            identity: ParticipantId::new("alice").expect("id"),
            room: RoomId::new("lobby").expect("room"),
            name: "Alice".into(),
            ttl: Duration::from_secs(ttl),
        }
    }

    #[test]
    fn issued_tokens_verify() {
        let (token, claims) = keys().issue(&grant(60)).expect("issue");
        assert_eq!(keys().verify(&token), Ok(claims));
    }

    #[test]
    fn wrong_secret_and_wrong_audience_are_refused() {
        let (token, _) = keys().issue(&grant(60)).expect("issue");
        let other = TokenKeys::new(
            b"another secret of thirty-two byt",
            "switchboard",
            "switchboard",
        );
        assert_eq!(
            other.verify(&token).map_err(|e| e.code),
            Err(ErrorCode::Unauthenticated)
        );
        let other_aud = TokenKeys::new(b"0123456789abcdef0123456789abcdef", "switchboard", "else");
        assert_eq!(
            other_aud.verify(&token).map_err(|e| e.code),
            Err(ErrorCode::Unauthenticated)
        );
    }

    #[test]
    fn expired_tokens_are_typed() {
        let keys = keys();
        let mut claims = keys.issue(&grant(60)).expect("issue").1;
        claims.exp = now_secs() - 60;
        claims.iat = now_secs() - 120;
        claims.nbf = claims.iat;
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
            .expect("sign");
        assert_eq!(
            keys.verify(&token).map_err(|e| e.code),
            Err(ErrorCode::TokenExpired)
        );
    }
}
