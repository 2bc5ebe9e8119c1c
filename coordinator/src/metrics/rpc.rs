//! `rota_rpcs_total{method,code}`: a layer on the whole router counts every gRPC call when
//! its response headers go out. The `method` label is one of the methods this coordinator
//! serves (read from the compiled proto descriptors) or `unknown`, so a client inventing
//! paths cannot grow the label set.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
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
    let method = method_label(request.uri().path());
    let response = next.run(request).await;
    // An error answered at once (the usual case) carries its status in the headers; a call
    // that went on to a body has OK there, with the final status in trailers.
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32);
    let code = match code {
        tonic::Code::Ok => "OK".to_string(),
        other => format!("{other:?}"),
    };
    metrics
        .rpcs
        .get_or_create(&vec![("method", method), ("code", code)])
        .inc();
    response
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
