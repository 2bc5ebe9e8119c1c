//! `GET /runs/{number}`: everything about one run: its fields, every attempt, its
//! environment, and the log of any attempt (stdout and stderr side by side, or one of them),
//! tailing live while the attempt runs.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use maud::{html, Markup};
use rota_proto as pb;
use rota_proto::control_service_server::ControlService as _;
use serde::Deserialize;

use super::layout::{self, RunCells};
use super::{failure, request, text, Viewer, Web};
use crate::logs::{RunId, Stream};
use crate::store::is_final_state;

/// The most of each stream the page shows (its end); the download has it all.
const WINDOW: u64 = 1 << 20;

#[derive(Deserialize)]
pub struct RunQuery {
    #[serde(default)]
    attempt: String,
    #[serde(default)]
    stream: String,
}

pub async fn page(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path(number): Path<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let viewer = match web.viewer(&headers, "GetRun", uri.path()) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let run = match web
        .control
        .get_run(request(&viewer, pb::RunRef { run: number }))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return failure(&viewer, &status),
    };
    let attempt = match q.attempt.as_str() {
        "" => run.attempt,
        a => match a.parse::<u32>() {
            Ok(n) if n >= 1 && n <= run.attempt => n,
            _ => {
                return failure(
                    &viewer,
                    &tonic::Status::not_found(format!(
                        "run {} has no attempt {a:?} (its latest is {})",
                        run.number, run.attempt
                    )),
                )
            }
        },
    };
    let streams: &[Stream] = match q.stream.as_str() {
        "stdout" => &[Stream::Stdout],
        "stderr" => &[Stream::Stderr],
        "" | "both" => &[Stream::Stdout, Stream::Stderr],
        other => {
            return failure(
                &viewer,
                &tonic::Status::invalid_argument(format!(
                    "stream must be stdout, stderr or both, got {other:?}"
                )),
            )
        }
    };
    let mut logs = Vec::new();
    if attempt > 0 {
        for &s in streams {
            match window(&web, &viewer, &run, attempt, s).await {
                Ok(w) => logs.push((s, w)),
                Err(status) => return failure(&viewer, &status),
            }
        }
    }
    // Who did what to this run ("cancelled by ops-token at …"); the page still shows without it.
    let history = web
        .control
        .list_audit(request(
            &viewer,
            pb::ListAuditRequest {
                run: run.number,
                since_ms: 0,
                limit: 100,
            },
        ))
        .await
        .map(|r| r.into_inner().entries)
        .unwrap_or_default();
    let title = format!("run {}", run.number);
    layout::page(
        &viewer,
        &title,
        body(&viewer, &run, attempt, &q.stream, &logs, &history),
    )
    .into_response()
}

/// The last [`WINDOW`] bytes of one stream: (first offset, end offset, rendered).
struct Window {
    start: u64,
    end: u64,
    html: Markup,
}

async fn window(
    web: &Web,
    viewer: &Viewer,
    run: &pb::Run,
    attempt: u32,
    s: Stream,
) -> Result<Window, tonic::Status> {
    let len = RunId::parse(&run.id).map_or(0, |id| web.http.engine.logs.len(&id, attempt, s));
    let start = len.saturating_sub(WINDOW);
    let req = pb::LogsRequest {
        run: run.id.clone(),
        follow: false,
        stdout: s == Stream::Stdout,
        stderr: s == Stream::Stderr,
        attempt,
        stdout_offset: start,
        stderr_offset: start,
    };
    let mut stream = web.control.logs(request(viewer, req)).await?.into_inner();
    let mut bytes = Vec::new();
    let mut end = start;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        end = chunk.offset + chunk.data.len() as u64;
        bytes.extend_from_slice(&chunk.data);
    }
    Ok(Window {
        start,
        end,
        html: text::render(&bytes),
    })
}

fn body(
    viewer: &Viewer,
    run: &pb::Run,
    attempt: u32,
    stream: &str,
    logs: &[(Stream, Window)],
    history: &[pb::AuditEntry],
) -> Markup {
    let now = layout::now();
    let cells = RunCells::of(run, now);
    let back = format!("/runs/{}", run.number);
    let live = !is_final_state(&run.state) && attempt == run.attempt && attempt > 0;
    html! {
        div data-run=(run.number) {
            // Refreshed with the sections too: a change the live feed missed (one made before
            // the page's event stream opened) still reaches the heading.
            h1 id="title" data-refresh { "Run #" (run.number) " " (run.name) " " (layout::badge(&run.state)) }
            section.actions id="actions" data-refresh {
                @if !cells.finished {
                    (layout::action(viewer, "cancel", &back, &[("run", &run.id)], "Cancel"))
                } @else {
                    (layout::action(viewer, "retry", &back, &[("run", &run.id)], "Retry"))
                }
                (layout::action(viewer, "retire", &back, &[("run", &run.id)], "Retire"))
            }
            section id="fields" data-refresh {
                table.fields {
                    (field("id", html! { (run.id) }))
                    (field("jobset", html! { a href={ "/jobsets/" (super::session::encode(&run.jobset)) } { (run.jobset) } }))
                    (field("command", html! { code { (command(run)) } }))
                    (field("state", layout::badge(&run.state)))
                    (field("waiting reason", html! { span data-f="waiting_reason" { (cells.waiting_reason) } }))
                    (field("priority", html! { (run.priority) }))
                    (field("groups", html! { (run.groups.join(", ")) }))
                    (field("concurrency group", html! { span data-f="group" { (cells.group) } }))
                    (field("agent", html! { span data-f="agent" { (cells.agent) } }))
                    (field("attempt", html! { span data-f="attempt" { (cells.attempt) } " of at most " (run.retries + 1) }))
                    (field("exit", html! { span data-f="exit" { (cells.exit) } }))
                    (field("error", html! { (run.error) }))
                    (field("submitted", html! { (layout::time(run.submitted_at_ms)) }))
                    (field("started", html! { (layout::time(run.started_at_ms)) }))
                    (field("finished", html! { (layout::time(run.finished_at_ms)) }))
                    (field("duration", html! { span data-f="duration" { (cells.duration) } }))
                    (field("after", html! {
                        @for a in &run.after { a href={ "/runs/" (a) } { "#" (a) } " " }
                    }))
                    (field("log bytes", html! { "stdout " (run.stdout_len) ", stderr " (run.stderr_len) }))
                    (field("trigger", html! { (run.trigger_type) }))
                }
            }
            section id="attempts" data-refresh {
                h2 { "Attempts" }
                @if run.attempts.is_empty() { p.empty { "Not started yet." } }
                @else {
                    table.attempts {
                        thead { tr { th { "attempt" } th { "state" } th { "agent" } th { "group" } th { "started" } th { "duration" } th { "exit" } } }
                        tbody {
                            @for a in &run.attempts {
                                tr class=[(a.attempt == attempt).then_some("chosen")] {
                                    td { a href={ (back) "?attempt=" (a.attempt) } { (a.attempt) } }
                                    td { (layout::badge(&a.state)) }
                                    td { (a.agent) }
                                    td { (a.concurrency_group) }
                                    td { (layout::time(a.started_at_ms)) }
                                    td { (layout::duration(a.started_at_ms, a.finished_at_ms, now)) }
                                    td { (layout::exit(a.exit_code, a.signal, &a.error)) }
                                }
                            }
                        }
                    }
                }
            }
            section id="history" {
                h2 { "History" }
                @if history.is_empty() { p.empty { "No calls recorded for this run." } }
                @else {
                    ul.history {
                        @for a in history.iter().rev() {
                            li { (rota_proto::access::audit_verb(&a.method)) " by " b { (a.caller) } " (" (a.role) ") at " (layout::time(a.at_ms)) }
                        }
                    }
                }
            }
            section {
                h2 { "Environment" }
                @let mut env: Vec<_> = run.env.iter().collect();
                @let () = env.sort();
                table.env {
                    @for (k, v) in env { tr { th { (k) } td { code { (v) } } } }
                }
            }
            section.logs {
                h2 { "Log" @if attempt > 0 { " of attempt " (attempt) } }
                @if attempt == 0 { p.empty { "No attempt has started yet." } }
                @else {
                    p.streams {
                        @for (s, label) in [("both", "side by side"), ("stdout", "stdout"), ("stderr", "stderr")] {
                            a class=[(stream == s || (stream.is_empty() && s == "both")).then_some("chosen")]
                                href={ (back) "?attempt=" (attempt) "&stream=" (s) } { (label) } " "
                        }
                    }
                    div.panes id="tail" data-live=[live.then_some("1")]
                        data-src={ "/runs/" (run.number) "/tail?attempt=" (attempt) "&stream=" (if stream.is_empty() { "both" } else { stream }) } {
                        @for (s, w) in logs {
                            @let name = s.ext();
                            div.pane {
                                h3 {
                                    (name) " "
                                    a.download href={ (back) "/log?stream=" (name) "&attempt=" (attempt) } download { "raw" }
                                    @if w.start > 0 { span.hint { " (the last " (w.end - w.start) " bytes; the raw download has all)" } }
                                }
                                pre.log id={ "log-" (name) } data-stream=(name) data-offset=(w.end) { (w.html) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn field(name: &str, value: Markup) -> Markup {
    html! { tr { th { (name) } td { (value) } } }
}

fn command(run: &pb::Run) -> String {
    if run.shell {
        run.command.join(" ")
    } else {
        run.command
            .iter()
            .map(|a| {
                if a.contains(' ') || a.is_empty() {
                    format!("{a:?}")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}
