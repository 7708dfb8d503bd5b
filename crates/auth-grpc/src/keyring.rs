//! Issuing and verifying tokens.
//!
//! Two kinds of token verify:
//! - **service tokens**, signed by this service's asymmetric key (EdDSA or
//!   ES256) with `kid` naming the key and `iss` = the service issuer;
//! - **API-key tokens**, minted by a backend with its API key/secret pair:
//!   HS256 with `iss` = the API key (and optionally `kid` = the API key).
//!
//! Verification follows RFC 8725: the key is chosen by `kid` (or `iss`) from
//! an allow-map, and the algorithm comes from that key, never from the
//! header; `iss` and `aud` must match; `exp`, `nbf`, `iat`, `iss`, `aud` and
//! `sub` are required; `jku`, `x5u` and `jwk` header parameters are ignored.

use std::{collections::HashMap, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use subtle::ConstantTimeEq;
use switchboard_proto::{ErrorCode, ParticipantId, SignalError};

pub use crate::claims::TokenRequest;
use crate::{
    claims::{Claims, TokenType},
    keys::{Jwk, KeyError},
    now_secs,
    revocations::Revocations,
};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(5);
/// Longest lifetime any single token may be issued with.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// A backend's API key and its secret.
#[derive(Clone)]
pub struct ApiKey {
    pub key: String,
    secret: Vec<u8>,
    decoding: DecodingKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Shortest accepted secret (RFC 7518 §3.2: at least the hash size).
    pub const MIN_SECRET_BYTES: usize = 32;

    pub fn new(key: &str, secret: &str) -> Result<Self, String> {
        if key.is_empty() || key.contains(':') {
            return Err("an API key must be non-empty and contain no ':'".into());
        }
        if secret.len() < Self::MIN_SECRET_BYTES {
            return Err(format!(
                "the secret of API key {key} must be at least {} bytes",
                Self::MIN_SECRET_BYTES
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            secret: secret.as_bytes().to_vec(),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
        })
    }

    /// Parses `KEY:SECRET`.
    pub fn parse(pair: &str) -> Result<Self, String> {
        let (key, secret) = pair
            .split_once(':')
            .ok_or("an API key pair is KEY:SECRET")?;
        Self::new(key, secret)
    }

    /// Constant-time check of a presented secret.
    pub fn matches(&self, secret: &str) -> bool {
        self.secret.ct_eq(secret.as_bytes()).into()
    }

    /// Mints an HS256 token as a backend would (`iss` = the API key).
    pub fn mint(&self, claims: &Claims) -> Result<String, SignalError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.key.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| SignalError::new(ErrorCode::Internal, format!("signing failed: {e}")))
    }
}

struct Verifier {
    alg: Algorithm,
    key: DecodingKey,
    jwk: Jwk,
}

/// Key material and policy of the auth service.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    signer_kid: String,
    signer_alg: Algorithm,
    signer: EncodingKey,
    verifiers: HashMap<String, Verifier>,
    api_keys: HashMap<String, ApiKey>,
    issuer: String,
    audience: String,
    max_session: Duration,
    revocations: Arc<Revocations>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Keyring")
            .field("signer", &self.inner.signer_kid)
            .field(
                "verifiers",
                &self.inner.verifiers.keys().collect::<Vec<_>>(),
            )
            .field("api_keys", &self.inner.api_keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a keyring is built from.
#[derive(Debug, Clone)]
pub struct KeyringConfig {
    /// The private key that signs new tokens.
    pub signing_key: Jwk,
    /// More keys whose tokens still verify (rotation); public or private.
    pub verification_keys: Vec<Jwk>,
    pub api_keys: Vec<ApiKey>,
    pub issuer: String,
    pub audience: String,
    /// No refresh extends a session past `auth_time` + this.
    pub max_session: Duration,
}

fn unauthenticated(message: &str) -> SignalError {
    SignalError::new(ErrorCode::Unauthenticated, message)
}

/// Reads `iss` from an unverified token, only to pick the key that will
/// verify it.
fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss")?.as_str().map(str::to_owned)
}

impl Keyring {
    pub fn new(config: KeyringConfig) -> Result<Self, KeyError> {
        let signer = config.signing_key.encoding_key()?;
        let signer_alg = config.signing_key.key_alg()?.algorithm();
        let signer_kid = config.signing_key.kid.clone();
        let mut verifiers = HashMap::new();
        for jwk in std::iter::once(&config.signing_key).chain(&config.verification_keys) {
            let verifier = Verifier {
                alg: jwk.key_alg()?.algorithm(),
                key: jwk.decoding_key()?,
                jwk: jwk.public(),
            };
            verifiers.insert(jwk.kid.clone(), verifier);
        }
        let api_keys = config
            .api_keys
            .into_iter()
            .map(|k| (k.key.clone(), k))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                signer_kid,
                signer_alg,
                signer,
                verifiers,
                api_keys,
                issuer: config.issuer,
                audience: config.audience,
                max_session: config.max_session,
                revocations: Arc::default(),
            }),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    pub fn signer_kid(&self) -> &str {
        &self.inner.signer_kid
    }

    pub fn max_session(&self) -> Duration {
        self.inner.max_session
    }

    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.inner.revocations
    }

    /// The API key `key` if `secret` is its secret.
    pub fn api_key(&self, key: &str, secret: &str) -> Option<&ApiKey> {
        self.inner.api_keys.get(key).filter(|k| k.matches(secret))
    }

    /// The JWKS of every verification key.
    pub fn jwks_json(&self) -> String {
        crate::keys::jwks_json(self.inner.verifiers.values().map(|v| &v.jwk))
    }

    /// Claims for `request`, valid from now, issued by `issuer`.
    pub fn claims_for(&self, request: &TokenRequest, issuer: &str) -> Result<Claims, SignalError> {
        request.to_claims(issuer, &self.inner.audience)
    }

    /// Signs `claims` with the service's signing key.
    pub fn sign(&self, claims: &Claims) -> Result<String, SignalError> {
        let mut header = Header::new(self.inner.signer_alg);
        header.kid = Some(self.inner.signer_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.inner.signer)
            .map_err(|e| SignalError::new(ErrorCode::Internal, format!("signing failed: {e}")))
    }

    /// Issues a service token for `request`.
    pub fn issue(&self, request: &TokenRequest) -> Result<(String, Claims), SignalError> {
        let claims = self.claims_for(request, &self.inner.issuer)?;
        let signed = self.sign(&claims)?;
        if request.token_type == TokenType::Access {
            switchboard_proto::metrics::metrics().tokens_issued.inc();
        }
        Ok((signed, claims))
    }

    /// Verifies `token`, which must be of type `expected`.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, SignalError> {
        let verified = self.verify_any(token).and_then(|claims| {
            if claims.token_type == expected {
                Ok(claims)
            } else {
                Err(unauthenticated(match expected {
                    TokenType::Access => "not an access token",
                    TokenType::Refresh => "not a refresh token",
                }))
            }
        });
        let metrics = switchboard_proto::metrics::metrics();
        let outcome = match &verified {
            Ok(_) => "valid",
            Err(err) => err.code.as_str(),
        };
        switchboard_proto::metrics::Metrics::count(
            &metrics.token_verifications,
            "outcome",
            outcome,
        );
        verified
    }

    /// Verifies signature, claims and revocation of a token of either type.
    pub fn verify_any(&self, token: &str) -> Result<Claims, SignalError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("malformed token"))?;
        let (alg, key, issuer) = match header.kid.as_deref() {
            Some(kid) => match (self.inner.verifiers.get(kid), self.inner.api_keys.get(kid)) {
                (Some(v), _) => (v.alg, &v.key, self.inner.issuer.as_str()),
                (None, Some(api)) => (Algorithm::HS256, &api.decoding, api.key.as_str()),
                (None, None) => return Err(unauthenticated("unknown signing key")),
            },
            None => {
                let iss = peek_issuer(token).ok_or_else(|| unauthenticated("malformed token"))?;
                let api = self
                    .inner
                    .api_keys
                    .get(&iss)
                    .ok_or_else(|| unauthenticated("unknown signing key"))?;
                (Algorithm::HS256, &api.decoding, api.key.as_str())
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    SignalError::new(ErrorCode::TokenExpired, "token expired")
                }
                ErrorKind::ImmatureSignature => unauthenticated("token not yet valid"),
                ErrorKind::InvalidSignature => unauthenticated("invalid token signature"),
                ErrorKind::InvalidAlgorithm => {
                    unauthenticated("algorithm not allowed for this key")
                }
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                    unauthenticated("token not issued for this service")
                }
                _ => unauthenticated("invalid token"),
            })?
            .claims;
        ParticipantId::new(&claims.sub).map_err(|e| unauthenticated(&format!("sub: {e}")))?;
        // Backends mint their own tokens; none may outlive the cap.
        if claims.exp.saturating_sub(claims.iat) > MAX_TTL.as_secs() + LEEWAY.as_secs() {
            return Err(unauthenticated("token lifetime exceeds 24 hours"));
        }
        if claims.iat > now_secs() + LEEWAY.as_secs() {
            return Err(unauthenticated("token issued in the future"));
        }
        // The chain's first issue time bounds the session (max_session) and
        // decides RevokeUser: one later than the token itself would extend
        // the session and escape the revocation.
        if claims.auth_time > claims.iat.saturating_add(LEEWAY.as_secs()) {
            return Err(unauthenticated("auth_time is later than iat"));
        }
        if self.inner.revocations.is_revoked(
            &[&claims.jti, claims.chain()],
            &claims.sub,
            claims.auth_time(),
        ) {
            return Err(SignalError::new(ErrorCode::TokenRevoked, "token revoked"));
        }
        Ok(claims)
    }

    /// A new token of `from`'s chain (same subject, grants, first-issue
    /// time and chain id) of type `token_type`, lasting `ttl` (`None`: to
    /// the end of the chain's maximum session) but never past that end.
    pub fn continue_chain(
        &self,
        from: &Claims,
        token_type: TokenType,
        ttl: Option<Duration>,
    ) -> Result<(String, Claims), SignalError> {
        let now = now_secs();
        // Backend tokens may not carry auth_time: their iat counts.
        let session_end = from
            .auth_time()
            .saturating_add(self.inner.max_session.as_secs());
        if session_end <= now + LEEWAY.as_secs() {
            return Err(SignalError::new(
                ErrorCode::TokenExpired,
                "maximum session lifetime reached",
            ));
        }
        let remaining = Duration::from_secs(session_end - now);
        self.issue(&TokenRequest {
            identity: from.sub.clone(),
            name: from.name.clone(),
            grants: from.grants.clone(),
            metadata: from.metadata.clone(),
            ttl: ttl.map_or(remaining, |ttl| ttl.min(remaining)),
            token_type,
            auth_time: from.auth_time(),
            chain: from.chain().to_owned(),
        })
    }
}
