//! A raw `ControlService` client sends what the CLI never would: every submit that could only
//! fail later (a name outside the config rule, a NUL byte exec cannot carry, an environment
//! variable no process can have) is INVALID_ARGUMENT at the door and stores nothing; a run
//! state filter that matches nothing by construction is an error, not an empty answer.

use rota_proto as pb;
use rota_tests::{sh, Cluster};
use tonic::Code;

async fn submit(cluster: &Cluster, spec: pb::RunSpec) -> Result<pb::SubmitResponse, tonic::Status> {
    let mut c = cluster.client().await;
    c.submit(pb::SubmitRequest {
        runs: vec![spec],
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn all_runs(cluster: &Cluster) -> Vec<pb::Run> {
    let mut c = cluster.client().await;
    c.list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs
}

#[tokio::test]
async fn submits_that_could_only_fail_on_an_agent_are_refused_and_store_nothing() {
    let cluster = Cluster::start().await;
    let with_env = |key: &str, value: &str| {
        let mut spec = sh("ok", "true");
        spec.env.insert(key.to_string(), value.to_string());
        spec
    };
    let cases = [
        ("a name with a slash", sh("a/b", "true"), "invalid job name"),
        ("a name of ..", sh("..", "true"), "invalid job name"),
        ("a NUL in the command", sh("ok", "echo a\0b"), "NUL"),
        (
            "an empty variable name",
            with_env("", "x"),
            "environment variable",
        ),
        (
            "a variable name with =",
            with_env("A=B", "x"),
            "environment variable",
        ),
        (
            "a NUL in a value",
            with_env("A", "x\0y"),
            "environment variable",
        ),
    ];
    for (what, spec, says) in cases {
        let status = submit(&cluster, spec).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains(says),
            "{what}: {}",
            status.message()
        );
    }
    assert!(all_runs(&cluster).await.is_empty(), "nothing was stored");

    let ok = submit(&cluster, with_env("A", "x=y")).await.unwrap();
    assert_eq!(ok.runs.len(), 1);
    cluster.stop().await;
}

#[tokio::test]
async fn a_run_state_filter_must_name_a_state() {
    let cluster = Cluster::start().await;
    submit(&cluster, sh("one", "true")).await.unwrap();
    let mut c = cluster.client().await;
    let status = c
        .list_runs(pb::ListRunsRequest {
            state: "bogus".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("\"bogus\""),
        "{}",
        status.message()
    );
    let pending = c
        .list_runs(pb::ListRunsRequest {
            state: "pending".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(pending.len(), 1);
    cluster.stop().await;
}
