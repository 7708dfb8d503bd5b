//! Rules of revocation and of the claims that decide it: a chain revocation
//! lasts as long as the chain can, whatever the caller says of the token's
//! expiry; a token cannot claim a first-issue time after its own issue
//! (which would stretch the session and dodge RevokeUser). Refusals are
//! checked by code *and* reason.

use std::time::Duration;

use switchboard_auth::now_secs;
use switchboard_proto::pb;
use switchboard_tests::Stack;

/// The stable code and the message of a refused call.
fn refusal(status: &tonic::Status) -> (Option<&str>, &str) {
    (
        status
            .metadata()
            .get("x-switchboard-error")
            .and_then(|v| v.to_str().ok()),
        status.message(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_revocation_outlives_the_root_token() {
    let stack = Stack::start().await;
    let mut auth = stack.auth_client().await;
    let (root, claims) = stack.issue(&Stack::request("alice", "r1"));
    let refreshed = auth
        .refresh_token(stack.with_api_credential(pb::RefreshTokenRequest { token: root }))
        .await
        .expect("refresh")
        .into_inner();
    // The caller says the root expired long ago (as it would have, hours
    // into a session): the chain's refreshed tokens still live.
    auth.revoke_token(stack.with_api_credential(pb::RevokeTokenRequest {
        token_id: claims.jti.clone(),
        expires_at: 1,
    }))
    .await
    .expect("revoke the chain");
    // Another revocation runs the purge of stale entries.
    auth.revoke_token(stack.with_api_credential(pb::RevokeTokenRequest {
        token_id: "someone-else".into(),
        expires_at: 1,
    }))
    .await
    .expect("revoke another");
    let status = auth
        .verify_token(pb::VerifyTokenRequest {
            token: refreshed.token,
        })
        .await
        .expect_err("the chain stays revoked");
    assert_eq!(refusal(&status), (Some("token_revoked"), "token revoked"));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_issue_time_after_the_issue_is_refused() {
    let stack = Stack::start().await;
    let mut auth = stack.auth_client().await;
    let mut request = Stack::request("alice", "r1");
    request.auth_time = now_secs() + 3600;
    let (token, _) = stack.issue(&request);
    let status = auth
        .verify_token(pb::VerifyTokenRequest {
            token: token.clone(),
        })
        .await
        .expect_err("auth_time in the future");
    assert_eq!(
        refusal(&status),
        (Some("unauthenticated"), "auth_time is later than iat")
    );
    // Nor can it be refreshed into a longer session.
    let status = auth
        .refresh_token(stack.with_api_credential(pb::RefreshTokenRequest { token }))
        .await
        .expect_err("no refresh either");
    assert_eq!(
        refusal(&status),
        (Some("unauthenticated"), "auth_time is later than iat")
    );
    // The far end of the range saturates instead of overflowing.
    let mut request = Stack::request("alice", "r1");
    request.auth_time = u64::MAX;
    let (token, _) = stack.issue(&request);
    let status = auth
        .refresh_token(pb::RefreshTokenRequest { token })
        .await
        .expect_err("refused, not a panic");
    assert_eq!(refusal(&status).0, Some("unauthenticated"));
    stack.shutdown().await;
}

/// Refreshing an access token turns a short-lived token into a session:
/// only a service (the edge, for its live sessions) may; the revocation
/// stream names every revoked token and user: services only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_of_access_tokens_and_the_revocation_stream_need_a_service_credential() {
    let stack = Stack::start().await;
    let mut auth = stack.auth_client().await;
    let (token, _) = stack.issue(&Stack::request("alice", "r1"));
    let status = auth
        .refresh_token(pb::RefreshTokenRequest {
            token: token.clone(),
        })
        .await
        .expect_err("an access token without a credential");
    assert_eq!(
        refusal(&status),
        (
            Some("unauthenticated"),
            "refreshing an access token needs a service credential"
        )
    );
    auth.refresh_token(stack.with_api_credential(pb::RefreshTokenRequest { token }))
        .await
        .expect("a service may");
    let status = auth
        .watch_revocations(pb::WatchRevocationsRequest {})
        .await
        .expect_err("anonymous watcher");
    assert_eq!(
        refusal(&status),
        (
            Some("unauthenticated"),
            "API credential required (x-api-key, x-api-secret)"
        )
    );
    auth.watch_revocations(stack.with_api_credential(pb::WatchRevocationsRequest {}))
        .await
        .expect("a service may watch");
    stack.shutdown().await;
}

/// A revocation made while the edge was cut off from auth still closes the
/// session once the edge is back: every (re)connected revocation stream
/// starts with what is revoked at that moment. Here auth is restarted
/// (revocations shared through a Redis of the test's own) and the user is
/// revoked on another auth replica while no auth serves the edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_while_the_edge_was_away_closes_the_session_when_it_is_back() {
    use switchboard_auth::{Jwk, KeyAlg};
    use switchboard_proto::wire::Format;
    use switchboard_tests::{
        DEADLINE, WsClient,
        auth_server::{AuthServer, free_addr},
        http,
        redis_server::RedisServer,
        wait_until,
    };
    let redis = RedisServer::start(false).await;
    let key = Jwk::generate(KeyAlg::EdDsa, "k1").expect("key");
    let addr = free_addr();
    let first = AuthServer::start(addr, key.clone(), Some(redis.url())).await;
    let stack = Stack::start_with(|config| {
        config.keyring.signing_key = key.clone();
        config.edge.auth_url = format!("http://{addr}");
    })
    .await;
    let ready = |expected: u16| {
        let url = stack.edge_url.clone();
        move || {
            let url = url.clone();
            async move { http::request(&url, "GET", "/health/ready", "").await.0 == expected }
        }
    };
    wait_until("edge follows the first auth", DEADLINE, ready(200)).await;
    let mut alice = WsClient::connect(&stack.ws_url(), Format::Json).await;
    alice.join(&stack.token("alice", "r1")).await;

    first.stop().await;
    wait_until("edge notices auth is gone", DEADLINE, ready(503)).await;
    // Revoked through another replica while no auth serves the edge.
    let other = AuthServer::start(free_addr(), key.clone(), Some(redis.url())).await;
    let channel = tonic::transport::Endpoint::from_shared(other.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    pb::auth_client::AuthClient::new(channel)
        .revoke_user(stack.with_api_credential(pb::RevokeUserRequest {
            subject: "alice".into(),
        }))
        .await
        .expect("revoke");
    let back = tokio::time::Instant::now();
    let _second = AuthServer::start(addr, key, Some(redis.url())).await;
    let closed = alice.closed().await;
    let took = back.elapsed();
    assert_eq!(closed.code, 4401, "{closed:?}");
    assert!(closed.reason.starts_with("token_revoked"), "{closed:?}");
    eprintln!("revocation applied {took:?} after auth came back");
    assert!(took < Duration::from_secs(7), "closed after {took:?}");
    other.stop().await;
    stack.shutdown().await;
}

/// Refresh tokens are single-use: each exchange returns the next one, and
/// presenting a spent one (two holders, one of them a thief) revokes the
/// whole chain. IssueToken names the chain, so a backend can revoke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_revokes_its_chain() {
    let stack = Stack::start().await;
    let mut auth = stack.auth_client().await;
    let issued = auth
        .issue_token(stack.with_api_credential(pb::IssueTokenRequest {
            identity: "alice".into(),
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
    let chain = auth
        .verify_token(pb::VerifyTokenRequest {
            token: issued.token.clone(),
        })
        .await
        .expect("verify")
        .into_inner()
        .claims
        .expect("claims")
        .chain;
    assert_eq!(issued.chain_id, chain, "IssueToken names the chain");

    let first = auth
        .refresh_token(pb::RefreshTokenRequest {
            token: issued.refresh_token.clone(),
        })
        .await
        .expect("first exchange")
        .into_inner();
    assert!(!first.refresh_token.is_empty(), "rotated");
    assert!(first.refresh_expires_at > 0);
    // The thief (or the owner) presents the spent one again.
    let status = auth
        .refresh_token(pb::RefreshTokenRequest {
            token: issued.refresh_token,
        })
        .await
        .expect_err("spent");
    assert_eq!(
        refusal(&status),
        (
            Some("token_revoked"),
            "refresh token reused: the session is revoked"
        )
    );
    // Everything of the chain is out: the access token from the first
    // exchange and the rotated refresh token.
    let status = auth
        .verify_token(pb::VerifyTokenRequest { token: first.token })
        .await
        .expect_err("chain revoked");
    assert_eq!(refusal(&status), (Some("token_revoked"), "token revoked"));
    let status = auth
        .refresh_token(pb::RefreshTokenRequest {
            token: first.refresh_token,
        })
        .await
        .expect_err("chain revoked");
    assert_eq!(refusal(&status), (Some("token_revoked"), "token revoked"));
    stack.shutdown().await;
}

/// With the revocation store down, a revocation still holds on the replica
/// that took it, and the caller is told exactly that (not a bare failure
/// that reads as "nothing happened").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_the_store_cannot_share_is_reported_as_local_only() {
    use switchboard_tests::redis_server::RedisServer;
    let mut redis = RedisServer::start(false).await;
    let url = redis.url();
    let stack = Stack::start_with(|config| config.auth_redis = Some(url)).await;
    let mut auth = stack.auth_client().await;
    let token = stack.token("alice", "r1");
    redis.kill9().await;
    let status = auth
        .revoke_user(stack.with_api_credential(pb::RevokeUserRequest {
            subject: "alice".into(),
        }))
        .await
        .expect_err("the store is down");
    assert_eq!(
        refusal(&status),
        (
            Some("unavailable"),
            "revoked on this auth replica only: the revocation store is unavailable; retry"
        )
    );
    let status = auth
        .verify_token(pb::VerifyTokenRequest { token })
        .await
        .expect_err("revoked here");
    assert_eq!(refusal(&status), (Some("token_revoked"), "token revoked"));
    stack.shutdown().await;
}
