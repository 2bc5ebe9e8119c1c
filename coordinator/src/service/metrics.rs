//! `GET /metrics`: the Prometheus scrape. A thin adapter: checked as `Status` (a read token
//! may scrape; an open coordinator is open), one engine command for the state numbers, the
//! registry encodes.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::prometheus_text;

use super::http::{HttpState, Refused};
use crate::engine::Command;
use crate::metrics::footprint;

/// What OpenMetrics scrapers get (Prometheus asks for it first in its `Accept`).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn scrape(
    State(state): State<HttpState>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    state.authorize(&headers, "/rota.v1.ControlService/Status")?;
    let snapshot = match state.engine.ask(Command::Metrics).await {
        Ok(s) => s,
        // The engine is stopping: nothing to read.
        Err(err) => {
            return Ok((StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")).into_response())
        }
    };
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    // A few `stat`s, off the runtime's threads.
    let dir = state.engine.config.data_dir.clone();
    let disk = tokio::task::spawn_blocking(move || footprint::measure(&dir))
        .await
        .unwrap_or_default();
    let body = state.engine.metrics.render(&snapshot, &disk, openmetrics);
    let content_type = if openmetrics {
        OPENMETRICS
    } else {
        prometheus_text::CONTENT_TYPE
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response())
}
