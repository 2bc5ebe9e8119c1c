//! The page shell every dashboard page shares, and the one formatting of a run's cells that
//! both the HTML and the live events use (so a patched row reads as a freshly loaded one).

use maud::{html, Markup, DOCTYPE};
use rota_proto as pb;
use serde::Serialize;

use super::Viewer;

/// A full page: navigation, the open-coordinator banner, the body in `<main>`.
pub fn page(viewer: &Viewer, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                header.top {
                    a.brand href="/" { "rota" }
                    nav {
                        a href="/" { "Overview" }
                        a href="/jobs" { "Jobs" }
                    }
                    span.live-state id="live-state" title="live updates" data-seq=(viewer.seq) {}
                    @if viewer.logged_in {
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            span.who { (viewer.caller.name) " (" (viewer.caller.role) ")" }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                @if viewer.open {
                    p.banner.open-warning {
                        "This coordinator has no token: anyone who can reach its port can see \
                         everything here and act (cancel, retry, trigger, drain)."
                    }
                }
                main id="main" { (body) }
                div.csrf hidden data-csrf=(viewer.csrf) {}
            }
        }
    }
}

/// A page without navigation (the login form).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                header.top { a.brand href="/" { "rota" } }
                main id="main" { (body) }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · rota" }
        link rel="stylesheet" href=(super::assets::CSS_PATH);
        script src=(super::assets::JS_PATH) defer {}
    }
}

/// A state as a coloured badge; `data-f="state"` lets the live script patch it.
pub fn badge(state: &str) -> Markup {
    html! { span class={ "badge s-" (state) } data-f="state" { (state) } }
}

/// A form that posts one action with the viewer's CSRF token and the page to come back to.
pub fn action(
    viewer: &Viewer,
    verb: &str,
    back: &str,
    fields: &[(&str, &str)],
    label: &str,
) -> Markup {
    html! {
        form.action method="post" action={ "/actions/" (verb) } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="back" value=(back);
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" data-action=(verb) { (label) }
        }
    }
}

/// The cells of a run's row as text, the same in the page and in a live event.
#[derive(Debug, Serialize)]
pub struct RunCells {
    pub number: u64,
    pub jobset: String,
    pub state: String,
    pub waiting_reason: String,
    pub agent: String,
    pub group: String,
    pub attempt: String,
    pub duration: String,
    pub exit: String,
    pub finished: bool,
}

impl RunCells {
    pub fn of(run: &pb::Run, now_ms: u64) -> RunCells {
        RunCells {
            number: run.number,
            jobset: run.jobset.clone(),
            state: run.state.clone(),
            waiting_reason: run.waiting_reason.clone(),
            agent: run.agent.clone(),
            group: run.concurrency_group.clone(),
            attempt: run.attempt.to_string(),
            duration: duration(run.started_at_ms, run.finished_at_ms, now_ms),
            exit: exit(run.exit_code, run.signal, &run.error),
            finished: crate::store::is_final_state(&run.state),
        }
    }
}

/// How long an attempt ran (or has been running); empty before it started.
pub fn duration(started_ms: u64, finished_ms: u64, now_ms: u64) -> String {
    if started_ms == 0 {
        return String::new();
    }
    let end = if finished_ms == 0 {
        now_ms
    } else {
        finished_ms
    };
    let ms = end.saturating_sub(started_ms);
    match ms {
        0..=9_999 => format!("{:.1}s", ms as f64 / 1000.0),
        10_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// An exit as one short text: the code, the signal, or the error.
pub fn exit(code: Option<i32>, signal: Option<i32>, error: &str) -> String {
    match (code, signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => error.to_string(),
    }
}

/// A unix-ms time as UTC text; empty for 0 (never).
pub fn time(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Now, for durations of running runs.
pub fn now() -> u64 {
    crate::time::now_millis()
}
