//! `grpc.health.v1.Health` as the health-checking protocol specifies it: tonic-health answers
//! `Watch` of a service it does not know with NOT_FOUND, but the protocol says the server
//! sends SERVICE_UNKNOWN and keeps the call open (the service may appear later). Every watch
//! ends with UNAVAILABLE at shutdown, so a stop does not wait on probes.

use futures::StreamExt;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{self, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use super::streams::{until_shutdown, BoxStream};

/// tonic-health's service with `Watch` of unknown services fixed.
#[derive(Debug)]
pub struct Health {
    inner: HealthService,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Health {
    /// The health service serving what `reporter` sets.
    pub fn server(
        reporter: HealthReporter,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> HealthServer<Health> {
        HealthServer::new(Health {
            inner: HealthService::from_health_reporter(reporter),
            shutdown,
        })
    }
}

#[tonic::async_trait]
impl health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream: BoxStream<HealthCheckResponse> = match self.inner.watch(request).await {
            Ok(watch) => Box::pin(watch.into_inner()),
            Err(status) if status.code() == Code::NotFound => {
                // Services are registered once, at start: an unknown one stays unknown.
                let unknown = HealthCheckResponse {
                    status: ServingStatus::ServiceUnknown as i32,
                };
                Box::pin(futures::stream::iter([Ok(unknown)]).chain(futures::stream::pending()))
            }
            Err(status) => return Err(status),
        };
        Ok(Response::new(until_shutdown(stream, self.shutdown.clone())))
    }
}
