//! Building the auth keyring from files and flags, and `switchboard keys`.

use std::{path::Path, time::Duration};

use switchboard_auth::{ApiKey, Jwk, KeyAlg, Keyring, KeyringConfig};

use crate::{
    cli::{KeyArgs, KeysCommand, TokenPolicyArgs},
    services::BoxError,
};

/// Reads a JWK file.
pub fn read_jwk(path: &Path) -> Result<Jwk, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("key {} is not a JWK: {e}", path.display()).into())
}

/// The keyring the flags describe. Without a signing key, `dev` generates an
/// ephemeral one (and says so loudly); otherwise it is an error.
pub fn keyring(keys: &KeyArgs, policy: &TokenPolicyArgs, dev: bool) -> Result<Keyring, BoxError> {
    let signing_key = match &keys.signing_key {
        Some(path) => read_jwk(path)?,
        None if dev => {
            let jwk = Jwk::generate(KeyAlg::EdDsa, "")?;
            tracing::warn!(
                kid = %jwk.kid,
                "DEV MODE: no --signing-key given; signing with an ephemeral Ed25519 key. \
                 Tokens die with this process. Never run like this in production."
            );
            jwk
        }
        None => {
            return Err(
                "--signing-key (SWITCHBOARD_SIGNING_KEY) is required outside dev mode".into(),
            );
        }
    };
    let verification_keys = keys
        .verification_keys
        .iter()
        .map(|p| read_jwk(p))
        .collect::<Result<_, _>>()?;
    let api_keys = keys
        .api_keys
        .iter()
        .map(|pair| ApiKey::parse(pair))
        .collect::<Result<_, _>>()?;
    let keyring = Keyring::new(KeyringConfig {
        signing_key,
        verification_keys,
        api_keys,
        issuer: keys.issuer.clone(),
        audience: keys.audience.clone(),
        max_session: Duration::from_secs(policy.max_session),
    })?;
    Ok(keyring)
}

pub fn run(command: KeysCommand) -> Result<(), BoxError> {
    match command {
        KeysCommand::Generate { alg, kid } => {
            let jwk = Jwk::generate(KeyAlg::parse(&alg)?, &kid)?;
            println!("{}", serde_json::to_string_pretty(&jwk)?);
        }
    }
    Ok(())
}
