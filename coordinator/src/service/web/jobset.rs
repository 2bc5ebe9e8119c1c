//! `GET /jobsets/{name}`: one jobset's runs, a page at a time. Paging is by keyset (`after`
//! = the last run number shown, the ListRuns `after_number`), which the store answers from an
//! index, so the 1000th page costs what the first does however many runs the jobset holds.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use rota_proto as pb;
use rota_proto::control_service_server::ControlService as _;
use serde::Deserialize;

use super::layout::{self, RunCells};
use super::session::encode;
use super::{failure, request, Viewer, Web};
use crate::store::RUN_STATES;

/// Runs per page unless the query asks otherwise, and the most it may ask for.
const PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    limit: String,
}

pub async fn page(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let viewer = match web.viewer(&headers, "ListRuns", uri.path()) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let (after, limit) = match paging(&q) {
        Ok(p) => p,
        Err(message) => return failure(&viewer, &tonic::Status::invalid_argument(message)),
    };
    match body(&web, &viewer, &name, &q.state, after, limit).await {
        Ok(body) => layout::page(&viewer, &name, body).into_response(),
        Err(status) => failure(&viewer, &status),
    }
}

fn paging(q: &PageQuery) -> Result<(u64, u32), String> {
    let after = match q.after.as_str() {
        "" => 0,
        a => a
            .parse()
            .map_err(|_| format!("after must be a run number, got {a:?}"))?,
    };
    let limit = match q.limit.as_str() {
        "" => PAGE,
        l => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(format!("limit must be 1 to {MAX_PAGE}, got {l:?}")),
        },
    };
    Ok((after, limit))
}

async fn body(
    web: &Web,
    viewer: &Viewer,
    name: &str,
    state: &str,
    after: u64,
    limit: u32,
) -> Result<Markup, tonic::Status> {
    let c = &web.control;
    let jobset = c
        .get_jobset(request(viewer, pb::GetJobsetRequest { name: name.into() }))
        .await?
        .into_inner();
    // One more than shown, to know whether there is a next page.
    let mut runs = c
        .list_runs(request(
            viewer,
            pb::ListRunsRequest {
                jobset: name.into(),
                state: state.into(),
                limit: limit + 1,
                after_number: after,
            },
        ))
        .await?
        .into_inner()
        .runs;
    let more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    let base = format!("/jobsets/{}", encode(name));
    let here = format!("{base}?state={}&after={after}&limit={limit}", encode(state));
    let now = layout::now();
    let total: u64 = jobset.counts.values().sum();
    Ok(html! {
        h1 { "Jobset " (jobset.name) " " (layout::badge(&jobset.state)) }
        section id="summary" data-refresh {
            p.counts {
                a href=(base) class=[state.is_empty().then_some("chosen")] { "all " (total) } " "
                @for s in RUN_STATES {
                    @let n = jobset.counts.get(*s).copied().unwrap_or(0);
                    a class={ "badge s-" (s) @if state == *s { " chosen" } } href={ (base) "?state=" (s) } { (s) " " (n) } " "
                }
            }
        }
        form.action.inline method="post" action="/actions/parallel" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="back" value=(here);
            input type="hidden" name="jobset" value=(jobset.name);
            label { "parallel (0 = unlimited) " input type="number" name="parallel" min="0" value=(jobset.parallel); }
            button type="submit" data-action="parallel" { "Set" }
        }
        table.runs id="runs" data-jobset=(jobset.name) data-more=[more.then_some("1")] {
            thead { tr { th { "#" } th { "name" } th { "state" } th { "waiting" } th { "agent" } th { "group" } th { "attempt" } th { "duration" } th { "exit" } } }
            tbody {
                @for run in &runs { (row(run, now)) }
            }
        }
        @if runs.is_empty() { p.empty { "No runs" @if !state.is_empty() { " in state " (state) } "." } }
        nav.pages {
            @if after > 0 { a href={ (base) "?state=" (encode(state)) "&limit=" (limit) } { "« first" } " " }
            @if more {
                @if let Some(last) = runs.last() {
                    a rel="next" href={ (base) "?state=" (encode(state)) "&after=" (last.number) "&limit=" (limit) } { "next »" }
                }
            }
        }
    })
}

/// One run as a table row, patched in place by the live script (`data-run`, `data-f`).
pub fn row(run: &pb::Run, now: u64) -> Markup {
    let cells = RunCells::of(run, now);
    html! {
        tr data-run=(run.number) {
            td { a href={ "/runs/" (run.number) } { (run.number) } }
            td { (run.name) }
            td { (layout::badge(&cells.state)) }
            td data-f="waiting_reason" { (cells.waiting_reason) }
            td data-f="agent" { (cells.agent) }
            td data-f="group" { (cells.group) }
            td data-f="attempt" { (cells.attempt) }
            td data-f="duration" { (cells.duration) }
            td data-f="exit" { (cells.exit) }
        }
    }
}
