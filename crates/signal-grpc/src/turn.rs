//! Ephemeral TURN credentials in the TURN REST scheme that coturn's
//! `use-auth-secret` accepts: username `<expiry unix seconds>:<participant>`,
//! credential `base64(HMAC-SHA1(secret, username))`. They expire with the
//! token the session holds, and are renewed when it is refreshed.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use switchboard_proto::pb;

/// A TURN deployment sharing a secret with Switchboard.
#[derive(Clone, Default)]
pub struct TurnConfig {
    pub secret: Vec<u8>,
    /// `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl TurnConfig {
    /// Credentials for `participant`, valid until `expires_at`.
    pub fn ice_server(&self, participant: &str, expires_at: u64) -> pb::IceServer {
        let username = format!("{expires_at}:{participant}");
        // HMAC accepts keys of any length.
        let mut mac =
            Hmac::<Sha1>::new_from_slice(&self.secret).expect("hmac takes any key length");
        mac.update(username.as_bytes());
        let credential = STANDARD.encode(mac.finalize().into_bytes());
        pb::IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_vector() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        let turn = TurnConfig {
            secret: b"Jefe".to_vec(),
            urls: vec!["turn:t.example.com".into()],
        };
        let mut mac = Hmac::<Sha1>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex_of(&mac.finalize().into_bytes()),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        let server = turn.ice_server("alice", 1_700_000_000);
        assert_eq!(server.username, "1700000000:alice");
        assert_eq!(server.urls, ["turn:t.example.com"]);
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
