//! What a standby coordinator answers while another holds the PostgreSQL store's lease. It
//! listens, so a probe or a client gets an answer instead of a refused connection, but it
//! serves nothing:
//!
//! - health is SERVING for the process (`""`: a liveness probe leaves it alone) and NOT_SERVING
//!   for `rota.v1.ControlService`, `rota.v1.AgentService` and `rota.v1.RunService`, so a
//!   readiness probe keeps it out of a Service and a client given several addresses passes
//!   over it;
//! - every other gRPC call is UNAVAILABLE (a client retries elsewhere) and every page 503, both
//!   naming the active coordinator's address as the lease last showed it, with the address also
//!   in the `rota-active` header for programs.
//!
//! Nothing here reads the store: the engine is not running on a standby (one owner of state).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tonic::service::Routes;
use tonic_health::server::HealthReporter;

use crate::store::lease::Seen;
use rota_proto as pb;

/// The header (gRPC metadata on a call) that carries the active coordinator's address.
pub const ACTIVE_HEADER: &str = "rota-active";

/// The standby's routes; `shutdown` turning true ends its health watches.
pub async fn routes(seen: Seen, shutdown: tokio::sync::watch::Receiver<bool>) -> Routes {
    let reporter = HealthReporter::new();
    use super::{agent_stream::AgentService, artifacts::RunService, control::ControlService};
    reporter
        .set_not_serving::<pb::control_service_server::ControlServiceServer<ControlService>>()
        .await;
    reporter
        .set_not_serving::<pb::agent_service_server::AgentServiceServer<AgentService>>()
        .await;
    reporter
        .set_not_serving::<pb::run_service_server::RunServiceServer<RunService>>()
        .await;
    let health = super::health::Health::server(reporter, shutdown);
    let router = axum::Router::new().fallback(move |headers: HeaderMap, uri: Uri| {
        let seen = seen.clone();
        async move { answer(&seen, &headers, &uri) }
    });
    Routes::from(router).add_service(health)
}

/// Why this coordinator does not serve, for people.
pub fn message(seen: &Seen) -> String {
    match seen.get() {
        Some(active) if !active.address.is_empty() => format!(
            "this coordinator is a standby: the active coordinator is at {}",
            active.address
        ),
        Some(_) => {
            "this coordinator is a standby: another coordinator is active (it gave no address)"
                .into()
        }
        None => "this coordinator is a standby: another coordinator holds the store's lease".into(),
    }
}

fn answer(seen: &Seen, headers: &HeaderMap, uri: &Uri) -> Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let active = seen
        .get()
        .and_then(|a| HeaderValue::from_str(&a.address).ok())
        .filter(|a| !a.is_empty());
    let mut response = if grpc {
        tonic::Status::unavailable(message(seen))
            .into_http::<axum::body::Body>()
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::RETRY_AFTER, HeaderValue::from_static("1")),
            ],
            format!("{} (asked for {})\n", message(seen), uri.path()),
        )
            .into_response()
    };
    if let Some(active) = active {
        response.headers_mut().insert(ACTIVE_HEADER, active);
    }
    response
}
