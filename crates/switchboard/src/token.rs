//! `switchboard token`: mint an access token offline (as a backend with its
//! API key, or with a private signing key), or ask a running auth service.

use std::time::Duration;

use switchboard_auth::{ApiKey, Keyring, KeyringConfig, TokenRequest, TokenType};
use switchboard_proto::pb;
use tonic::metadata::MetadataValue;

use crate::{cli::TokenArgs, keys::read_jwk, mesh::Mesh, services::BoxError};

fn grants(args: &TokenArgs) -> pb::Grants {
    pb::Grants {
        room: args.room.clone(),
        publish: !args.no_publish,
        room_create: args.admin,
        room_list: args.admin,
        room_close: args.admin,
        room_data: args.admin,
        room_admin: args.admin,
        kick: args.admin,
    }
}

pub async fn run(args: TokenArgs, mesh: Mesh) -> Result<(), BoxError> {
    let request = TokenRequest {
        identity: args.identity.clone(),
        name: args.name.clone(),
        grants: grants(&args),
        metadata: Default::default(),
        ttl: Duration::from_secs(args.ttl),
        token_type: TokenType::Access,
        auth_time: 0,
        chain: String::new(),
    };
    let token = match (&args.api_key, &args.api_secret, &args.signing_key) {
        _ if args.remote => remote(&args, &mesh).await?,
        (Some(key), Some(secret), _) => {
            // As a backend would: HS256 with the API key as issuer.
            let api = ApiKey::new(key, secret)?;
            api.mint(&request.to_claims(key, &args.audience)?)?
        }
        (_, _, Some(path)) => {
            let keyring = Keyring::new(KeyringConfig {
                signing_key: read_jwk(path)?,
                verification_keys: vec![],
                api_keys: vec![],
                issuer: args.issuer.clone(),
                audience: args.audience.clone(),
                max_session: Duration::from_secs(args.ttl),
            })?;
            keyring.issue(&request)?.0
        }
        _ => remote(&args, &mesh).await?,
    };
    println!("{token}");
    Ok(())
}

/// Asks the auth service (IssueToken), with the API credential when given.
async fn remote(args: &TokenArgs, mesh: &Mesh) -> Result<String, BoxError> {
    mesh.check_url("--auth-url", &args.auth_url)?;
    let dial = switchboard_proto::grpc::Dial::new(
        &args.auth_url,
        mesh.mtls.as_deref(),
        &switchboard_proto::mtls::PeerName::auth(),
    )?;
    let channel = dial
        .connect()
        .await
        .map_err(|e| format!("cannot reach auth at {}: {e}", args.auth_url))?;
    let mut client = pb::auth_client::AuthClient::new(channel);
    let mut call = tonic::Request::new(pb::IssueTokenRequest {
        identity: args.identity.clone(),
        name: args.name.clone(),
        grants: Some(grants(args)),
        ttl_seconds: u32::try_from(args.ttl).unwrap_or(u32::MAX),
        ..Default::default()
    });
    if let (Some(key), Some(secret)) = (&args.api_key, &args.api_secret) {
        call.metadata_mut().insert(
            switchboard_auth::API_KEY_METADATA,
            MetadataValue::try_from(key.as_str())?,
        );
        call.metadata_mut().insert(
            switchboard_auth::API_SECRET_METADATA,
            MetadataValue::try_from(secret.as_str())?,
        );
    }
    let response = client
        .issue_token(call)
        .await
        .map_err(|s| format!("auth refused: {}", s.message()))?;
    Ok(response.into_inner().token)
}
