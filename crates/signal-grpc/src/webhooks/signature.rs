//! The signature of a webhook: HMAC-SHA256, keyed with the API secret,
//! over `<unix seconds>.<raw body>`, sent as
//! `Switchboard-Signature: t=<unix seconds>,v1=<hex digest>` next to
//! `Switchboard-Key: <API key id>`. The timestamp is signed with the body,
//! so a receiver that refuses old timestamps (docs/api.md: 5 minutes)
//! refuses replays; the hex digest is compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "switchboard-signature";
/// The header naming the API key whose secret signed.
pub const KEY_HEADER: &str = "switchboard-key";
/// How old a signature a receiver should accept, in seconds (docs).
pub const TOLERANCE_SECS: u64 = 300;

fn digest(secret: &[u8], timestamp: u64, body: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `Switchboard-Signature` value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(digest(secret, timestamp, body))
    )
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("malformed signature header")]
    Malformed,
    #[error("signature older than {TOLERANCE_SECS} s (or from the future)")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// What a receiver does (the Rust version of docs/api.md's snippets):
/// checks `header` against `body` at `now`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64) -> Result<(), Refused> {
    let mut timestamp = None;
    let mut given = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => given = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(given)) = (timestamp, given) else {
        return Err(Refused::Malformed);
    };
    if now.abs_diff(timestamp) > TOLERANCE_SECS {
        return Err(Refused::Stale);
    }
    let expected = digest(secret, timestamp, body);
    if expected.as_slice().ct_eq(&given).into() {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_is_refused() {
        let secret = b"a-secret-of-at-least-thirty-two-bytes!!";
        let body = br#"{"id":"1-0","event":{}}"#;
        let header = sign(secret, 1_800_000_000, body);
        assert!(header.starts_with("t=1800000000,v1="), "{header}");
        assert_eq!(verify(secret, &header, body, 1_800_000_010), Ok(()));
        assert_eq!(
            verify(secret, &header, b"{\"id\":\"2-0\"}", 1_800_000_010),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(b"another secret", &header, body, 1_800_000_010),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(secret, &header, body, 1_800_000_000 + TOLERANCE_SECS + 1),
            Err(Refused::Stale)
        );
        // Re-signing an old body with a new timestamp needs the secret.
        let replayed = header.replace("t=1800000000", "t=1800000400");
        assert_eq!(
            verify(secret, &replayed, body, 1_800_000_400),
            Err(Refused::Mismatch)
        );
        assert_eq!(verify(secret, "v1=00", body, 0), Err(Refused::Malformed));
    }

    /// The digest is HMAC-SHA256 over `<t>.<body>` (the value from
    /// Python's `hmac.new(b"Jefe", b"1800000000.what do ya want for
    /// nothing?", hashlib.sha256)`, as a receiver would compute it).
    #[test]
    fn the_mac_is_hmac_sha256_over_timestamp_dot_body() {
        assert_eq!(
            sign(b"Jefe", 1_800_000_000, b"what do ya want for nothing?"),
            "t=1800000000,v1=ab5a2e6f7ddd4f6783bae7a65618acf1b188b4ca973bbebbbdeb60024ee0f3f3"
        );
    }
}
