//! Follows one service's `grpc.health.v1` status with `Watch`, so every
//! change is pushed to the aggregator without polling.

use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Backoff bounds between watch attempts on a service that is down.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// One dependency to follow.
#[derive(Debug, Clone)]
pub struct Target {
    /// Name shown in `/health/ready`.
    pub name: String,
    /// gRPC address, e.g. `http://127.0.0.1:50051`.
    pub url: String,
    /// The `grpc.health.v1` service name to watch (`""` = the whole server).
    pub service: String,
}

/// Keeps `status` equal to the target's serving status (false while it is
/// unreachable) until `stop` fires.
pub async fn follow(target: Target, status: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
    let Ok(endpoint) = Endpoint::from_shared(target.url.clone()) else {
        tracing::error!(target = %target.name, url = %target.url, "invalid health target address");
        return;
    };
    let channel = endpoint
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let mut retry = RETRY_MIN;
    loop {
        let mut client = HealthClient::new(channel.clone());
        let request = HealthCheckRequest {
            service: target.service.clone(),
        };
        let attempt = async {
            let mut stream = client.watch(request).await?.into_inner();
            while let Some(update) = stream.message().await? {
                let serving = update.status == ServingStatus::Serving as i32;
                status.send_if_modified(|s| std::mem::replace(s, serving) != serving);
                retry = RETRY_MIN;
            }
            Ok::<(), tonic::Status>(())
        };
        tokio::select! {
            result = attempt => {
                if let Err(err) = result {
                    tracing::debug!(target = %target.name, error = %err.message(), "health watch failed");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        status.send_if_modified(|s| std::mem::replace(s, false));
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}
