//! Logins for the dashboard. With credentials configured every page and action needs one: a
//! client token entered once in a form (POST /login), checked as gRPC checks it, then a
//! session cookie. The cookie holds a random session id, never the token; the server keeps
//! id → caller in memory (a restart logs everyone out, which is fine for a dashboard).
//!
//! Cross-site requests are refused three ways: the cookie is `SameSite=Strict` (a cross-site
//! form does not carry it), every form carries the session's CSRF token, and a POST whose
//! `Origin` (or `Sec-Fetch-Site`) says another site is refused. An open coordinator (no token)
//! has no sessions but still needs the CSRF token (one per process), so a web page elsewhere
//! cannot make a browser on the farm's network cancel runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use ring::rand::SecureRandom;
use rota_proto::access::Caller;
use serde::Deserialize;

use super::{layout, Denied, Viewer, Web};
use crate::service::http::refusal;

/// The session cookie's name.
const COOKIE: &str = "rota_session";
/// How long a login lasts.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; past it the oldest go (only holders of a token can log in, but a
/// script logging in forever must not grow the coordinator's memory without bound).
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
struct Session {
    caller: Caller,
    csrf: String,
    since: Instant,
}

/// The logged-in sessions. A `std::sync::Mutex`, never held across an `.await` (style rule 6):
/// each use is one map operation.
#[derive(Debug, Clone)]
pub struct Sessions {
    map: Arc<Mutex<HashMap<String, Session>>>,
    /// The CSRF token of an open coordinator's forms (empty when credentials are set).
    open_csrf: Arc<str>,
}

impl Sessions {
    pub fn new(open: bool) -> Sessions {
        Sessions {
            map: Default::default(),
            open_csrf: if open { random_hex().into() } else { "".into() },
        }
    }

    /// The viewer a session cookie stands for, checked against the role `grpc_method` needs.
    /// None without a cookie or for an unknown or expired one (the caller then falls back to
    /// the request's own credentials, or the login form).
    pub fn viewer(&self, headers: &HeaderMap, grpc_method: &str) -> Result<Option<Viewer>, Denied> {
        let Some(id) = cookie(headers, COOKIE) else {
            return Ok(None);
        };
        let session = {
            let map = self.map.lock().expect("sessions lock");
            map.get(id)
                .filter(|s| s.since.elapsed() < LIFETIME)
                .cloned()
        };
        let Some(session) = session else {
            return Ok(None);
        };
        let (service, method) = grpc_method
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((grpc_method, ""));
        if !session.caller.role.may_call(service, method) {
            return Err(Box::new(refusal(&tonic::Status::permission_denied(
                format!(
                    "you are logged in as {:?} with role {}, which may not call {method}: log in \
                 with a token that may",
                    session.caller.name, session.caller.role
                ),
            ))));
        }
        Ok(Some(Viewer {
            caller: session.caller,
            csrf: session.csrf,
            logged_in: true,
            open: false,
            peer: None,
            seq: 0,
        }))
    }

    /// The CSRF token forms carry for a viewer without a session.
    pub fn open_csrf(&self, open: bool) -> String {
        if open {
            self.open_csrf.to_string()
        } else {
            String::new()
        }
    }

    fn create(&self, caller: Caller) -> String {
        let id = random_hex();
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, s| s.since.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.since)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                caller,
                csrf: random_hex(),
                since: Instant::now(),
            },
        );
        id
    }

    fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.map.lock().expect("sessions lock").remove(id);
        }
    }
}

/// Refuses a POST that another site made: a foreign `Origin` or `Sec-Fetch-Site`, or a form
/// whose CSRF token is not the viewer's. A request authorized by its own `Authorization`
/// header has no token to check (a cross-site form cannot set that header).
pub fn check_post(
    headers: &HeaderMap,
    uri: &Uri,
    viewer: &Viewer,
    csrf: &str,
) -> Result<(), Denied> {
    same_origin(headers, uri)?;
    if !viewer.csrf.is_empty() && !equal(viewer.csrf.as_bytes(), csrf.as_bytes()) {
        return Err(forbidden(
            "refused: the form's CSRF token is not this session's; reload the page and try again",
        ));
    }
    Ok(())
}

fn same_origin(headers: &HeaderMap, uri: &Uri) -> Result<(), Denied> {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(forbidden("refused: the request came from another site"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    let host_of_origin = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    if host.is_empty() || host_of_origin != Some(host) {
        return Err(forbidden(&format!(
            "refused: the request's origin {origin:?} is not this coordinator ({host})"
        )));
    }
    Ok(())
}

fn forbidden(message: &str) -> Denied {
    Box::new(
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response(),
    )
}

#[derive(Deserialize)]
pub struct FormQuery {
    #[serde(default)]
    next: String,
}

/// The login form (and, on an open coordinator, the note that none is needed).
pub async fn form(State(web): State<Web>, Query(q): Query<FormQuery>) -> Response {
    login_page(&web, &q.next, None, StatusCode::OK)
}

fn login_page(web: &Web, next: &str, error: Option<&str>, code: StatusCode) -> Response {
    let open = web.http.credentials.is_open();
    let body = html! {
        @if open {
            p { "This coordinator has no token: no login is needed, and anyone who can reach its port can see and act." }
            p { a href="/" { "to the overview" } }
        } @else {
            @if let Some(error) = error { p.error { (error) } }
            form.login method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Client token " input type="password" name="token" autocomplete="current-password" autofocus; }
                button type="submit" { "Log in" }
            }
            p.hint { "A token with role read may look; role admin may also act." }
        }
    };
    (code, layout::bare("log in", body)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// Checks the token as gRPC would check it for a read, and starts a session.
pub async fn login(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri) {
        return *refused;
    }
    if web.http.credentials.is_open() {
        return Redirect::to("/").into_response();
    }
    let authorization = format!("Bearer {}", f.token.trim());
    let caller = match web.http.credentials.check(
        "/rota.v1.ControlService/Status",
        Some(authorization.as_bytes()),
    ) {
        Ok(caller) => caller,
        Err(status) => {
            let message = if status.code() == tonic::Code::Unauthenticated {
                "wrong token: enter a token this coordinator accepts".to_string()
            } else {
                status.message().to_string()
            };
            return login_page(&web, &f.next, Some(&message), StatusCode::UNAUTHORIZED);
        }
    };
    let id = web.sessions.create(caller);
    let secure = if web.http.tls { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut response = Redirect::to(local_path(&f.next)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session and clears its cookie.
pub async fn logout(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<LogoutForm>,
) -> Response {
    if let Ok(Some(viewer)) = web
        .sessions
        .viewer(&headers, "/rota.v1.ControlService/Status")
    {
        if let Err(refused) = check_post(&headers, &uri, &viewer, &f.csrf) {
            return *refused;
        }
    }
    web.sessions.remove(&headers);
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("rota_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// `next` if it is a path on this site, else `/`: a login link cannot send anyone elsewhere.
pub fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

/// Percent-encodes `text` for a query string.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
