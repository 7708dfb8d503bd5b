//! Token parsing and verification: any string against a real keyring (an
//! Ed25519 and a P-256 key, and an HS256 API key), as auth verifies access
//! and refresh tokens.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchboard_auth::{ApiKey, Jwk, KeyAlg, Keyring, KeyringConfig, TokenType};

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        Keyring::new(KeyringConfig {
            signing_key: Jwk::generate(KeyAlg::EdDsa, "ed").expect("key"),
            verification_keys: vec![Jwk::generate(KeyAlg::Es256, "es").expect("key")],
            api_keys: vec![ApiKey::new("fuzz", "fuzz-secret-0123456789-abcdefghijklmnop").expect("api key")],
            issuer: "switchboard".into(),
            audience: "switchboard".into(),
            max_session: std::time::Duration::from_secs(3600),
        })
        .expect("keyring")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keyring = keyring();
    // Nothing made up verifies (no valid signature can be guessed).
    assert!(keyring.verify(token, TokenType::Access).is_err());
    let _ = keyring.verify(token, TokenType::Refresh);
    let _ = keyring.verify_any(token);
});
