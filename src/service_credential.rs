//! The credential one service presents to another: an API key pair in gRPC
//! metadata (`x-api-key`, `x-api-secret`). The edge presents one to auth
//! (revocation stream, refresh) and to signal (every Relay lane); auth and
//! signal accept the API keys they are configured with. Secrets are
//! compared in constant time and never printed.

use std::{fmt, str::FromStr, sync::Arc};

use subtle::ConstantTimeEq;
use tonic::{Request, Status, metadata::MetadataValue, service::Interceptor};

use crate::{ErrorCode, SignalError};

/// Metadata carrying the key id.
pub const KEY_METADATA: &str = "x-api-key";
/// Metadata carrying the secret.
pub const SECRET_METADATA: &str = "x-api-secret";

/// A key id and its secret (`KEY:SECRET` on the command line).
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceCredential {
    pub key: String,
    secret: String,
}

impl fmt::Debug for ServiceCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCredential")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ServiceCredential {
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            secret: secret.into(),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Adds this credential to a request's metadata.
    pub fn attach<T>(&self, request: &mut Request<T>) {
        if let (Ok(key), Ok(secret)) = (
            MetadataValue::try_from(self.key.as_str()),
            MetadataValue::try_from(self.secret.as_str()),
        ) {
            request.metadata_mut().insert(KEY_METADATA, key);
            request.metadata_mut().insert(SECRET_METADATA, secret);
        }
    }
}

/// The shortest secret accepted from configuration (as auth's API keys):
/// 32 bytes, what a random secret needs to be out of guessing's reach.
pub const MIN_SECRET_BYTES: usize = 32;

/// Checks a configured secret's length (`what` names it in the error).
pub fn long_enough(what: &str, secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "{what} is {} bytes; at least {MIN_SECRET_BYTES} are needed (e.g. `openssl rand -hex 32`)",
            secret.len()
        ));
    }
    Ok(())
}

impl FromStr for ServiceCredential {
    type Err = String;

    /// `KEY:SECRET`, the secret at least [`MIN_SECRET_BYTES`] long.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((key, secret)) if !key.is_empty() && !secret.is_empty() => {
                long_enough("the API secret", secret)?;
                Ok(Self::new(key, secret))
            }
            _ => Err("expected KEY:SECRET".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_secret_must_be_long() {
        assert!("edge:short".parse::<ServiceCredential>().is_err());
        assert!(
            format!("edge:{}", "s".repeat(31))
                .parse::<ServiceCredential>()
                .is_err()
        );
        let ok = format!("edge:{}", "s".repeat(32)).parse::<ServiceCredential>();
        assert_eq!(ok.map(|c| c.key), Ok("edge".to_owned()));
        assert!(":x".parse::<ServiceCredential>().is_err());
    }
}

/// Attaches a credential (if any) to every call of a client.
#[derive(Debug, Clone, Default)]
pub struct Attach(pub Option<ServiceCredential>);

impl Interceptor for Attach {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(credential) = &self.0 {
            credential.attach(&mut request);
        }
        Ok(request)
    }
}

/// The credentials a server accepts; as an interceptor it refuses every
/// call without one of them (`unauthenticated`).
#[derive(Debug, Clone, Default)]
pub struct Accept(Arc<Vec<ServiceCredential>>);

impl Accept {
    pub fn new(credentials: Vec<ServiceCredential>) -> Self {
        Self(Arc::new(credentials))
    }

    /// The key id of the credential `request` carries, if it is accepted.
    pub fn check<T>(&self, request: &Request<T>) -> Result<String, SignalError> {
        let value = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok());
        let (Some(key), Some(secret)) = (value(KEY_METADATA), value(SECRET_METADATA)) else {
            return Err(SignalError::new(
                ErrorCode::Unauthenticated,
                "service credential required (x-api-key, x-api-secret)",
            ));
        };
        self.0
            .iter()
            .find(|c| c.key == key && bool::from(c.secret.as_bytes().ct_eq(secret.as_bytes())))
            .map(|c| c.key.clone())
            .ok_or_else(|| {
                SignalError::new(ErrorCode::Unauthenticated, "invalid service credential")
            })
    }
}

impl Interceptor for Accept {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}
