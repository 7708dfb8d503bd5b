//! `switchboard token`: mint an access token with the signing secret, or,
//! without one, ask a dev-mode auth service.

use std::time::Duration;

use switchboard_auth::Grant;
use switchboard_proto::{ParticipantId, RoomId, pb};

use crate::{
    cli::TokenArgs,
    services::{BoxError, token_keys},
};

pub async fn run(args: TokenArgs) -> Result<(), BoxError> {
    let token = if args.keys.jwt_secret.is_some() {
        let keys = token_keys(&args.keys, false)?;
        let grant = Grant {
            identity: ParticipantId::new(&args.identity)?,
            room: RoomId::new(&args.room)?,
            name: args.name,
            ttl: Duration::from_secs(args.ttl),
        };
        keys.issue(&grant)?.0
    } else {
        let mut client = pb::auth_client::AuthClient::connect(args.auth_url.clone())
            .await
            .map_err(|e| format!("cannot reach auth at {}: {e}", args.auth_url))?;
        client
            .issue_token(pb::IssueTokenRequest {
                identity: args.identity,
                room: args.room,
                name: args.name,
                ttl_seconds: u32::try_from(args.ttl).unwrap_or(u32::MAX),
            })
            .await
            .map_err(|s| format!("auth refused: {}", s.message()))?
            .into_inner()
            .token
    };
    println!("{token}");
    Ok(())
}
