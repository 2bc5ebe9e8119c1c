//! `GET /events`: run changes as server-sent events, for the live script. Each tab holds one
//! receiver of the engine's broadcast; a closed tab drops it (the broadcast then skips it, no
//! cost), and a tab that falls behind by more than the broadcast keeps is told to reload its
//! sections (`reload`) instead of being buffered for.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rota_proto as pb;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::layout::{self, RunCells};
use super::Web;
use crate::service::streams::{until_shutdown, BoxStream};

#[derive(Deserialize)]
pub struct EventsQuery {
    /// Only runs of this jobset (the jobset page).
    #[serde(default)]
    jobset: String,
    /// Only this run (the run page).
    #[serde(default)]
    run: String,
}

pub async fn stream(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<EventsQuery>,
) -> Response {
    if let Err(refused) = web.viewer(&headers, "Watch", uri.path()) {
        return refused;
    }
    let run: Option<u64> = q.run.parse().ok();
    let jobset = q.jobset;
    let rx = web.http.engine.events.subscribe();
    // Watch's own shape (a stream of runs that ends at shutdown), then filtered and shown.
    let runs: BoxStream<Option<pb::Run>> =
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            let item = match rx.recv().await {
                Ok(run) => Some(run),
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(item), rx))
        }));
    let events = until_shutdown(runs, web.http.shutdown.clone()).filter_map(move |item| {
        let event = match item {
            Ok(Some(r))
                if run.is_none_or(|n| n == r.number)
                    && (jobset.is_empty() || jobset == r.jobset) =>
            {
                Event::default()
                    .event("run")
                    .json_data(RunCells::of(&r, layout::now()))
                    .ok()
            }
            Ok(Some(_)) => None,
            Ok(None) => Some(Event::default().event("reload").data("missed changes")),
            Err(_) => Some(
                Event::default()
                    .event("bye")
                    .data("coordinator is shutting down"),
            ),
        };
        futures::future::ready(event.map(Ok::<_, Infallible>))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
