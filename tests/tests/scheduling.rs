//! A coordinator and agents in-process on 127.0.0.1:0: scheduling limits, priority order and
//! live limit changes, checked from the records the coordinator keeps.

use std::time::{Duration, Instant};

use rota_proto as pb;
use rota_tests::{eventually, max_overlap, sh, wait_jobset, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_runs_never_exceed_agent_slots_or_the_jobset_limit() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("host-a", 3, &[]);
    cluster.add_agent("host-b", 2, &[]);
    cluster.wait_agents(2).await;
    let mut c = cluster.client().await;
    c.create_jobset(pb::CreateJobsetRequest {
        name: "many".into(),
        parallel: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    let runs: Vec<_> = (0..200)
        .map(|i| sh(&format!("r{i}"), "sleep 0.01"))
        .collect();
    c.submit(pb::SubmitRequest {
        jobset: "many".into(),
        runs,
        parallel: 0,
    })
    .await
    .unwrap();
    let done = wait_jobset(&mut c, "many", Duration::from_secs(120)).await;
    assert!(done.all_succeeded, "every run succeeds");
    assert_eq!(done.runs.len(), 200);
    let all: Vec<(u64, u64)> = done
        .runs
        .iter()
        .map(|r| (r.started_at_ms, r.finished_at_ms))
        .collect();
    assert!(
        max_overlap(&all) <= 4,
        "jobset parallel 4 held: saw {}",
        max_overlap(&all)
    );
    for (agent, slots) in [("host-a", 3), ("host-b", 2)] {
        let mine: Vec<(u64, u64)> = done
            .runs
            .iter()
            .filter(|r| r.agent == agent)
            .map(|r| (r.started_at_ms, r.finished_at_ms))
            .collect();
        assert!(!mine.is_empty(), "{agent} ran some runs");
        assert!(
            max_overlap(&mine) <= slots,
            "{agent} never above {slots} slots"
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_start_by_priority_then_lowest_number() {
    let mut cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    let prios = [0, 10, -10, 10, 0, 5];
    let runs: Vec<_> = prios
        .iter()
        .enumerate()
        .map(|(i, p)| pb::RunSpec {
            priority: *p,
            ..sh(&format!("p{i}"), "true")
        })
        .collect();
    let submitted = c
        .submit(pb::SubmitRequest {
            jobset: "prio".into(),
            runs,
            parallel: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    // The agent arrives after the queue is full, with one slot: start order is the rule.
    cluster.add_agent("solo", 1, &[]);
    let done = wait_jobset(&mut c, "prio", Duration::from_secs(30)).await;
    let mut by_start = done.runs.clone();
    by_start.sort_by_key(|r| (r.started_at_ms, r.number));
    let order: Vec<i32> = by_start.iter().map(|r| r.priority).collect();
    assert_eq!(order, vec![10, 10, 5, 0, 0, -10]);
    let first_two: Vec<u64> = by_start.iter().take(2).map(|r| r.number).collect();
    assert_eq!(
        first_two,
        vec![submitted[1].number, submitted[3].number],
        "equal priority: lowest number first"
    );
    cluster.stop().await;
}

async fn running_count(c: &mut rota_tests::Client, jobset: &str) -> usize {
    let runs = c
        .list_runs(pb::ListRunsRequest {
            jobset: jobset.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    runs.iter()
        .filter(|r| r.state == "running" || r.state == "assigned")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raising_parallel_starts_more_within_100ms_and_lowering_kills_none() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("big", 16, &[]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    let runs: Vec<_> = (0..10).map(|i| sh(&format!("s{i}"), "sleep 2")).collect();
    c.submit(pb::SubmitRequest {
        jobset: "live".into(),
        runs,
        parallel: 2,
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "2 runs running", || {
        let mut c = c.clone();
        async move { (running_count(&mut c, "live").await == 2).then_some(()) }
    })
    .await;
    // Watch for assignments, then raise the limit and time the extra starts.
    let mut events = c
        .watch(pb::WatchRequest {
            jobset: "live".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let t0 = Instant::now();
    c.set_parallel(pb::SetParallelRequest {
        name: "live".into(),
        parallel: 6,
    })
    .await
    .unwrap();
    let mut started = 0;
    while started < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if ev.run.unwrap().state == "assigned" {
            started += 1;
        }
    }
    let elapsed = t0.elapsed();
    assert!(
        elapsed <= Duration::from_millis(100),
        "4 extra runs assigned in {elapsed:?}"
    );
    // Lowering holds back new starts but kills nothing.
    c.set_parallel(pb::SetParallelRequest {
        name: "live".into(),
        parallel: 1,
    })
    .await
    .unwrap();
    assert_eq!(running_count(&mut c, "live").await, 6);
    let done = wait_jobset(&mut c, "live", Duration::from_secs(60)).await;
    assert!(
        done.all_succeeded,
        "no run was killed by lowering the limit"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_dependency_skips_and_retry_brings_dependents_back() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 4, &[]);
    let mut c = cluster.client().await;
    let marker = cluster.dir.path().join("ok");
    let runs = vec![
        sh("dump", &format!("test -e {}", marker.display())),
        pb::RunSpec {
            after: vec!["dump".into()],
            ..sh("compress", "true")
        },
        pb::RunSpec {
            after: vec!["compress".into()],
            ..sh("upload", "true")
        },
    ];
    c.submit(pb::SubmitRequest {
        jobset: "deps".into(),
        runs,
        parallel: 0,
    })
    .await
    .unwrap();
    let done = wait_jobset(&mut c, "deps", Duration::from_secs(30)).await;
    let states: Vec<&str> = done.runs.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(states, vec!["errored", "skipped", "skipped"]);
    std::fs::write(&marker, "").unwrap();
    let dump = done.runs[0].id.clone();
    c.retry(pb::RetryRequest {
        run: dump.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let done = wait_jobset(&mut c, "deps", Duration::from_secs(30)).await;
    assert!(
        done.all_succeeded,
        "{:?}",
        done.runs.iter().map(|r| &r.state).collect::<Vec<_>>()
    );
    let dump = c
        .get_run(pb::RunRef { run: dump })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dump.attempt, 2);
    assert_eq!(dump.attempts.len(), 2);
    assert_eq!(dump.attempts[0].exit_code, Some(1));
    cluster.stop().await;
}

/// A retried run waits for its dependencies again, even after it left the scheduler's memory
/// (finished runs are forgotten there) or was loaded back as another run's finished dependency,
/// and its skipped dependents come back with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_run_waits_for_its_unfinished_dependency_again() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 4, &[]);
    let mut c = cluster.client().await;
    let go = cluster.dir.path().join("go");
    let gate = format!("while [ ! -e {} ]; do sleep 0.05; done", go.display());
    let submitted = c
        .submit(pb::SubmitRequest {
            jobset: "again".into(),
            runs: vec![
                sh("gate", &gate),
                pb::RunSpec {
                    after: vec!["gate".into()],
                    ..sh("b", "true")
                },
            ],
            parallel: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let (gate_run, b) = (&submitted.runs[0], &submitted.runs[1]);
    let reader = c.clone();
    let get = |run: String| {
        let mut c = reader.clone();
        async move { c.get_run(pb::RunRef { run }).await.unwrap().into_inner() }
    };
    eventually(Duration::from_secs(10), "the gate to run", || async {
        (get(gate_run.id.clone()).await.state == "running").then_some(())
    })
    .await;
    c.cancel(pb::RunRef { run: b.id.clone() }).await.unwrap();
    assert_eq!(get(b.id.clone()).await.state, "cancelled");
    // A run submitted after the cancelled one is skipped at once; b is loaded back for it.
    let later = c
        .submit(pb::SubmitRequest {
            jobset: "again".into(),
            runs: vec![pb::RunSpec {
                after: vec![b.number.to_string()],
                ..sh("c", "true")
            }],
            parallel: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let later = &later.runs[0];
    assert_eq!(get(later.id.clone()).await.state, "skipped");

    c.retry(pb::RetryRequest {
        run: b.id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let waiting = get(b.id.clone()).await;
    assert_eq!(waiting.state, "pending", "{waiting:?}");
    assert!(
        waiting
            .waiting_reason
            .contains(&format!("run {}", gate_run.number)),
        "{waiting:?}"
    );
    std::fs::write(&go, "").unwrap();
    let done = wait_jobset(&mut c, "again", Duration::from_secs(30)).await;
    assert!(
        done.all_succeeded,
        "{:?}",
        done.runs.iter().map(|r| &r.state).collect::<Vec<_>>()
    );
    let gate_done = get(gate_run.id.clone()).await;
    let b_done = get(b.id.clone()).await;
    let c_done = get(later.id.clone()).await;
    assert!(b_done.started_at_ms >= gate_done.finished_at_ms);
    assert!(c_done.started_at_ms >= b_done.finished_at_ms);
    assert_eq!(b_done.attempt, 2);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_command_errors_its_run_and_leaves_the_agent_and_others_alone() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 2, &[]);
    let mut c = cluster.client().await;
    let runs = vec![
        pb::RunSpec {
            name: "bad".into(),
            command: vec!["/no/such/command-xyz".into()],
            ..Default::default()
        },
        sh("good", "echo fine"),
    ];
    c.submit(pb::SubmitRequest {
        jobset: "bad".into(),
        runs,
        parallel: 0,
    })
    .await
    .unwrap();
    let done = wait_jobset(&mut c, "bad", Duration::from_secs(30)).await;
    assert_eq!(done.runs[0].state, "errored");
    assert!(
        done.runs[0].error.contains("/no/such/command-xyz"),
        "spawn error recorded: {:?}",
        done.runs[0].error
    );
    assert_eq!(done.runs[1].state, "success");
    // The agent still takes work.
    c.submit(pb::SubmitRequest {
        jobset: "after".into(),
        runs: vec![sh("again", "true")],
        parallel: 0,
    })
    .await
    .unwrap();
    assert!(
        wait_jobset(&mut c, "after", Duration::from_secs(30))
            .await
            .all_succeeded
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_run_is_a_clear_not_found() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    let err = c
        .get_run(pb::RunRef {
            run: "12345".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(err.message().contains("12345"), "{}", err.message());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retrying_several_runs_where_one_is_refused_changes_none_of_them() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("host-a", 2, &[]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    c.submit(pb::SubmitRequest {
        jobset: "mixed".into(),
        runs: vec![sh("fails", "exit 3"), sh("passes", "true")],
        parallel: 0,
    })
    .await
    .unwrap();
    let done = wait_jobset(&mut c, "mixed", Duration::from_secs(30)).await;
    let states: Vec<&str> = done.runs.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(states, vec!["errored", "success"]);
    let (fails, passes) = (done.runs[0].number, done.runs[1].number);

    let refused = c
        .retry(pb::RetryRequest {
            runs: vec![fails.to_string(), passes.to_string()],
            ..Default::default()
        })
        .await
        .expect_err("a succeeded run may not be retried");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains(&passes.to_string()),
        "names the refused run: {}",
        refused.message()
    );
    let fails_now = c
        .get_run(pb::RunRef {
            run: fails.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        fails_now.state, "errored",
        "the errored run was not retried"
    );
    assert_eq!(fails_now.attempt, 1);

    // The same call without the refused run goes through.
    let retried = c
        .retry(pb::RetryRequest {
            runs: vec![fails.to_string()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.runs.len(), 1);
    assert_eq!(retried.runs[0].attempt, 2);
    cluster.stop().await;
}
