//! Nothing reaches a room without a valid token and an allowed Origin.

use switchboard_auth::tokens::now_secs;
use switchboard_proto::{pb::server_message::Message as Out, wire::Format};
use switchboard_tests::{Stack, WsClient, http};

/// Sends Join with `token` and expects an error with `code` followed by a
/// close with `close_code`; then checks the room never heard of it.
async fn refused(stack: &Stack, watcher: &mut WsClient, token: &str, code: &str, close_code: u16) {
    let mut client = WsClient::connect(&stack.ws_url(), Format::Json).await;
    let id = client
        .send(switchboard_proto::pb::client_message::Message::Join(
            switchboard_proto::pb::Join {
                token: token.into(),
                attributes: Default::default(),
            },
        ))
        .await;
    let first = client.recv().await;
    match first.message {
        Some(Out::Error(e)) => {
            assert_eq!((e.code.as_str(), e.request_id), (code, id), "{e:?}");
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
    let seen = watcher.barrier().await;
    assert!(
        seen.is_empty(),
        "the room saw something of a refused join: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_before_any_room_operation() {
    let stack = Stack::start().await;
    let mut watcher = WsClient::connect(&stack.ws_url(), Format::Json).await;
    watcher.join(&stack.token("watcher", "r1")).await;

    refused(&stack, &mut watcher, "", "unauthenticated", 4401).await;
    refused(&stack, &mut watcher, "not.a.jwt", "unauthenticated", 4401).await;

    // Signed with another secret.
    let other = switchboard_auth::TokenKeys::new(
        b"another-secret-0123456789-abcdefghijk",
        "switchboard",
        "switchboard",
    );
    let forged = other.sign(&stack.claims("mallory", "r1")).expect("sign");
    refused(&stack, &mut watcher, &forged, "unauthenticated", 4401).await;

    let mut expired = stack.claims("late", "r1");
    expired.iat = now_secs() - 3600;
    expired.nbf = expired.iat;
    expired.exp = now_secs() - 60;
    refused(
        &stack,
        &mut watcher,
        &stack.keys.sign(&expired).expect("sign"),
        "token_expired",
        4401,
    )
    .await;

    let mut early = stack.claims("early", "r1");
    early.nbf = now_secs() + 3600;
    refused(
        &stack,
        &mut watcher,
        &stack.keys.sign(&early).expect("sign"),
        "unauthenticated",
        4401,
    )
    .await;

    let mut wrong_aud = stack.claims("aud", "r1");
    wrong_aud.aud = "someone-else".into();
    refused(
        &stack,
        &mut watcher,
        &stack.keys.sign(&wrong_aud).expect("sign"),
        "unauthenticated",
        4401,
    )
    .await;

    let mut wrong_iss = stack.claims("iss", "r1");
    wrong_iss.iss = "someone-else".into();
    refused(
        &stack,
        &mut watcher,
        &stack.keys.sign(&wrong_iss).expect("sign"),
        "unauthenticated",
        4401,
    )
    .await;

    // alg: none, with otherwise valid claims.
    let claims = serde_json::to_vec(&stack.claims("none", "r1")).expect("json");
    let b64 = |b: &[u8]| {
        use std::fmt::Write;
        // base64url without padding, by hand (no extra dependency).
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                let _ = out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims)
    );
    refused(&stack, &mut watcher, &none, "unauthenticated", 4401).await;
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
        Some("http://app.example.com"),
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
async fn the_dev_token_endpoint_mints_tokens_that_join() {
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
    stack.shutdown().await;
}
