//! `POST /actions/{verb}`: the dashboard's buttons. Each is the gRPC method of the same name,
//! called through the `ControlService` handler with the viewer as its caller, so the checks,
//! the engine command and the one-line refusal are the CLI's. The request is first checked
//! against the credentials as that method (`Cancel`, `SetParallel`, …) and against cross-site
//! use (`session::check_post`). Success goes back to the page; a failure shows its message.

use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use rota_proto as pb;
use rota_proto::control_service_server::ControlService as _;
use serde::Deserialize;

use super::session::{check_post, local_path};
use super::{failure, peer_of, request, Viewer, Web};

/// Every field any action's form may send; each action reads the ones it needs.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ActionForm {
    csrf: String,
    back: String,
    run: String,
    jobset: String,
    parallel: String,
    group: String,
    max: String,
    agent: String,
    timeout: String,
    job: String,
}

/// The gRPC method a verb is.
fn method(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "cancel" => "Cancel",
        "retry" => "Retry",
        "retire" => "Retire",
        "parallel" => "SetParallel",
        "group-max" => "SetGroupMax",
        "drain" => "Drain",
        "trigger" => "Trigger",
        _ => return None,
    })
}

pub async fn act(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    extensions: Extensions,
    Path(verb): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    let Some(method) = method(&verb) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no action {verb:?}: cancel, retry, retire, parallel, group-max, drain or trigger\n"),
        )
            .into_response();
    };
    let viewer = match web.viewer(&headers, method, local_path(&f.back)) {
        Ok(v) => Viewer {
            peer: peer_of(&extensions),
            ..v
        },
        Err(refused) => return *refused,
    };
    if let Err(refused) = check_post(&headers, &uri, &viewer, &f.csrf) {
        return *refused;
    }
    let c = &web.control;
    let done: Result<(), tonic::Status> = async {
        match verb.as_str() {
            "cancel" => c
                .cancel(request(&viewer, pb::RunRef { run: f.run.clone() }))
                .await
                .map(drop),
            "retry" => c
                .retry(request(
                    &viewer,
                    pb::RetryRequest {
                        run: f.run.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "retire" => c
                .retire(request(&viewer, pb::RunRef { run: f.run.clone() }))
                .await
                .map(drop),
            "parallel" => {
                let parallel = whole("parallel", &f.parallel)?;
                c.set_parallel(request(
                    &viewer,
                    pb::SetParallelRequest {
                        name: f.jobset.clone(),
                        parallel,
                    },
                ))
                .await
                .map(drop)
            }
            "group-max" => {
                let max = whole("max", &f.max)?;
                c.set_group_max(request(
                    &viewer,
                    pb::SetGroupMaxRequest {
                        name: f.group.clone(),
                        max,
                    },
                ))
                .await
                .map(drop)
            }
            "drain" => {
                let timeout_ms = match f.timeout.trim() {
                    "" => 0,
                    t => rota_proto::duration::parse_duration(t)
                        .map_err(|e| tonic::Status::invalid_argument(format!("timeout: {e}")))?
                        .as_millis() as u64,
                };
                c.drain(request(
                    &viewer,
                    pb::DrainRequest {
                        agent: f.agent.clone(),
                        timeout_ms,
                    },
                ))
                .await
                .map(drop)
            }
            _ => c
                .trigger(request(
                    &viewer,
                    pb::TriggerRequest {
                        job: f.job.clone(),
                        env: Default::default(),
                    },
                ))
                .await
                .map(drop),
        }
    }
    .await;
    match done {
        Ok(()) => Redirect::to(local_path(&f.back)).into_response(),
        Err(status) => failure(&viewer, &status),
    }
}

fn whole(name: &str, text: &str) -> Result<u32, tonic::Status> {
    text.trim().parse().map_err(|_| {
        tonic::Status::invalid_argument(format!("{name} must be a whole number, got {text:?}"))
    })
}
