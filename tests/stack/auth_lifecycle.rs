//! Tokens over a session's life: refresh pushed before expiry, the maximum
//! session lifetime, revocation closing live sessions, key rotation, the
//! API credential, and TURN credentials.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Header};
use sha1::{Digest, Sha1};
use switchboard_auth::{Jwk, KeyAlg, now_secs};
use switchboard_proto::{
    pb::{self, server_message::Message as Out},
    wire::Format,
};
use switchboard_signal::TurnConfig;
use switchboard_tests::{Stack, WsClient, wait_until};

/// HMAC-SHA1 (RFC 2104) written out here, independent of the `hmac` crate
/// the server uses.
fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let inner = Sha1::digest(&inner);
    let outer: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(inner.iter().copied())
        .collect();
    Sha1::digest(&outer).to_vec()
}

fn check_turn(server: &pb::IceServer, participant: &str, expires_at: u64) {
    use base64::Engine;
    assert_eq!(server.urls, ["turn:turn.example.com:3478"]);
    assert_eq!(server.username, format!("{expires_at}:{participant}"));
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(b"turn-shared-secret", server.username.as_bytes()));
    assert_eq!(
        server.credential, expected,
        "coturn use-auth-secret credential"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_is_pushed_before_expiry_and_works_after_the_original_expired() {
    let stack = Stack::start_with(|config| {
        config.signal.join.turn = Some(TurnConfig {
            secret: b"turn-shared-secret".to_vec(),
            urls: vec!["turn:turn.example.com:3478".into()],
        });
    })
    .await;
    let mut request = Stack::request("alice", "r1");
    request.ttl = Duration::from_secs(3);
    let (original, claims) = stack.issue(&request);
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = alice.join(&original).await;
    // TURN credentials valid exactly as long as the token.
    check_turn(&joined.ice_servers[0], "alice", claims.exp);

    let refreshed = alice
        .recv_until(|m| {
            if let Out::TokenRefreshed(t) = m {
                Some(t.clone())
            } else {
                None
            }
        })
        .await;
    assert!(
        now_secs() <= claims.exp,
        "refresh must arrive before the original expires"
    );
    assert!(refreshed.expires_at > claims.exp);
    assert_ne!(refreshed.token, original);
    check_turn(&refreshed.ice_servers[0], "alice", refreshed.expires_at);

    // Once the original is past exp (+ leeway) it is refused; the refreshed
    // one joins.
    let mut auth = stack.auth_client().await;
    wait_until(
        "the original token to expire",
        Duration::from_secs(15),
        || {
            let mut auth = auth.clone();
            let token = original.clone();
            async move {
                auth.verify_token(pb::VerifyTokenRequest { token })
                    .await
                    .is_err_and(|s| {
                        s.metadata()
                            .get("x-switchboard-error")
                            .is_some_and(|v| v == "token_expired")
                    })
            }
        },
    )
    .await;
    let fresh = auth
        .verify_token(pb::VerifyTokenRequest {
            token: refreshed.token.clone(),
        })
        .await;
    assert!(fresh.is_ok(), "refreshed token verifies");
    let mut again = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let rejoined = again.join(&refreshed.token).await;
    assert_eq!(rejoined.self_.expect("self").id, "alice");

    // Revoking the original token's id revokes the tokens refreshed from it.
    auth.revoke_token(stack.with_api_credential(pb::RevokeTokenRequest {
        token_id: claims.jti.clone(),
        expires_at: claims.exp,
    }))
    .await
    .expect("revoke");
    let status = auth
        .verify_token(pb::VerifyTokenRequest {
            token: refreshed.token.clone(),
        })
        .await;
    let status = status.expect_err("revoked chain");
    assert_eq!(
        status
            .metadata()
            .get("x-switchboard-error")
            .map(|v| v.to_str().ok()),
        Some(Some("token_revoked"))
    );
    assert_eq!(
        again.closed().await.code,
        4401,
        "the live session holding the refreshed token closes"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_expiry_once_its_maximum_lifetime_is_reached() {
    let stack =
        Stack::start_with(|config| config.keyring.max_session = Duration::from_secs(3)).await;
    let mut request = Stack::request("brief", "r1");
    request.ttl = Duration::from_secs(2);
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    client.join(&stack.issue(&request).0).await;
    let closed = client.closed().await;
    assert_eq!(closed.code, 4401, "{closed:?}");
    assert!(closed.reason.starts_with("token_expired"), "{closed:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_closes_live_sessions_within_a_second() {
    let stack = Stack::start().await;
    let mut auth = stack.auth_client().await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let alice_token = stack.token("alice", "r1");
    alice.join(&alice_token).await;
    let (bob_token, bob_claims) = stack.issue(&Stack::request("bob", "r1"));
    let mut bob = WsClient::connect(&stack.ws_url(), Format::Json).await;
    bob.join(&bob_token).await;

    // Revocation needs the API credential.
    let denied = auth
        .revoke_user(pb::RevokeUserRequest {
            subject: "alice".into(),
        })
        .await;
    assert_eq!(
        denied.expect_err("no credential").code(),
        tonic::Code::Unauthenticated
    );

    let started = Instant::now();
    auth.revoke_user(stack.with_api_credential(pb::RevokeUserRequest {
        subject: "alice".into(),
    }))
    .await
    .expect("revoke user");
    let closed = alice.closed().await;
    let took = started.elapsed();
    // The room hears at once: a revoked session does not wait for a resume.
    let left = bob.next_left().await;
    assert_eq!(
        (left.participant_id.as_str(), left.reason().as_str_name()),
        ("alice", "revoked")
    );
    assert_eq!(
        (closed.code, closed.reason.starts_with("token_revoked")),
        (4401, true),
        "{closed:?}"
    );
    assert!(took < Duration::from_secs(1), "closed after {took:?}");

    let started = Instant::now();
    auth.revoke_token(stack.with_api_credential(pb::RevokeTokenRequest {
        token_id: bob_claims.jti.clone(),
        expires_at: bob_claims.exp,
    }))
    .await
    .expect("revoke token");
    let closed = bob.closed().await;
    assert_eq!(closed.code, 4401, "{closed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closed after {:?}",
        started.elapsed()
    );

    // Both tokens are refused from then on, before any room operation.
    for token in [alice_token, bob_token] {
        let mut retry = WsClient::connect(&stack.ws_url(), Format::Json).await;
        retry
            .send(pb::client_message::Message::Join(Box::new(pb::Join {
                token,
                ..Default::default()
            })))
            .await;
        let err = retry.next_error().await.code().as_str_name();
        assert_eq!(err, "token_revoked");
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_verify_until_removed_and_new_tokens_use_the_new_key() {
    let old = Jwk::generate(KeyAlg::Es256, "old").expect("key");
    let old_public = old.public();
    let stack = Stack::start_with(|config| {
        config.keyring.signing_key = Jwk::generate(KeyAlg::EdDsa, "new").expect("key");
        config.keyring.verification_keys = vec![old_public];
        config.auth_dev = false;
    })
    .await;
    let claims = stack.claims("old-holder", "r1");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("old".into());
    let old_token =
        jsonwebtoken::encode(&header, &claims, &old.encoding_key().expect("key")).expect("sign");
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    assert_eq!(
        client.join(&old_token).await.self_.expect("self").id,
        "old-holder"
    );

    // IssueToken needs the API credential outside dev mode, and signs with
    // the new key.
    let mut auth = stack.auth_client().await;
    let issue = pb::IssueTokenRequest {
        identity: "fresh".into(),
        grants: Some(pb::Grants {
            room: "r1".into(),
            publish: true,
            ..Default::default()
        }),
        with_refresh_token: true,
        ..Default::default()
    };
    let denied = auth
        .issue_token(issue.clone())
        .await
        .expect_err("no credential");
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let issued = auth
        .issue_token(stack.with_api_credential(issue))
        .await
        .expect("issue")
        .into_inner();
    let header = jsonwebtoken::decode_header(&issued.token).expect("header");
    assert_eq!(
        (header.kid.as_deref(), header.alg),
        (Some("new"), Algorithm::EdDSA)
    );
    assert!(issued.refresh_expires_at > issued.expires_at);
    // The JWKS lists both keys while both verify.
    let jwks = auth
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("jwks")
        .into_inner()
        .json;
    assert!(
        jwks.contains("\"old\"") && jwks.contains("\"new\""),
        "{jwks}"
    );
    stack.shutdown().await;

    // After the old key is removed, its tokens are refused.
    let stack = Stack::start_with(|config| {
        config.keyring.signing_key = Jwk::generate(KeyAlg::EdDsa, "new").expect("key")
    })
    .await;
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    client
        .send(pb::client_message::Message::Join(Box::new(pb::Join {
            token: old_token,
            ..Default::default()
        })))
        .await;
    let err = client.next_error().await;
    assert_eq!(err.code().as_str_name(), "unauthenticated");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_exchange_for_access_tokens() {
    let stack = Stack::start().await;
    let mut auth = stack.auth_client().await;
    let issued = auth
        .issue_token(stack.with_api_credential(pb::IssueTokenRequest {
            identity: "carol".into(),
            grants: Some(pb::Grants {
                room: "r1".into(),
                ..Default::default()
            }),
            with_refresh_token: true,
            ..Default::default()
        }))
        .await
        .expect("issue")
        .into_inner();
    let access = auth
        .refresh_token(pb::RefreshTokenRequest {
            token: issued.refresh_token,
        })
        .await
        .expect("refresh")
        .into_inner();
    let claims = auth
        .verify_token(pb::VerifyTokenRequest {
            token: access.token,
        })
        .await
        .expect("verify");
    let claims = claims.into_inner().claims.expect("claims");
    assert_eq!(
        (
            claims.subject.as_str(),
            claims.grants.expect("grants").room.as_str()
        ),
        ("carol", "r1")
    );
    stack.shutdown().await;
}
