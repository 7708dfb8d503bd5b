//! Closes live connections whose token gets revoked: follows auth's
//! revocation stream and kills every matching connection (close 4401
//! `token_revoked`). Each (re)connected stream starts with everything
//! revoked at that moment, so a revocation made while the edge was away is
//! applied when it is back. What arrives together is applied in one pass
//! over the connections.

use std::time::Duration;

use switchboard_proto::ErrorCode;
use tokio::sync::watch;

use switchboard_proto::auth_client::AuthClient;

use crate::{
    revocations::{RecentRevocations, RevocationSet},
    signal_link::SignalLink,
};

/// Revocations applied in one pass at most (the snapshot of a reconnect
/// comes in such batches).
const BATCH: usize = 4096;
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
            while let Some(first) = stream.message().await? {
                retry = RETRY_MIN;
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match futures_util::FutureExt::now_or_never(stream.message()) {
                        Some(Ok(Some(next))) => batch.push(next),
                        _ => break,
                    }
                }
                // Remembered first: a connection registering meanwhile
                // either is in the map below or finds them in `recent`.
                for revocation in &batch {
                    recent.record(revocation.clone());
                }
                apply(&link, &RevocationSet::new(&batch));
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

fn apply(link: &SignalLink, revoked: &RevocationSet) {
    let closed = link.kill_where(
        |auth| revoked.covers(auth),
        ErrorCode::TokenRevoked,
        "token revoked",
    );
    if closed > 0 {
        switchboard_proto::metrics::metrics()
            .revocations_applied
            .inc_by(closed as u64);
        tracing::info!(connections = closed, "connections closed by revocation");
    }
}
