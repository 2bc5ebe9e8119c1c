//! `rota_rpcs_total{method,code}`: a layer on the whole router counts every gRPC call once,
//! with its final status: from the response headers when it was refused at once, else from
//! the trailers as they pass (so a stream counts when it ends). The `method` label is one of the methods this coordinator
//! serves (read from the compiled proto descriptors) or `unknown`, so a client inventing
//! paths cannot grow the label set.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use prost::Message;

use super::Metrics;

/// Every gRPC method path served: rota's services, health, and reflection (v1 and v1alpha).
static METHODS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut methods: HashSet<String> = [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for encoded in [
        rota_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else {
            continue;
        };
        for file in set.file {
            let package = file.package();
            for service in &file.service {
                for method in &service.method {
                    methods.insert(format!("/{package}.{}/{}", service.name(), method.name()));
                }
            }
        }
    }
    methods
});

/// The `method` label of a request path.
fn method_label(path: &str) -> String {
    if METHODS.contains(path) {
        path.trim_start_matches('/').to_string()
    } else {
        "unknown".into()
    }
}

/// Counts a gRPC call (requests of other content types pass uncounted).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return next.run(request).await;
    }
    let call = Call {
        metrics,
        method: method_label(request.uri().path()),
        counted: false,
    };
    let response = next.run(request).await;
    // An error answered at once (the usual case) carries its status in the headers; a call
    // that goes on to a body has its status in the trailers, counted as they pass.
    match grpc_status(response.headers()) {
        Some(code) => {
            let mut call = call;
            call.count(code);
            response
        }
        None => response.map(|body| Body::new(Counted { body, call })),
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// One call, counted once: by its status, or as `Cancelled` when its response is dropped
/// before the trailers (the client went away).
struct Call {
    metrics: Arc<Metrics>,
    method: String,
    counted: bool,
}

impl Call {
    fn count(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.counted, true) {
            return;
        }
        let code = match code {
            tonic::Code::Ok => "OK".to_string(),
            other => format!("{other:?}"),
        };
        let method = std::mem::take(&mut self.method);
        self.metrics
            .rpcs
            .get_or_create(&vec![("method", method), ("code", code)])
            .inc();
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.count(tonic::Code::Cancelled);
    }
}

/// A response body that counts its call when the trailers go by.
struct Counted {
    body: Body,
    call: Call,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                self.call.count(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn only_served_methods_are_labels() {
        assert_eq!(
            method_label("/rota.v1.ControlService/Status"),
            "rota.v1.ControlService/Status"
        );
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(method_label("/rota.v1.ControlService/Nope"), "unknown");
        assert_eq!(method_label("/x/y"), "unknown");
    }
}
