//! A run's log for the browser: the raw bytes as a download, and a live tail as server-sent
//! events. Both are the gRPC `Logs` stream (same checks, same offsets, same end at the
//! attempt's end or at shutdown), read through the `ControlService` handler.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rota_proto as pb;
use rota_proto::control_service_server::ControlService as _;
use serde::{Deserialize, Serialize};

use super::text::Terminal;
use super::{failure, request, Denied, Viewer, Web};

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    stream: String,
    #[serde(default)]
    attempt: String,
    #[serde(default)]
    stdout_offset: String,
    #[serde(default)]
    stderr_offset: String,
}

/// Which streams a query names: `stdout`, `stderr`, or (empty, `both`) both.
fn streams(q: &LogQuery) -> Result<(bool, bool), String> {
    match q.stream.as_str() {
        "stdout" => Ok((true, false)),
        "stderr" => Ok((false, true)),
        "" | "both" => Ok((true, true)),
        other => Err(format!(
            "stream must be stdout, stderr or both, got {other:?}"
        )),
    }
}

fn number(name: &str, text: &str) -> Result<u64, String> {
    match text {
        "" => Ok(0),
        t => t
            .parse()
            .map_err(|_| format!("{name} must be a whole number, got {t:?}")),
    }
}

fn logs_request(run: String, q: &LogQuery, follow: bool) -> Result<pb::LogsRequest, String> {
    let (stdout, stderr) = streams(q)?;
    let attempt = number("attempt", &q.attempt)?;
    Ok(pb::LogsRequest {
        run,
        follow,
        stdout,
        stderr,
        attempt: u32::try_from(attempt).map_err(|_| format!("no attempt {attempt}"))?,
        stdout_offset: number("stdout_offset", &q.stdout_offset)?,
        stderr_offset: number("stderr_offset", &q.stderr_offset)?,
    })
}

fn checked(web: &Web, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Denied> {
    web.viewer(headers, "Logs", uri.path())
}

/// `GET /runs/{n}/log?stream=stdout&attempt=k`: one stream's raw bytes, as stored.
pub async fn download(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path(run): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let viewer = match checked(&web, &headers, &uri) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let req = match logs_request(run.clone(), &q, false) {
        Ok(r) if r.stdout != r.stderr => r,
        Ok(_) => {
            return failure(
                &viewer,
                &tonic::Status::invalid_argument(
                    "a download is of one stream: add stream=stdout or stream=stderr",
                ),
            )
        }
        Err(message) => return failure(&viewer, &tonic::Status::invalid_argument(message)),
    };
    let name = format!(
        "run-{}-attempt-{}.{}",
        run.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>(),
        req.attempt,
        if req.stdout { "stdout" } else { "stderr" }
    );
    let stream = match web.control.logs(request(&viewer, req)).await {
        Ok(s) => s.into_inner(),
        Err(status) => return failure(&viewer, &status),
    };
    let body = Body::from_stream(stream.map(|item| {
        item.map(|chunk| axum::body::Bytes::from(chunk.data))
            .map_err(|status| std::io::Error::other(status.message().to_string()))
    }));
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// One tail event: rendered HTML of the bytes from `offset` to `next` of a stream.
#[derive(Serialize)]
struct Chunk<'a> {
    stream: &'a str,
    offset: u64,
    next: u64,
    html: String,
}

/// `GET /runs/{n}/tail?attempt=k&stdout_offset=a&stderr_offset=b`: the log from those
/// offsets on, as it is written, rendered (see `text`); ends with an `end` event when the
/// attempt ends. A closed tab drops the stream and with it the follow.
pub async fn tail(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path(run): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let viewer = match checked(&web, &headers, &uri) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let req = match logs_request(run, &q, true) {
        Ok(r) => r,
        Err(message) => return failure(&viewer, &tonic::Status::invalid_argument(message)),
    };
    let stream = match web.control.logs(request(&viewer, req)).await {
        Ok(s) => s.into_inner(),
        Err(status) => return failure(&viewer, &status),
    };
    let mut terminals = [Terminal::default(), Terminal::default()];
    let events = stream
        .map(move |item| -> Result<Event, Infallible> {
            Ok(match item {
                Ok(chunk) => {
                    let (name, i) = if chunk.stream == pb::LogStream::Stderr as i32 {
                        ("stderr", 1)
                    } else {
                        ("stdout", 0)
                    };
                    let html = terminals[i].render(&chunk.data).into_string();
                    Event::default()
                        .event("log")
                        .json_data(Chunk {
                            stream: name,
                            offset: chunk.offset,
                            next: chunk.offset + chunk.data.len() as u64,
                            html,
                        })
                        .unwrap_or_default()
                }
                Err(status) => Event::default().event("end").data(status.message()),
            })
        })
        .chain(futures::stream::once(async {
            Ok(Event::default().event("end").data("the attempt has ended"))
        }));
    Sse::new(super::counted(&web, events))
        .keep_alive(KeepAlive::default())
        .into_response()
}
