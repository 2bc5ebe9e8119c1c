//! Artifacts across hosts: a run's files matched by its `artifacts` globs are kept by the
//! coordinator (content-addressed, checked) and placed byte-identical in the RUN_DIR of a run
//! `after` it on another agent; a missing one fails that run naming it.

use std::time::Duration;

use rota_proto as pb;
use rota_tests::{sh, stdout_of, submit, wait_jobset, Cluster};

async fn get(c: &mut rota_tests::Client, id: &str) -> pb::Run {
    c.get_run(pb::RunRef { run: id.into() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_of_a_run_on_one_host_reach_its_dependent_on_the_other_byte_identical() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("host-a", 1, &["host-a_group"]);
    cluster.add_agent("host-b", 1, &["host-b_group"]);
    cluster.wait_agents(2).await;
    let mut c = cluster.client().await;

    let mut dump = sh(
        "dump",
        "mkdir out && head -c 2500000 /dev/urandom > out/db1.sql && echo small > out/db1.txt \
         && echo not-kept > other.log && echo $AGENT_NAME",
    );
    dump.groups = vec!["host-a_group".into()];
    dump.artifacts = vec!["out/*".into()];
    let mut compress = sh(
        "compress",
        "test ! -e other.log && sha256sum out/db1.sql | cut -c1-64 && cat out/db1.txt && echo $AGENT_NAME",
    );
    compress.groups = vec!["host-b_group".into()];
    compress.after = vec!["dump".into()];
    let runs = submit(&mut c, "pipeline", vec![dump, compress]).await;
    wait_jobset(&mut c, "pipeline", Duration::from_secs(60)).await;
    let (dump, compress) = (
        get(&mut c, &runs[0].id).await,
        get(&mut c, &runs[1].id).await,
    );
    assert_eq!(dump.state, "success", "{dump:?}");
    assert_eq!(compress.state, "success", "{compress:?}");
    let paths: Vec<(&str, u64)> = dump
        .artifacts
        .iter()
        .map(|a| (a.path.as_str(), a.size))
        .collect();
    assert_eq!(paths, [("out/db1.sql", 2_500_000), ("out/db1.txt", 6)]);
    let sql = &dump.artifacts[0];
    assert_eq!(
        stdout_of(&mut c, &compress.id).await,
        format!("{}\nsmall\nhost-b\n", sql.sha256)
    );
    assert_eq!(stdout_of(&mut c, &dump.id).await, "host-a\n");

    // The download through ControlService is the same content.
    let mut stream = c
        .get_artifact(pb::GetArtifactRequest {
            run: dump.number.to_string(),
            path: "out/db1.sql".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(piece) = stream.message().await.unwrap() {
        bytes.extend_from_slice(&piece.data);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!((bytes.len(), hex), (2_500_000, sql.sha256.clone()));

    // Content gone from the coordinator: a new dependent fails, naming the artifact.
    let content = cluster
        .dir
        .path()
        .join("data/artifacts/content")
        .join(&sql.sha256);
    std::fs::remove_file(&content).unwrap();
    let mut late = sh("late", "true");
    late.groups = vec!["host-b_group".into()];
    late.after = vec![dump.id.clone()];
    let late = submit(&mut c, "late", vec![late]).await.remove(0);
    wait_jobset(&mut c, "late", Duration::from_secs(30)).await;
    let late = get(&mut c, &late.id).await;
    assert_eq!(late.state, "errored", "{late:?}");
    assert!(
        late.error.starts_with(&format!(
            "artifact out/db1.sql of run {} is missing",
            dump.number
        )),
        "{late:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_globs_outside_the_run_dir_are_refused_naming_them() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    for glob in ["../etc/passwd", "/etc/passwd", "a/../../b", ""] {
        let mut spec = sh("bad", "true");
        spec.artifacts = vec![glob.into()];
        let err = c
            .submit(pb::SubmitRequest {
                jobset: String::new(),
                runs: vec![spec],
                parallel: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{glob}");
        assert!(err.message().contains("artifacts"), "{err:?}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_farm_example_runs_dumps_on_host_a_compress_and_upload_on_host_b_restore_sticky() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("host-a", 2, &["host-a_group"]);
    cluster.add_agent("host-b", 2, &["host-b_group"]);
    cluster.wait_agents(2).await;
    let mut c = cluster.client().await;
    let path = format!("{}/../examples/farm.yaml", env!("CARGO_MANIFEST_DIR"));
    let defs = rota_coordinator::config::load_file(std::path::Path::new(&path)).unwrap();
    for (group, max) in &defs.groups {
        c.set_group_max(pb::SetGroupMaxRequest {
            name: group.clone(),
            max: *max,
        })
        .await
        .unwrap();
    }
    let specs: Vec<pb::RunSpec> = defs
        .jobs
        .iter()
        .map(|j| j.to_run_spec(&defs.environment))
        .collect();
    submit(&mut c, &defs.jobset, specs).await;
    let done = wait_jobset(&mut c, &defs.jobset, Duration::from_secs(120)).await;
    assert!(
        done.all_succeeded,
        "{:?}",
        done.runs
            .iter()
            .map(|r| (&r.name, &r.state, &r.error))
            .collect::<Vec<_>>()
    );
    let by_name: std::collections::HashMap<&str, &pb::Run> =
        done.runs.iter().map(|r| (r.name.as_str(), r)).collect();
    for db in ["db1", "db2", "db3", "db4"] {
        let run = |step: &str| by_name[format!("{step}-{db}").as_str()];
        assert_eq!(run("dump").agent, "host-a");
        assert_eq!(run("compress").agent, "host-b");
        assert_eq!(run("upload").agent, "host-b");
        assert_eq!(run("restore").agent, run("dump").agent);
        let restored = stdout_of(&mut c, &run("restore").id).await;
        assert!(
            restored.contains(&format!("{db}: restored 100000 rows")),
            "{restored}"
        );
        let uploaded = stdout_of(&mut c, &run("upload").id).await;
        assert!(
            uploaded.ends_with(&format!("{db}: upload verified\n")),
            "{uploaded}"
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_status_tells_a_resending_agent_what_is_held() {
    use rota_proto::agent_message::Msg;
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = rota_tests::Coordinator::start(&dir.path().join("data"), |_| {}).await;
    let mut c = rota_tests::client(&coordinator.url).await;
    let mut agent = rota_tests::RawAgent::connect(&coordinator.url, "raw", 1).await;
    submit(&mut c, "one", vec![sh("r", "true")]).await;
    let assign = agent.assigned().await;
    let data = rota_tests::pseudo_random_bytes(7, 1_500_000);
    let digest = ring::digest::digest(&ring::digest::SHA256, &data);
    let sha: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let chunk = |offset: usize, end: usize| {
        Msg::Artifact(pb::ArtifactChunk {
            run_id: assign.run_id.clone(),
            attempt: 1,
            path: "out/x.bin".into(),
            sha256: sha.clone(),
            size: data.len() as u64,
            offset: offset as u64,
            data: data[offset..end].to_vec().into(),
        })
    };
    let channel = tonic::transport::Endpoint::from_shared(coordinator.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut status_client = pb::agent_service_client::AgentServiceClient::new(channel);
    let status = |client: &mut pb::agent_service_client::AgentServiceClient<_>| {
        let req = pb::ArtifactStatusRequest {
            sha256: sha.clone(),
            size: data.len() as u64,
        };
        let mut client = client.clone();
        async move { client.artifact_status(req).await.unwrap().into_inner() }
    };
    agent.send(chunk(0, 1 << 20)).await;
    let held = rota_tests::eventually(Duration::from_secs(10), "the first chunk", || {
        let s = status(&mut status_client);
        async move { Some(s.await).filter(|h| h.partial_len > 0) }
    })
    .await;
    assert_eq!((held.stored, held.partial_len), (false, 1 << 20));
    agent.send(chunk(1 << 20, data.len())).await;
    rota_tests::eventually(Duration::from_secs(10), "the whole content", || {
        let s = status(&mut status_client);
        async move { s.await.stored.then_some(()) }
    })
    .await;
    coordinator.stop().await;
}
