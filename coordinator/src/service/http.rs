//! HTTP on the gRPC port: the pages a browser asks for and the `/metrics` Prometheus scrapes
//! share the coordinator's one address with gRPC, so one Service or one firewall rule carries
//! all of it.
//!
//! tonic routes each gRPC service by its path (`/rota.v1.ControlService/…`); every other
//! request falls through to the [`router`] built here. The one request that must not get an
//! HTTP answer is a gRPC call to a service this coordinator does not have: [`fallback`] tells
//! it apart by its content type and answers it as gRPC would (UNIMPLEMENTED), so a gRPC
//! client still sees a gRPC status.

use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rota_proto::access::{Caller, Credentials};

use crate::engine::EngineHandle;

/// What the HTTP handlers share: the engine they read from and act through, and the
/// credentials a page or action is checked against (the same as gRPC's).
#[derive(Clone, Debug)]
pub struct HttpState {
    pub engine: EngineHandle,
    pub credentials: Credentials,
    /// Turns true at shutdown: ends the dashboard's event streams and log tails, as it ends
    /// gRPC's long-lived calls, so a graceful stop does not wait on an open tab.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Whether the port serves TLS (the dashboard's session cookie is then `Secure`).
    pub tls: bool,
}

impl HttpState {
    /// Checks a request as the gRPC method it mirrors (`/rota.v1.ControlService/Cancel` for a
    /// cancel button, `…/Status` for a read): the same credentials, roles and messages as
    /// gRPC, one check for both. The token comes as `Authorization: Bearer …`, as a
    /// Prometheus `authorization` block sends it.
    pub fn authorize(&self, headers: &HeaderMap, grpc_method: &str) -> Result<Caller, Refused> {
        let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        self.credentials
            .check(grpc_method, authorization)
            .map_err(|status| Refused(Box::new(status)))
    }
}

/// A request the credentials refused, answered as HTTP (a handler returns it with `?`).
#[derive(Debug)]
pub struct Refused(pub Box<tonic::Status>);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        refusal(&self.0)
    }
}

/// A refused check as HTTP: 401 for a missing or unknown token (with the challenge a client
/// needs to retry), 403 for a role that may not act, the message as the body.
pub fn refusal(status: &tonic::Status) -> Response {
    let code = match status.code() {
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", status.message()),
    )
        .into_response();
    if code == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"rota\""),
        );
    }
    response
}

/// The HTTP routes. Add a page or endpoint here; each handler module stays a thin adapter
/// over the engine (docs/architecture.md).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(super::metrics::scrape))
        // For probes that speak HTTP (a Kubernetes `httpGet`, which also does HTTPS): open, as
        // gRPC health is, and 503 from a standby (`standby`).
        .route("/healthz", axum::routing::get(|| async { "ok: active\n" }))
        .with_state(state.clone())
        .merge(super::web::routes(&state))
        .fallback(fallback)
}

/// A path nothing serves: for a gRPC client, UNIMPLEMENTED as a gRPC status (what tonic alone
/// would answer); for anyone else, 404 naming the path.
async fn fallback(headers: HeaderMap, uri: Uri) -> Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unimplemented(format!("no gRPC method {}", uri.path()))
            .into_http::<axum::body::Body>()
            .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("not found: {}\n", uri.path()),
    )
        .into_response()
}
