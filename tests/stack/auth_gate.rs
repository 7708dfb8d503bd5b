//! Nothing reaches a room without a valid token and an allowed Origin; each
//! bad token is refused before any room operation, with its error code.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use switchboard_auth::{Jwk, KeyAlg, TokenType, now_secs};
use switchboard_proto::{
    pb::{self, client_message::Message as In, server_message::Message as Out},
    wire::Format,
};
use switchboard_tests::{Stack, WsClient, description, http};

/// Sends Join (with `room` if not empty) and expects an error with the
/// `expected` code and message (the reason, not only the code: a token
/// refused for another reason fails) followed by a close with
/// `close_code`; then checks the room never heard of it.
async fn refused_in(
    stack: &Stack,
    watcher: &mut WsClient,
    token: &str,
    room: &str,
    expected: (&str, &str),
    close_code: u16,
) {
    let (code, message) = expected;
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let join = pb::Join {
        token: token.into(),
        room: room.into(),
        ..Default::default()
    };
    let id = client.send(In::Join(Box::new(join))).await;
    let first = client.recv().await;
    match first.message {
        Some(Out::Error(e)) => {
            assert_eq!(
                (e.code().as_str_name(), e.message.as_str(), e.request_id),
                (code, message, id),
                "{e:?}"
            );
            assert!(
                token.is_empty() || !e.message.contains(token),
                "error must not echo the token"
            );
        }
        other => panic!("expected {code} error, got {other:?}"),
    }
    assert_eq!(first.seq, 0, "no session was created");
    let closed = client.closed().await;
    assert_eq!(closed.code, close_code, "{closed:?}");
    assert!(closed.reason.starts_with(code), "{closed:?}");
    let seen = watcher.barrier().await;
    assert!(
        seen.is_empty(),
        "the room saw something of a refused join: {seen:?}"
    );
}

async fn refused(stack: &Stack, watcher: &mut WsClient, token: &str, expected: (&str, &str)) {
    refused_in(stack, watcher, token, "", expected, 4401).await;
}

async fn watcher(stack: &Stack) -> WsClient {
    let mut watcher = WsClient::connect(&stack.ws_url(), Format::Json).await;
    watcher.join(&stack.token("watcher", "r1")).await;
    watcher
}

/// Signs arbitrary JSON claims with `key` under `header`.
fn sign_json(header: &Header, claims: &serde_json::Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("sign")
}

fn service_header(stack: &Stack) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(stack.signing_key.kid.clone());
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forged_and_expired_tokens_are_refused() {
    let stack = Stack::start().await;
    let mut watcher = watcher(&stack).await;
    refused(
        &stack,
        &mut watcher,
        "",
        ("unauthenticated", "missing token"),
    )
    .await;
    refused(
        &stack,
        &mut watcher,
        "not.a.jwt",
        ("unauthenticated", "malformed token"),
    )
    .await;

    let mut expired = stack.claims("late", "r1");
    (expired.iat, expired.nbf, expired.exp) =
        (now_secs() - 3600, now_secs() - 3600, now_secs() - 60);
    refused(
        &stack,
        &mut watcher,
        &stack.keys.sign(&expired).expect("sign"),
        ("token_expired", "token expired"),
    )
    .await;

    let mut early = stack.claims("early", "r1");
    early.nbf = now_secs() + 3600;
    refused(
        &stack,
        &mut watcher,
        &stack.keys.sign(&early).expect("sign"),
        ("unauthenticated", "token not yet valid"),
    )
    .await;

    let mut wrong_aud = stack.claims("aud", "r1");
    wrong_aud.aud = "someone-else".into();
    refused(
        &stack,
        &mut watcher,
        &stack.keys.sign(&wrong_aud).expect("sign"),
        ("unauthenticated", "token not issued for this service"),
    )
    .await;

    let mut wrong_iss = stack.claims("iss", "r1");
    wrong_iss.iss = "someone-else".into();
    refused(
        &stack,
        &mut watcher,
        &stack.keys.sign(&wrong_iss).expect("sign"),
        ("unauthenticated", "token not issued for this service"),
    )
    .await;

    // `exp` as a string (jsonwebtoken < 10.3 skipped checking it).
    let mut as_string = serde_json::to_value(stack.claims("str", "r1")).expect("json");
    as_string["exp"] = serde_json::json!((now_secs() + 600).to_string());
    let key = stack.signing_key.encoding_key().expect("key");
    refused(
        &stack,
        &mut watcher,
        &sign_json(&service_header(&stack), &as_string, &key),
        ("unauthenticated", "invalid token"),
    )
    .await;

    // Missing `sub`.
    let mut no_sub = serde_json::to_value(stack.claims("nosub", "r1")).expect("json");
    no_sub.as_object_mut().expect("object").remove("sub");
    refused(
        &stack,
        &mut watcher,
        &sign_json(&service_header(&stack), &no_sub, &key),
        ("unauthenticated", "invalid token"),
    )
    .await;

    // alg: none, with otherwise valid claims.
    let claims = serde_json::to_vec(&stack.claims("none", "r1")).expect("json");
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        B64.encode(claims)
    );
    refused(
        &stack,
        &mut watcher,
        &none,
        ("unauthenticated", "malformed token"),
    )
    .await;

    // HS256 "signed" with the EdDSA public key as the HMAC secret.
    let public = B64.decode(&stack.signing_key.x).expect("x");
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some(stack.signing_key.kid.clone());
    let claims = serde_json::to_value(stack.claims("confused", "r1")).expect("json");
    for secret in [
        public.clone(),
        serde_json::to_vec(&stack.signing_key.public()).expect("jwk"),
    ] {
        let token = sign_json(&confused, &claims, &EncodingKey::from_secret(&secret));
        refused(
            &stack,
            &mut watcher,
            &token,
            ("unauthenticated", "algorithm not allowed for this key"),
        )
        .await;
    }

    // A key the service does not know, under a kid it does not know.
    let stranger = Jwk::generate(KeyAlg::EdDsa, "k9").expect("key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k9".into());
    let token = sign_json(&header, &claims, &stranger.encoding_key().expect("key"));
    refused(
        &stack,
        &mut watcher,
        &token,
        ("unauthenticated", "unknown signing key"),
    )
    .await;
    // The same stranger key claiming the service's kid.
    let token = sign_json(
        &service_header(&stack),
        &claims,
        &stranger.encoding_key().expect("key"),
    );
    refused(
        &stack,
        &mut watcher,
        &token,
        ("unauthenticated", "invalid token signature"),
    )
    .await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_tokens_verify_only_with_their_secret() {
    let stack = Stack::start().await;
    let mut watcher = watcher(&stack).await;
    // A backend mints HS256 with its API key as issuer: accepted.
    let request = Stack::request("backend-user", "r1");
    let claims = request
        .to_claims(&stack.api.key, "switchboard")
        .expect("claims");
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = client.join(&stack.api.mint(&claims).expect("mint")).await;
    assert_eq!(joined.self_.expect("self").id, "backend-user");
    let seen = watcher.barrier().await;
    assert!(
        seen.iter()
            .any(|m| matches!(m.message, Some(Out::ParticipantJoined(_)))),
        "{seen:?}"
    );

    // Same claims, wrong secret.
    let forged =
        switchboard_auth::ApiKey::new(&stack.api.key, "a-different-secret-0123456789-abcdefg")
            .expect("key");
    let mut claims = claims.clone();
    claims.sub = "forger".into();
    refused(
        &stack,
        &mut watcher,
        &forged.mint(&claims).expect("mint"),
        ("unauthenticated", "invalid token signature"),
    )
    .await;
    // An API key the service does not know.
    let unknown =
        switchboard_auth::ApiKey::new("other-key", "a-different-secret-0123456789-abcdefg")
            .expect("key");
    let claims = request
        .to_claims("other-key", "switchboard")
        .expect("claims");
    refused(
        &stack,
        &mut watcher,
        &unknown.mint(&claims).expect("mint"),
        ("unauthenticated", "unknown signing key"),
    )
    .await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_enforced() {
    let stack = Stack::start().await;
    let mut watcher = watcher(&stack).await;

    // A refresh token is not an access token.
    let mut refresh = Stack::request("refresher", "r1");
    refresh.token_type = TokenType::Refresh;
    refused(
        &stack,
        &mut watcher,
        &stack.issue(&refresh).0,
        ("unauthenticated", "not an access token"),
    )
    .await;

    // A token for room A cannot join room B.
    let room_a = stack.token("roamer", "room-a");
    refused_in(
        &stack,
        &mut watcher,
        &room_a,
        "r1",
        ("permission_denied", "the token does not grant this room"),
        4403,
    )
    .await;
    // A pattern grant needs an explicit room, and allows only matching ones.
    let mut pattern = Stack::request("teammate", "team-*");
    let team = stack.issue(&pattern).0;
    refused_in(
        &stack,
        &mut watcher,
        &team,
        "",
        (
            "bad_request",
            "join.room is required unless the token grants exactly one room",
        ),
        4400,
    )
    .await;
    refused_in(
        &stack,
        &mut watcher,
        &team,
        "r1",
        ("permission_denied", "the token does not grant this room"),
        4403,
    )
    .await;
    let mut member = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let id = member
        .send(In::Join(Box::new(pb::Join {
            token: team,
            room: "team-red".into(),
            ..Default::default()
        })))
        .await;
    let joined = member
        .recv_until(|m| {
            if let Out::Joined(j) = m {
                Some(j.clone())
            } else {
                None
            }
        })
        .await;
    assert_eq!((joined.request_id, joined.room.as_str()), (id, "team-red"));

    // Without the publish grant: answers and candidates yes, offers no.
    pattern.identity = "viewer".into();
    pattern.grants.room = "r1".into();
    pattern.grants.publish = false;
    let mut viewer = WsClient::connect(&stack.ws_url(), Format::Json).await;
    viewer.join(&stack.issue(&pattern).0).await;
    let offer = viewer
        .signal("watcher", description(true, "v=0 offer"))
        .await;
    let err = viewer.next_error().await;
    assert_eq!(
        (err.code().as_str_name(), err.request_id),
        ("permission_denied", offer)
    );
    viewer
        .signal("watcher", description(false, "v=0 answer"))
        .await;
    let got = watcher.next_signal().await;
    assert_eq!(
        (got.from.as_str(), got.kind),
        ("viewer", Some(description(false, "v=0 answer")))
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_header_authenticates_at_the_handshake() {
    let stack = Stack::start().await;
    let origin = stack.edge_url.clone();
    let token = stack.token("header", "r1");
    let mut client =
        WsClient::connect_with(&stack.ws_url(), Some(&origin), Some(&token), Format::Json)
            .await
            .expect("accepted");
    let joined = client.join("").await;
    assert_eq!(joined.self_.expect("self").id, "header");

    let refused = WsClient::connect_with(
        &stack.ws_url(),
        Some(&origin),
        Some("garbage"),
        Format::Json,
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("unauthenticated"), "{}", refused.body);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_off_the_allow_list_are_refused_at_the_handshake() {
    let stack = Stack::start().await;
    for origin in [
        None,
        Some("https://evil.example.com"),
        Some("null"),
        Some("http://app.example.com.evil.io"),
    ] {
        let refused = WsClient::connect_with(&stack.ws_url(), origin, None, Format::Json)
            .await
            .err()
            .unwrap_or_else(|| panic!("origin {origin:?} must be refused"));
        assert_eq!(refused.status, 403, "origin {origin:?}");
        assert!(
            refused.body.contains("origin_not_allowed"),
            "{}",
            refused.body
        );
    }
    // The allow-listed origin and the edge's own origin are accepted.
    for origin in ["https://app.example.com", stack.edge_url.as_str()] {
        assert!(
            WsClient::connect_with(&stack.ws_url(), Some(origin), None, Format::Json)
                .await
                .is_ok()
        );
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_token_endpoint_mints_tokens_that_join_and_jwks_is_published() {
    let stack = Stack::start().await;
    let (status, body) = http::request(
        &stack.edge_url,
        "POST",
        "/v1/dev/token",
        r#"{"identity":"dev","room":"r9","name":"Dev"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = value["token"].as_str().expect("token");
    assert!(value["expiresAt"].as_u64().expect("expiresAt") > now_secs());
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let joined = client.join(token).await;
    assert_eq!(
        (
            joined.room.as_str(),
            joined.self_.expect("self").name.as_str()
        ),
        ("r9", "Dev")
    );

    let (status, body) = http::request(&stack.edge_url, "POST", "/v1/dev/token", "{}").await;
    assert_eq!(status, 400, "{body}");

    let (status, jwks) = http::request(&stack.edge_url, "GET", "/.well-known/jwks.json", "").await;
    assert_eq!(status, 200, "{jwks}");
    let jwks: serde_json::Value = serde_json::from_str(&jwks).expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0]["kid"].as_str(), keys[0]["alg"].as_str()),
        (Some("k1"), Some("EdDSA"))
    );
    assert!(
        keys[0].get("d").is_none(),
        "the JWKS must not contain private keys"
    );
    stack.shutdown().await;
}
