//! The dashboard's stylesheet and script, compiled into the binary (no CDN, no npm: it works
//! air-gapped). Their paths carry the package version, so a browser never mixes an old
//! script with a new page, and they may be cached for long.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("dashboard.css");
const JS: &str = include_str!("dashboard.js");

pub const CSS_PATH: &str = concat!("/assets/dashboard-", env!("CARGO_PKG_VERSION"), ".css");
pub const JS_PATH: &str = concat!("/assets/dashboard-", env!("CARGO_PKG_VERSION"), ".js");

pub async fn serve(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    let (body, kind) = if path == CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == JS_PATH {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, format!("not found: {path}\n")).into_response();
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
