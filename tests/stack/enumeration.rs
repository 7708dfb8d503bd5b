//! Room and participant enumeration (TEST-PLAN "abuse"): a caller cannot
//! learn which rooms or participants exist outside what its token grants.
//! Every probe of a name it may not see gets the same answer, whether the
//! name exists or not, in the same time (the refusal comes before any
//! lookup).

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use switchboard_proto::{pb, wire::Format};
use switchboard_tests::{Stack, WsClient, description};

use crate::room_service::{admin, api, backend_token, with_token};

const PROBES: usize = 10_000;
/// Rooms that exist (occupied or created) among the probed names.
const SECRET_ROOMS: usize = 50;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// 10,000 GetRoom calls with a token for `team-*` on names outside it, a
/// few of which exist: all refused alike, no hit, in the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_room_probes_learn_nothing() {
    let stack = Stack::start().await;
    let mut client = api(&stack).await;
    let everything = backend_token(&stack, "*", admin());
    for n in 0..SECRET_ROOMS {
        client
            .create_room(with_token(
                pb::CreateRoomRequest {
                    room: format!("secret-{n}"),
                    ..Default::default()
                },
                &everything,
            ))
            .await
            .expect("created");
    }
    // One of them occupied, too.
    let mut member = WsClient::connect(&stack.ws_url(), Format::Json).await;
    member.join(&stack.token("carol", "secret-0")).await;

    // Minted with an API key (HS256): verifying it is cheap even in a
    // debug build, so the probes measure the refusal, not the signature.
    let mut request = Stack::request("prober", "team-*");
    request.grants = pb::Grants {
        room: "team-*".into(),
        ..admin()
    };
    let team = stack
        .api
        .mint(
            &request
                .to_claims(
                    switchboard_tests::stack::API_KEY,
                    switchboard_tests::stack::AUDIENCE,
                )
                .expect("claims"),
        )
        .expect("token");
    // 32 probes in flight on one channel.
    let probes = futures_util::stream::iter(0..PROBES).map(|i| {
        let (mut client, team) = (client.clone(), team.clone());
        async move {
            // Every tenth probe names a room that exists.
            let (room, exists) = if i % 10 == 0 {
                (format!("secret-{}", (i / 10) % SECRET_ROOMS), true)
            } else {
                (format!("secret-{:016x}", rand_u64(i as u64)), false)
            };
            let started = Instant::now();
            let answer = client
                .get_room(with_token(pb::GetRoomRequest { room: room.clone() }, &team))
                .await;
            let took = started.elapsed();
            let status = answer.expect_err("no probe may see a room outside the grant");
            // The answer without the name the caller chose.
            let answer = (status.code(), status.message().replace(&room, "<room>"));
            (answer, exists, took)
        }
    });
    let results: Vec<_> = probes.buffer_unordered(32).collect().await;
    let mut answers = std::collections::HashSet::new();
    let (mut existing, mut missing) = (Vec::new(), Vec::new());
    for (answer, exists, took) in results {
        answers.insert(answer);
        if exists {
            existing.push(took);
        } else {
            missing.push(took);
        }
    }
    assert_eq!(
        answers.len(),
        1,
        "existing and missing rooms answered differently: {answers:?}"
    );
    let (code, _) = answers.iter().next().expect("one answer");
    assert_eq!(*code, tonic::Code::PermissionDenied);
    let (exist, miss) = (median(existing), median(missing));
    eprintln!("GetRoom probe median: existing {exist:?}, missing {miss:?}");
    // Same path, no lookup: the medians differ by noise only.
    let (low, high) = (exist.min(miss), exist.max(miss));
    assert!(
        high <= low * 2 + Duration::from_micros(200),
        "existing {exist:?} vs missing {miss:?}"
    );
    drop(member);
    stack.shutdown().await;
}

/// A participant signalling to ids it has never been told of: whether the
/// id is in another room or nowhere, the answer is the same not_found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_to_unknown_participants_do_not_tell_who_exists() {
    let stack = Stack::start_with(|config| {
        config.edge.connection.rate = switchboard_edge::RateLimit {
            per_second: 100_000,
            burst: 100_000,
        };
    })
    .await;
    let mut elsewhere = WsClient::connect(&stack.ws_url(), Format::Json).await;
    elsewhere.join(&stack.token("dave", "other-room")).await;
    let mut mallory = WsClient::connect(&stack.ws_url(), Format::Json).await;
    mallory.join(&stack.token("mallory", "lobby")).await;
    let mut answers = std::collections::HashSet::new();
    for i in 0..500u64 {
        let target = if i % 10 == 0 {
            "dave".to_owned()
        } else {
            format!("user-{:x}", rand_u64(i))
        };
        mallory.signal(&target, description(true, "v=0\r\n")).await;
        let error = mallory.next_error().await;
        answers.insert((
            error.code().as_str_name().to_owned(),
            error.message.replace(&target, "<id>"),
        ));
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        answers.iter().next().map(|(c, _)| c.as_str()),
        Some("not_found")
    );
    drop(elsewhere);
    stack.shutdown().await;
}

/// A spread of distinct values without a random-number dependency.
fn rand_u64(i: u64) -> u64 {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
