//! `GET /jobs`: the defined jobs (from `rota apply`), their schedules and next fire, each
//! with a trigger button.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use maud::html;
use rota_proto as pb;
use rota_proto::control_service_server::ControlService as _;

use super::{failure, layout, request, Web};

pub async fn page(State(web): State<Web>, headers: HeaderMap, uri: Uri) -> Response {
    let viewer = match web.viewer(&headers, "ListJobs", uri.path()) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let jobs = match web
        .control
        .list_jobs(request(&viewer, pb::ListJobsRequest {}))
        .await
    {
        Ok(r) => r.into_inner().jobs,
        Err(status) => return failure(&viewer, &status),
    };
    let body = html! {
        h1 { "Jobs" }
        @if jobs.is_empty() { p.empty { "No jobs are defined (rota apply a config to define some)." } }
        @else {
            table.jobs {
                thead { tr { th { "job" } th { "command" } th { "schedule" } th { "time zone" } th { "next fire" } th { "groups" } th { "priority" } th { "retries" } th {} } }
                tbody {
                    @for job in &jobs {
                        tr {
                            td { (job.name) }
                            td { code { (job.command.join(" ")) } }
                            td { code { (job.schedule) } }
                            td { (job.schedule_timezone) }
                            td { (layout::time(job.next_run_at_ms)) }
                            td { (job.concurrency_groups.join(", ")) }
                            td { (job.priority) }
                            td { (job.retries) }
                            td { (layout::action(&viewer, "trigger", "/jobs", &[("job", &job.name)], "Trigger")) }
                        }
                    }
                }
            }
        }
    };
    layout::page(&viewer, "jobs", body).into_response()
}
