//! Signing keys as JWKs (RFC 7517/8037): generation, loading, and the public
//! halves published as a JWKS document. Each key has one algorithm; a token
//! is verified with the algorithm of the key its `kid` names, never with the
//! one its header claims.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use p256::pkcs8::EncodePrivateKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported key: {0}")]
    Unsupported(String),
    #[error("malformed key: {0}")]
    Malformed(String),
}

/// Asymmetric algorithms a key may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    EdDsa,
    Es256,
}

impl KeyAlg {
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        match raw.to_ascii_lowercase().as_str() {
            "eddsa" | "ed25519" => Ok(Self::EdDsa),
            "es256" | "p-256" => Ok(Self::Es256),
            other => Err(KeyError::Unsupported(format!(
                "algorithm {other} (use EdDSA or ES256)"
            ))),
        }
    }

    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

/// A JWK as stored in a key file. With `d` it is a private key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use", default = "sig")]
    pub use_: String,
    pub x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
}

fn sig() -> String {
    "sig".into()
}

/// Ed25519 PKCS#8 v1 DER is this prefix followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn decode32(field: &str, value: &str) -> Result<[u8; 32], KeyError> {
    let bytes = B64
        .decode(value)
        .map_err(|e| KeyError::Malformed(format!("{field}: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| KeyError::Malformed(format!("{field}: expected 32 bytes")))
}

impl Jwk {
    /// A new private key with a random `kid` prefix-less id when `kid` is
    /// empty.
    pub fn generate(alg: KeyAlg, kid: &str) -> Result<Self, KeyError> {
        let kid = if kid.is_empty() {
            let mut id = [0u8; 8];
            rand::rng().fill_bytes(&mut id);
            hex::encode(id)
        } else {
            kid.to_owned()
        };
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        match alg {
            KeyAlg::EdDsa => {
                let public = ed25519_dalek::SigningKey::from_bytes(&secret)
                    .verifying_key()
                    .to_bytes();
                Ok(Self {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    kid,
                    alg: "EdDSA".into(),
                    use_: sig(),
                    x: B64.encode(public),
                    y: None,
                    d: Some(B64.encode(secret)),
                })
            }
            KeyAlg::Es256 => {
                let key = p256::SecretKey::from_slice(&secret)
                    .map_err(|e| KeyError::Malformed(format!("p-256 scalar: {e}")))?;
                let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &key.public_key(),
                    false,
                );
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(KeyError::Malformed("p-256 point".into()));
                };
                Ok(Self {
                    kty: "EC".into(),
                    crv: "P-256".into(),
                    kid,
                    alg: "ES256".into(),
                    use_: sig(),
                    x: B64.encode(x),
                    y: Some(B64.encode(y)),
                    d: Some(B64.encode(secret)),
                })
            }
        }
    }

    pub fn key_alg(&self) -> Result<KeyAlg, KeyError> {
        match (self.kty.as_str(), self.crv.as_str(), self.alg.as_str()) {
            ("OKP", "Ed25519", "EdDSA") => Ok(KeyAlg::EdDsa),
            ("EC", "P-256", "ES256") => Ok(KeyAlg::Es256),
            (kty, crv, alg) => Err(KeyError::Unsupported(format!(
                "kty {kty}, crv {crv}, alg {alg}"
            ))),
        }
    }

    /// The public half (no `d`), as published in the JWKS.
    pub fn public(&self) -> Self {
        Self {
            d: None,
            ..self.clone()
        }
    }

    pub fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        let malformed = |e: jsonwebtoken::errors::Error| KeyError::Malformed(e.to_string());
        match self.key_alg()? {
            KeyAlg::EdDsa => {
                decode32("x", &self.x)?;
                DecodingKey::from_ed_components(&self.x).map_err(malformed)
            }
            KeyAlg::Es256 => {
                let y = self
                    .y
                    .as_deref()
                    .ok_or_else(|| KeyError::Malformed("missing y".into()))?;
                DecodingKey::from_ec_components(&self.x, y).map_err(malformed)
            }
        }
    }

    /// The signing key; fails for a public-only JWK.
    pub fn encoding_key(&self) -> Result<EncodingKey, KeyError> {
        let d = self
            .d
            .as_deref()
            .ok_or_else(|| KeyError::Malformed("not a private key (no d)".into()))?;
        let secret = decode32("d", d)?;
        match self.key_alg()? {
            KeyAlg::EdDsa => {
                let mut der = ED25519_PKCS8_PREFIX.to_vec();
                der.extend_from_slice(&secret);
                Ok(EncodingKey::from_ed_der(&der))
            }
            KeyAlg::Es256 => {
                let key = p256::SecretKey::from_slice(&secret)
                    .map_err(|e| KeyError::Malformed(format!("d: {e}")))?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| KeyError::Malformed(format!("pkcs8: {e}")))?;
                Ok(EncodingKey::from_ec_der(der.as_bytes()))
            }
        }
    }
}

/// A JWKS document of the given public keys.
pub fn jwks_json<'a>(keys: impl Iterator<Item = &'a Jwk>) -> String {
    let keys: Vec<Jwk> = keys.map(Jwk::public).collect();
    serde_json::json!({ "keys": keys }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify() {
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256] {
            let jwk = Jwk::generate(alg, "k1").expect("generate");
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(alg.algorithm()),
                &serde_json::json!({"sub": "a", "exp": u64::MAX / 2}),
                &jwk.encoding_key().expect("private"),
            )
            .expect("sign");
            let mut validation = jsonwebtoken::Validation::new(alg.algorithm());
            validation.required_spec_claims.clear();
            let key = jwk.public().decoding_key().expect("public");
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).expect("verify");
            assert!(
                jwk.public().encoding_key().is_err(),
                "public JWKs cannot sign"
            );
            let json = jwks_json([&jwk].into_iter());
            assert!(
                !json.contains("\"d\""),
                "JWKS must not leak private keys: {json}"
            );
        }
    }
}
