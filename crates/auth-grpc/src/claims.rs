//! The JWT claims of Switchboard tokens (docs/auth.md).

use std::{collections::HashMap, time::Duration};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use switchboard_proto::{ErrorCode, ParticipantId, SignalError, pb, validate};

use crate::{keyring::MAX_TTL, now_secs};

/// What a token is for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Joins a room; short-lived.
    #[default]
    Access,
    /// Only exchanged for access tokens through `RefreshToken`.
    Refresh,
}

/// The claims. `exp`, `nbf`, `iat`, `iss`, `aud` and `sub` are required on
/// verification; the rest have defaults so a backend can mint a minimal
/// token with its API key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub token_type: TokenType,
    /// Display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Application metadata, passed to other participants' view unchanged.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub metadata: std::collections::HashMap<String, String>,
    /// What the holder may do (proto3 JSON of `switchboard.v1.Grants`).
    #[serde(default)]
    pub grants: pb::Grants,
    /// The `jti` of the first token of this chain; refresh keeps it, so
    /// revoking that id also revokes every token refreshed from it.
    /// Empty = this token's own `jti`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chain: String,
    /// When the first token of this chain was issued; refresh keeps it, and
    /// the maximum session lifetime counts from it. 0 = `iat`.
    #[serde(default)]
    pub auth_time: u64,
}

impl Claims {
    /// The id of the token chain this token belongs to.
    pub fn chain(&self) -> &str {
        if self.chain.is_empty() {
            &self.jti
        } else {
            &self.chain
        }
    }

    pub fn auth_time(&self) -> u64 {
        if self.auth_time == 0 {
            self.iat
        } else {
            self.auth_time
        }
    }
}

/// What a new token is for.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub identity: String,
    pub name: String,
    pub grants: pb::Grants,
    pub metadata: HashMap<String, String>,
    pub ttl: Duration,
    pub token_type: TokenType,
    /// Keep this chain's first issue time (refresh); 0 = now.
    pub auth_time: u64,
    /// Keep this chain's id (refresh); empty = a new chain.
    pub chain: String,
}

impl TokenRequest {
    /// The claims of a token for this request, valid from now.
    pub fn to_claims(&self, issuer: &str, audience: &str) -> Result<Claims, SignalError> {
        ParticipantId::new(&self.identity)
            .map_err(|e| SignalError::new(ErrorCode::BadRequest, format!("identity: {e}")))?;
        validate::name(&self.name)?;
        validate::attributes(&self.metadata)?;
        let now = now_secs();
        let auth_time = if self.auth_time == 0 {
            now
        } else {
            self.auth_time
        };
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        Ok(Claims {
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            sub: self.identity.clone(),
            exp: now + self.ttl.min(MAX_TTL).as_secs().max(1),
            nbf: now,
            iat: now,
            jti: hex::encode(jti),
            token_type: self.token_type,
            name: self.name.clone(),
            metadata: self.metadata.clone(),
            grants: self.grants.clone(),
            chain: self.chain.clone(),
            auth_time,
        })
    }
}

impl From<Claims> for pb::Claims {
    fn from(c: Claims) -> Self {
        let auth_time = c.auth_time();
        let chain = c.chain().to_owned();
        pb::Claims {
            chain,
            subject: c.sub,
            name: c.name,
            issued_at: c.iat,
            expires_at: c.exp,
            token_id: c.jti,
            grants: Some(c.grants),
            metadata: c.metadata,
            auth_time,
            issuer: c.iss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_use_the_proto_json_mapping() {
        let json = r#"{"iss":"k","aud":"a","sub":"s","exp":2,"nbf":1,"iat":1,"grants":{"room":"r","publish":true}}"#;
        let claims: Claims = serde_json::from_str(json).expect("parse");
        assert_eq!(claims.grants.room, "r");
        assert!(claims.grants.publish);
        assert_eq!(claims.token_type, TokenType::Access);
        assert_eq!(claims.auth_time(), 1);
    }
}
