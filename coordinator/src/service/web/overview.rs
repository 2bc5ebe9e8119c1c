//! `GET /`: the farm at a glance. Jobsets with their progress, groups with their use, agents
//! with their slots; the live script refreshes the sections when runs change.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use rota_proto as pb;
use rota_proto::control_service_server::ControlService as _;

use super::{failure, layout, request, Viewer, Web};
use crate::store::{is_final_state, RUN_STATES};

pub async fn page(State(web): State<Web>, headers: HeaderMap, uri: Uri) -> Response {
    let viewer = match web.viewer(&headers, "ListJobsets", uri.path()) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    match sections(&web, &viewer).await {
        Ok(body) => layout::page(&viewer, "overview", body).into_response(),
        Err(status) => failure(&viewer, &status),
    }
}

async fn sections(web: &Web, viewer: &Viewer) -> Result<Markup, tonic::Status> {
    let c = &web.control;
    let jobsets = c
        .list_jobsets(request(viewer, pb::ListJobsetsRequest {}))
        .await?
        .into_inner()
        .jobsets;
    let groups = c
        .list_groups(request(viewer, pb::ListGroupsRequest {}))
        .await?
        .into_inner()
        .groups;
    let agents = c
        .list_agents(request(viewer, pb::ListAgentsRequest {}))
        .await?
        .into_inner()
        .agents;
    Ok(html! {
        section id="jobsets" data-refresh {
            h2 { "Jobsets" }
            @if jobsets.is_empty() { p.empty { "No jobsets yet." } }
            @else { (jobsets_table(&jobsets)) }
        }
        section id="groups" data-refresh {
            h2 { "Concurrency groups" }
            @if groups.is_empty() { p.empty { "No groups." } }
            @else { (groups_table(viewer, &groups)) }
        }
        section id="agents" data-refresh {
            h2 { "Agents" }
            @if agents.is_empty() { p.empty { "No agents connected." } }
            @else { (agents_table(viewer, &agents)) }
        }
    })
}

fn jobsets_table(jobsets: &[pb::Jobset]) -> Markup {
    html! {
        table.jobsets {
            thead { tr { th { "jobset" } th { "state" } th { "progress" } th { "by state" } th { "parallel" } } }
            tbody {
                @for js in jobsets {
                    @let total: u64 = js.counts.values().sum();
                    @let done: u64 = js.counts.iter().filter(|(s, _)| is_final_state(s)).map(|(_, n)| n).sum();
                    tr {
                        td { a href={ "/jobsets/" (super::session::encode(&js.name)) } { (js.name) } }
                        td { (layout::badge(&js.state)) }
                        td.progress {
                            progress value=(done) max=(total.max(1)) {}
                            " " span.count { (done) "/" (total) }
                        }
                        td.counts {
                            @for state in RUN_STATES {
                                @if let Some(n) = js.counts.get(*state).filter(|n| **n > 0) {
                                    span class={ "badge s-" (state) } { (state) " " (n) } " "
                                }
                            }
                        }
                        td { @if js.parallel == 0 { "unlimited" } @else { (js.parallel) } }
                    }
                }
            }
        }
    }
}

fn groups_table(viewer: &Viewer, groups: &[pb::Group]) -> Markup {
    html! {
        table.groups {
            thead { tr { th { "group" } th { "running / max" } th { "waiting" } th { "agents serving" } th { "set max" } } }
            tbody {
                @for g in groups {
                    tr {
                        td { (g.name) }
                        td { (g.running) " / " (g.max) @if !g.defined { span.hint { " (implicit)" } } }
                        td { (g.waiting) }
                        td { (g.agents.join(", ")) }
                        td {
                            form.action.inline method="post" action="/actions/group-max" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                input type="hidden" name="back" value="/";
                                input type="hidden" name="group" value=(g.name);
                                input type="number" name="max" min="0" value=(g.max) aria-label="max";
                                button type="submit" data-action="group-max" { "Set" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn agents_table(viewer: &Viewer, agents: &[pb::Agent]) -> Markup {
    let now = layout::now();
    html! {
        table.agents {
            thead { tr { th { "agent" } th { "state" } th { "slots in use" } th { "groups" } th { "running runs" } th { "last seen" } th {} } }
            tbody {
                @for a in agents {
                    tr {
                        td { (a.name) }
                        td { (layout::badge(&a.state)) }
                        td { (a.running) " / " (a.slots) }
                        td { (a.groups.join(", ")) }
                        td {
                            @for r in &a.running_runs {
                                a href={ "/runs/" (r) } { "#" (r) } " "
                            }
                        }
                        td { @if a.last_seen_ms > 0 { (layout::duration(a.last_seen_ms, 0, now)) " ago" } }
                        td {
                            @if a.state == "connected" {
                                (layout::action(viewer, "drain", "/", &[("agent", &a.name)], "Drain"))
                            }
                        }
                    }
                }
            }
        }
    }
}
