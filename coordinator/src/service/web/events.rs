//! `GET /events`: run changes as server-sent events, for the live script.
//!
//! The tabs share one [`Feed`]: a task that holds the one receiver of the engine's run
//! broadcast while any tab is open, renders each change once (its cells as JSON) and passes
//! it on to every tab. Twenty open dashboards thus cost one conversion per change, not
//! twenty, and with no tab open there is no receiver at all (the engine then skips building
//! the broadcast). A closed tab drops its receiver; a tab that falls behind by more than the
//! feed keeps is told to reload its sections (`reload`) instead of being buffered for.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};

use super::layout::{self, RunCells};
use super::Web;
use crate::engine::EngineHandle;
use crate::service::streams::{until_shutdown, BoxStream};

/// Changes a tab may fall behind by before it is told to reload.
const KEPT: usize = 1024;

/// Changes as the tabs receive them: every run change the relay found waiting at once, each
/// rendered; `missed` says changes were lost before these (the tabs reload).
#[derive(Debug, Default)]
pub struct Changes {
    runs: Vec<Change>,
    missed: bool,
}

#[derive(Debug)]
struct Change {
    number: u64,
    jobset: String,
    json: String,
}

/// The shared, rendered run changes (see the module comment).
#[derive(Debug, Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Changes>>,
    /// Whether the relay task runs. Checked and set under this lock together with subscribing
    /// (by a tab) and with the relay's "no tab left" check, so a tab never subscribes to a
    /// relay that is just ending. A `std::sync::Mutex` held for no `.await` (style rule 6).
    running: Arc<Mutex<bool>>,
}

impl Feed {
    pub fn new() -> Feed {
        Feed {
            tx: broadcast::channel(KEPT).0,
            running: Arc::new(Mutex::new(false)),
        }
    }

    fn subscribe(
        &self,
        engine: &EngineHandle,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> broadcast::Receiver<Arc<Changes>> {
        let mut running = self.running.lock().expect("feed lock");
        let rx = self.tx.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(relay(self.clone(), engine.events.subscribe(), shutdown));
        }
        rx
    }
}

/// At most this many changes go to the tabs as one event.
const BATCH: usize = 256;

/// Renders each engine change once for every tab, passing on together the changes that
/// arrived together (one engine batch: one write per tab, not one per run); ends with the
/// last tab (at the next change) or at shutdown.
async fn relay(
    feed: Feed,
    mut engine: broadcast::Receiver<rota_proto::Run>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let render = |run: rota_proto::Run| Change {
        number: run.number,
        json: serde_json::to_string(&RunCells::of(&run, layout::now())).unwrap_or_default(),
        jobset: run.jobset,
    };
    loop {
        let mut changes = Changes::default();
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            r = engine.recv() => match r {
                Ok(run) => changes.runs.push(render(run)),
                Err(RecvError::Lagged(_)) => changes.missed = true,
                Err(RecvError::Closed) => break,
            },
        }
        while changes.runs.len() < BATCH {
            match engine.try_recv() {
                Ok(run) => changes.runs.push(render(run)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => changes.missed = true,
                Err(_) => break,
            }
        }
        if feed.tx.receiver_count() == 0 {
            let mut running = feed.running.lock().expect("feed lock");
            if feed.tx.receiver_count() == 0 {
                *running = false;
                return;
            }
        }
        let _ = feed.tx.send(Arc::new(changes));
    }
    *feed.running.lock().expect("feed lock") = false;
}

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
        return *refused;
    }
    let run: Option<u64> = q.run.parse().ok();
    let jobset = q.jobset;
    let rx = web
        .feed
        .subscribe(&web.http.engine, web.http.shutdown.clone());
    // Read after subscribing: a later change arrives as an event, an earlier one moved it.
    let seq = web.http.engine.published.load(Ordering::SeqCst);
    let hello = Event::default().event("hello").data(seq.to_string());
    // Watch's own shape (a stream that ends at shutdown), then filtered and shown.
    let changes: BoxStream<Option<Arc<Changes>>> =
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            let item = match rx.recv().await {
                Ok(changes) => Some(changes),
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(item), rx))
        }));
    let events = until_shutdown(changes, web.http.shutdown.clone()).filter_map(move |item| {
        let event = match item {
            Ok(Some(changes)) if !changes.missed => {
                let shown: Vec<&str> = changes
                    .runs
                    .iter()
                    .filter(|c| run.is_none_or(|n| n == c.number))
                    .filter(|c| jobset.is_empty() || jobset == c.jobset)
                    .map(|c| c.json.as_str())
                    .collect();
                (!shown.is_empty()).then(|| {
                    Event::default()
                        .event("runs")
                        .data(format!("[{}]", shown.join(",")))
                })
            }
            Ok(_) => Some(Event::default().event("reload").data("missed changes")),
            Err(_) => Some(
                Event::default()
                    .event("bye")
                    .data("coordinator is shutting down"),
            ),
        };
        futures::future::ready(event.map(Ok::<_, Infallible>))
    });
    let events = futures::stream::once(futures::future::ready(Ok(hello))).chain(events);
    Sse::new(super::counted(&web, events))
        .keep_alive(KeepAlive::default())
        .into_response()
}
