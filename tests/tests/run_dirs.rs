//! Runs on a real agent start in their own empty RUN_DIR with a lasting JOB_DIR and CI=true,
//! and what they leave in RUN_DIR/return_data.{json,yaml} is stored with the run and shown
//! by GetRun; a bad or oversized file is a named problem, never a changed outcome.

use std::time::Duration;

use rota_proto as pb;
use rota_proto::agent_message::Msg;
use rota_tests::{sh, stdout_of, wait_jobset, Cluster, Coordinator, RawAgent};

async fn submit_one(c: &mut rota_tests::Client, jobset: &str, spec: pb::RunSpec) -> pb::Run {
    rota_tests::submit(c, jobset, vec![spec]).await.remove(0)
}

async fn run_one(c: &mut rota_tests::Client, jobset: &str, spec: pb::RunSpec) -> pb::Run {
    let run = submit_one(c, jobset, spec).await;
    wait_jobset(c, jobset, Duration::from_secs(30)).await;
    c.get_run(pb::RunRef { run: run.id })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_starts_in_an_empty_run_dir_and_its_return_data_is_stored_with_it() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 1, &[]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    let script = r#"test "$PWD" = "$RUN_DIR" && test -z "$(ls -A)" && test -d "$JOB_DIR" || exit 9
        printf '%s %s %s' "$CI" "$RUN_DIR" "$JOB_DIR"
        printf 'dumped: db1\nrows: 3\n' > return_data.yaml"#;
    let run = run_one(&mut c, "one", sh("dump", script)).await;
    assert_eq!(run.state, "success", "{run:?}");
    let work = cluster.dir.path().join("spool/a-work");
    assert_eq!(
        stdout_of(&mut c, &run.id).await,
        format!(
            "true {}/runs/{}.1 {}/jobs/dump",
            work.display(),
            run.id,
            work.display()
        )
    );
    assert_eq!(run.return_data, r#"{"dumped":"db1","rows":3}"#);
    assert_eq!(run.return_data_problem, "");

    // A failed run keeps its return data too; invalid JSON is a problem naming the file.
    let run = run_one(
        &mut c,
        "two",
        sh("bad", "echo '{oops' > return_data.json; exit 3"),
    )
    .await;
    assert_eq!((run.state.as_str(), run.exit_code), ("errored", Some(3)));
    assert_eq!(run.return_data, "");
    assert!(
        run.return_data_problem.starts_with("return_data.json: "),
        "{run:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_data_over_the_limit_or_under_another_name_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Coordinator::start(&dir.path().join("data"), |_| {}).await;
    let mut c = rota_tests::client(&coordinator.url).await;
    let mut agent = RawAgent::connect(&coordinator.url, "raw", 1).await;
    let run = submit_one(&mut c, "", sh("r", "true")).await;
    let assign = agent.assigned().await;
    let finished = |file: &str, data: Vec<u8>| {
        Msg::Finished(pb::RunFinished {
            run_id: assign.run_id.clone(),
            attempt: 1,
            exit_code: Some(0),
            return_data_file: file.into(),
            return_data: data,
            ..Default::default()
        })
    };
    agent
        .send(finished(
            "return_data.json",
            vec![b' '; rota_proto::MAX_RETURN_DATA + 1],
        ))
        .await;
    agent
        .send(finished("../../etc/passwd", b"{}".to_vec()))
        .await;
    // The honest result after the refused ones is recorded.
    agent
        .send(finished("return_data.json", b"[1, 2]".to_vec()))
        .await;
    let recorded = rota_tests::eventually(Duration::from_secs(10), "the result", || {
        let mut c = c.clone();
        let id = run.id.clone();
        async move {
            let run = c.get_run(pb::RunRef { run: id }).await.ok()?.into_inner();
            (run.state == "success").then_some(run)
        }
    })
    .await;
    assert_eq!(recorded.return_data, "[1,2]");
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_agent_as_run_starts_on_its_targets_agent_in_its_run_dir() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 2, &[]);
    cluster.add_agent("b", 2, &[]);
    cluster.wait_agents(2).await;
    let mut c = cluster.client().await;
    let mut runs = Vec::new();
    for db in ["db1", "db2", "db3", "db4"] {
        let dump = sh(
            &format!("dump-{db}"),
            &format!("echo {db} > dump.sql; printf %s \"$PWD\""),
        );
        let mut restore = sh(&format!("restore-{db}"), "cat dump.sql; printf %s \"$PWD\"");
        restore.after = vec![dump.name.clone()];
        restore.same_agent_as = dump.name.clone();
        runs.push(dump);
        runs.push(restore);
    }
    let submitted = rota_tests::submit(&mut c, "farm", runs).await;
    wait_jobset(&mut c, "farm", Duration::from_secs(60)).await;
    let mut agents = std::collections::BTreeSet::new();
    for pair in submitted.chunks(2) {
        let get = |id: &str| {
            let mut c = c.clone();
            let id = id.to_string();
            async move {
                c.get_run(pb::RunRef { run: id })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
        let (dump, restore) = (get(&pair[0].id).await, get(&pair[1].id).await);
        assert_eq!(
            (dump.state.as_str(), restore.state.as_str()),
            ("success", "success"),
            "{restore:?}"
        );
        assert_eq!(restore.agent, dump.agent, "{} ran elsewhere", restore.name);
        agents.insert(dump.agent.clone());
        let dump_dir = stdout_of(&mut c, &dump.id).await;
        let db = dump.name.trim_start_matches("dump-");
        assert_eq!(
            stdout_of(&mut c, &restore.id).await,
            format!("{db}\n{dump_dir}")
        );
    }
    assert_eq!(agents.len(), 2, "the dumps spread over both agents");

    // same_agent_as must name one of the run's own after.
    let mut lone = sh("lone", "true");
    lone.same_agent_as = submitted[0].id.clone();
    let err = c
        .submit(pb::SubmitRequest {
            jobset: "farm".into(),
            runs: vec![lone],
            parallel: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("must also be one of its after"),
        "{err:?}"
    );
    cluster.stop().await;
}
