//! `grpc.health.v1` as its specification says (grpc/doc/health-checking.md),
//! served by auth and signal.
//!
//! Every server answers three names:
//! - `""`: the process's readiness — what Kubernetes' native gRPC probe
//!   and `grpc_health_probe` ask when no name is given. It follows the
//!   service's real dependencies (signal: its store; auth: its keys and,
//!   with Redis, its revocations) and is NOT_SERVING while draining.
//! - the service's own name (`switchboard.v1.Signal`, `switchboard.v1.Auth`):
//!   the same status as `""`.
//! - [`LIVENESS`]: SERVING for as long as the process answers; it never
//!   depends on another process, so an outage elsewhere (Redis) cannot get
//!   every pod restarted at once.
//!
//! Check on any other name answers NOT_FOUND; Watch on it sends
//! SERVICE_UNKNOWN and keeps the stream open (the names are fixed when the
//! server starts, so it stays unknown). Watch streams end once the server
//! closes its reporter at shutdown, after they have sent NOT_SERVING.

use std::{collections::BTreeMap, pin::Pin, sync::Arc};

use futures_util::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::health_pb::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
    health_check_response::ServingStatus,
    health_server::{Health, HealthServer},
};

/// The name whose status is the process's liveness.
pub const LIVENESS: &str = "liveness";

/// How a server reports its health: a handle, cheap to clone.
#[derive(Debug, Clone)]
pub struct HealthReporter {
    statuses: Arc<BTreeMap<String, watch::Sender<ServingStatus>>>,
    service: Arc<str>,
    /// True once the server stops: Watch streams end.
    closed: watch::Sender<bool>,
}

impl HealthReporter {
    /// A reporter for the service named `service`: `""` and `service` start
    /// NOT_SERVING (the caller says when it is ready), [`LIVENESS`] SERVING.
    pub fn new(service: &str) -> Self {
        let statuses = ["", service, LIVENESS]
            .into_iter()
            .map(|name| {
                let initial = if name == LIVENESS {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                (name.to_owned(), watch::Sender::new(initial))
            })
            .collect();
        Self {
            statuses: Arc::new(statuses),
            service: service.into(),
            closed: watch::Sender::new(false),
        }
    }

    /// Sets the readiness (`""` and the service's own name).
    pub fn set_ready(&self, ready: bool) {
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in ["", &*self.service] {
            if let Some(tx) = self.statuses.get(name) {
                tx.send_if_modified(|s| std::mem::replace(s, status) != status);
            }
        }
    }

    /// Whether `""` is SERVING.
    pub fn is_ready(&self) -> bool {
        self.statuses
            .get("")
            .is_some_and(|tx| *tx.borrow() == ServingStatus::Serving)
    }

    /// Shutdown: readiness goes NOT_SERVING, and every Watch stream ends
    /// after saying so (a drain does not wait for them).
    pub fn close(&self) {
        self.set_ready(false);
        self.closed.send_replace(true);
    }

    /// The `grpc.health.v1.Health` service answering from this reporter.
    pub fn server(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            reporter: self.clone(),
        })
    }
}

/// The gRPC service of a [`HealthReporter`].
#[derive(Debug, Clone)]
pub struct HealthService {
    reporter: HealthReporter,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let name = request.into_inner().service;
        match self.reporter.statuses.get(&name) {
            Some(tx) => Ok(Response::new(response(*tx.borrow()))),
            None => Err(Status::not_found("unknown service")),
        }
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let statuses = self
            .reporter
            .statuses
            .iter()
            .map(|(name, tx)| (name.clone(), response(*tx.borrow())))
            .collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let name = request.into_inner().service;
        let status = self
            .reporter
            .statuses
            .get(&name)
            .map(watch::Sender::subscribe);
        let closed = self.reporter.closed.subscribe();
        let stream = futures_util::stream::unfold(
            (status, closed, true),
            |(mut status, mut closed, first)| async move {
                let Some(rx) = status.as_mut() else {
                    // Unknown: say so once, then stay open until shutdown.
                    if first {
                        let unknown = response(ServingStatus::ServiceUnknown);
                        return Some((Ok(unknown), (status, closed, false)));
                    }
                    let _ = closed.wait_for(|c| *c).await;
                    return None;
                };
                if !first {
                    tokio::select! {
                        changed = rx.changed() => changed.ok()?,
                        _ = closed.wait_for(|c| *c) => {
                            // The last word is the status at shutdown, if
                            // it changed since it was last sent.
                            if !rx.has_changed().unwrap_or(false) {
                                return None;
                            }
                        }
                    }
                }
                let current = response(*rx.borrow_and_update());
                Some((Ok(current), (status, closed, false)))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn request(name: &str) -> Request<HealthCheckRequest> {
        Request::new(HealthCheckRequest {
            service: name.into(),
        })
    }

    fn status(r: &HealthCheckResponse) -> ServingStatus {
        ServingStatus::try_from(r.status).expect("known status")
    }

    #[tokio::test]
    async fn check_answers_known_names_and_not_found_for_others() {
        let reporter = HealthReporter::new("switchboard.v1.Signal");
        let service = HealthService {
            reporter: reporter.clone(),
        };
        let check = |name: &'static str| {
            let service = service.clone();
            async move {
                match service.check(request(name)).await {
                    Ok(r) => Ok(status(r.get_ref())),
                    Err(e) => Err(e.code()),
                }
            }
        };
        assert_eq!(check("").await, Ok(ServingStatus::NotServing));
        assert_eq!(check(LIVENESS).await, Ok(ServingStatus::Serving));
        reporter.set_ready(true);
        assert_eq!(check("").await, Ok(ServingStatus::Serving));
        assert_eq!(
            check("switchboard.v1.Signal").await,
            Ok(ServingStatus::Serving)
        );
        assert_eq!(check("no.such.Service").await, Err(tonic::Code::NotFound));
    }

    #[tokio::test]
    async fn watch_follows_changes_and_ends_at_shutdown() {
        let reporter = HealthReporter::new("switchboard.v1.Auth");
        let service = HealthService {
            reporter: reporter.clone(),
        };
        let mut stream = service
            .watch(request(""))
            .await
            .expect("watch")
            .into_inner();
        let next =
            |s: Option<Result<HealthCheckResponse, Status>>| status(&s.expect("open").expect("ok"));
        assert_eq!(next(stream.next().await), ServingStatus::NotServing);
        reporter.set_ready(true);
        assert_eq!(next(stream.next().await), ServingStatus::Serving);
        reporter.close();
        assert_eq!(next(stream.next().await), ServingStatus::NotServing);
        assert!(stream.next().await.is_none(), "ends after shutdown");
    }

    #[tokio::test]
    async fn watch_of_an_unknown_name_says_so_and_stays_open() {
        let reporter = HealthReporter::new("switchboard.v1.Auth");
        let service = HealthService {
            reporter: reporter.clone(),
        };
        let mut stream = service
            .watch(request("no.such.Service"))
            .await
            .expect("a stream, not an error")
            .into_inner();
        let first = stream.next().await.expect("open").expect("ok");
        assert_eq!(status(&first), ServingStatus::ServiceUnknown);
        // Still open: nothing more arrives while the server runs.
        tokio::time::pause();
        let more = tokio::time::timeout(std::time::Duration::from_secs(3600), stream.next()).await;
        assert!(more.is_err(), "the stream stayed open: {more:?}");
        reporter.close();
        assert!(stream.next().await.is_none(), "ends at shutdown");
    }
}
