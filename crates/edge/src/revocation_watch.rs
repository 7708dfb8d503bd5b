//! Closes live connections whose token gets revoked: follows auth's
//! revocation stream and kills every matching connection (close 4401
//! `token_revoked`). Tokens are also re-verified at every refresh, which
//! catches anything missed while the stream was reconnecting.

use std::time::Duration;

use switchboard_proto::{ErrorCode, pb};
use tokio::sync::watch;

use switchboard_proto::auth_client::AuthClient;

use crate::{
    revocations::{RecentRevocations, revokes},
    signal_link::SignalLink,
};

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub async fn run(
    auth: AuthClient,
    link: SignalLink,
    recent: RecentRevocations,
    mut stop: watch::Receiver<bool>,
) {
    let mut retry = RETRY_MIN;
    loop {
        let follow = async {
            let mut stream = auth.watch_revocations().await?;
            auth.set_up(true);
            while let Some(revocation) = stream.message().await? {
                retry = RETRY_MIN;
                // Remembered first: a connection registering meanwhile
                // either is in the map below or finds it in `recent`.
                recent.record(revocation.clone());
                apply(&link, &revocation);
            }
            Ok::<(), tonic::Status>(())
        };
        tokio::select! {
            result = follow => {
                if let Err(status) = result {
                    tracing::debug!(error = %status.message(), "revocation stream failed");
                }
            }
            () = crate::stopped(&mut stop) => return,
        }
        // Until the stream is back, auth counts as unreachable.
        auth.set_up(false);
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = crate::stopped(&mut stop) => return,
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

fn apply(link: &SignalLink, revocation: &pb::Revocation) {
    let reason = match &revocation.target {
        Some(pb::revocation::Target::Subject(_)) => "user revoked",
        _ => "token revoked",
    };
    let closed = link.kill_where(
        |auth| revokes(revocation, auth),
        ErrorCode::TokenRevoked,
        reason,
    );
    if closed > 0 {
        tracing::info!(connections = closed, "connections closed by revocation");
    }
}
