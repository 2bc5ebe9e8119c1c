//! The dashboard: server-rendered pages on the coordinator's port (one file per page, the
//! shell in `layout`, the embedded CSS and JS in `assets`), live updates over server-sent
//! events (`events`, `log`), and the buttons (`actions`) behind a login (`session`).
//!
//! Every read and every action goes through the `ControlService` methods themselves, called
//! with a `tonic::Request` that carries the page's [`Caller`]: the same validation, the same
//! engine commands and the same messages as the CLI gets, no second implementation
//! (docs/architecture.md). Nothing here touches the store.

mod actions;
mod assets;
mod events;
mod jobs;
mod jobset;
mod layout;
mod log;
mod overview;
mod run;
mod session;
mod text;

use std::sync::atomic::Ordering;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use rota_proto::access::Caller;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Request;

use super::control::ControlService;
use super::http::{refusal, HttpState};

/// What every dashboard handler shares.
#[derive(Clone, Debug)]
pub struct Web {
    http: HttpState,
    /// The gRPC handlers, called directly (see the module comment).
    control: ControlService,
    sessions: session::Sessions,
    /// Run changes rendered once for every open tab.
    feed: events::Feed,
}

/// The dashboard's routes, with their state, to merge into the HTTP router.
pub fn routes(http: &HttpState) -> Router {
    let web = Web {
        control: ControlService {
            engine: http.engine.clone(),
            shutdown: http.shutdown.clone(),
        },
        sessions: session::Sessions::new(http.credentials.is_open()),
        feed: events::Feed::new(),
        http: http.clone(),
    };
    Router::new()
        .route("/", get(overview::page))
        .route("/jobsets/{name}", get(jobset::page))
        .route("/runs/{number}", get(run::page))
        .route("/runs/{number}/log", get(log::download))
        .route("/runs/{number}/tail", get(log::tail))
        .route("/jobs", get(jobs::page))
        .route("/events", get(events::stream))
        .route("/login", get(session::form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/actions/{verb}", post(actions::act))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web)
}

/// A request refused before its handler ran: the answer to send (boxed, being large).
pub type Denied = Box<Response>;

/// Who is looking at a page: the caller the request was checked as, and the CSRF token its
/// forms must carry (see `session`).
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    /// Empty for a request authorized by an `Authorization` header, which a cross-site form
    /// cannot send.
    pub csrf: String,
    /// Whether the viewer logged in (so the page offers a logout).
    pub logged_in: bool,
    /// Whether the coordinator has no token (so the page says anyone can act).
    pub open: bool,
    /// The connection's peer, for the audit trail of an action (set by `actions`).
    pub peer: Option<std::net::SocketAddr>,
    /// The engine's change count when the request began, before the page read anything:
    /// the page's event stream compares it with its own at opening (`events.rs`).
    pub seq: u64,
}

impl Web {
    /// Checks a request as the gRPC `method` (`"Cancel"`, `"ListRuns"`) it mirrors. A page
    /// asked without a login is sent to the login form; any other refusal is the one-line
    /// message with its HTTP status.
    fn viewer(&self, headers: &HeaderMap, method: &str, path: &str) -> Result<Viewer, Denied> {
        let grpc_method = format!("/rota.v1.ControlService/{method}");
        let seq = self.http.engine.published.load(Ordering::SeqCst);
        if let Some(viewer) = self.sessions.viewer(headers, &grpc_method)? {
            return Ok(Viewer { seq, ..viewer });
        }
        match self.http.authorize(headers, &grpc_method) {
            Ok(caller) => Ok(Viewer {
                caller,
                csrf: self.sessions.open_csrf(self.http.credentials.is_open()),
                logged_in: false,
                open: self.http.credentials.is_open(),
                peer: None,
                seq,
            }),
            Err(refused)
                if refused.0.code() == tonic::Code::Unauthenticated
                    && !headers.contains_key(header::AUTHORIZATION) =>
            {
                Err(Box::new(
                    Redirect::to(&format!("/login?next={}", session::encode(path))).into_response(),
                ))
            }
            Err(refused) => Err(Box::new(refusal(&refused.0))),
        }
    }
}

/// A request to a `ControlService` method as `viewer`: the handler finds the caller where the
/// gRPC guard would have put it, and the peer where tonic's server would have (so
/// `Request::remote_addr` and with it the audit trail name the browser's address).
fn request<T>(viewer: &Viewer, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(viewer.caller.clone());
    if let Some(peer) = viewer.peer {
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(peer),
        });
    }
    request
}

/// The peer of the connection an HTTP request came on: tonic's server puts its connect info
/// into every request's extensions, the axum routes' too (TLS wraps it).
fn peer_of(extensions: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(|i| i.remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr)
        })
}

/// `stream`, counted in `rota_dashboard_streams` for as long as the response body holding it
/// lives: hyper drops the body when the connection closes, so a closed tab leaves the count
/// (and holds no receiver, see `events`).
fn counted<S: futures::Stream>(web: &Web, stream: S) -> impl futures::Stream<Item = S::Item> {
    use futures::StreamExt as _;
    let open = web.http.engine.metrics.stream_opened();
    stream.map(move |item| {
        let _counted = &open;
        item
    })
}

/// A failed `ControlService` call as a page: its one-line message, with the HTTP status its
/// gRPC code maps to.
fn failure(viewer: &Viewer, status: &tonic::Status) -> Response {
    let code = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::ResourceExhausted => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body = layout::page(
        viewer,
        "error",
        maud::html! {
            p.error { (status.message()) }
            p { a href="/" { "back to the overview" } }
        },
    );
    (code, body).into_response()
}

/// Headers on every dashboard answer: scripts and styles only from this origin (an injected
/// inline script would not run even if escaping failed), no framing, no type sniffing.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
