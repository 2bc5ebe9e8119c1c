//! Job definitions as dsari documents them: the seed page's three concurrency configs applied
//! to a coordinator with real agents, triggers, schedules and environment precedence.

use std::collections::HashMap;
use std::time::Duration;

use rota_proto as pb;
use rota_tests::{eventually, max_overlap, stdout_of, wait_jobset, Client, Cluster};

async fn apply(c: &mut Client, path: &str) -> Result<pb::ApplyResponse, tonic::Status> {
    let content = std::fs::read_to_string(path).unwrap();
    c.apply(pb::ApplyRequest {
        path: path.into(),
        content,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

/// Applies a seed config, triggers every job twice, and returns the finished runs.
async fn run_seed_config(file: &str) -> (Vec<pb::Run>, Cluster) {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("host-a", 8, &["host-a_group"]);
    cluster.add_agent("host-b", 8, &["host-b_group"]);
    cluster.wait_agents(2).await;
    let mut c = cluster.client().await;
    let applied = apply(
        &mut c,
        &format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR")),
    )
    .await
    .unwrap();
    for _ in 0..2 {
        for job in &applied.jobs {
            c.trigger(pb::TriggerRequest {
                job: job.clone(),
                env: Default::default(),
            })
            .await
            .unwrap();
        }
    }
    let jobset = file.trim_end_matches(".json");
    let done = wait_jobset(&mut c, jobset, Duration::from_secs(120)).await;
    assert!(
        done.all_succeeded,
        "all runs finish: {:?}",
        done.runs.iter().map(|r| &r.state).collect::<Vec<_>>()
    );
    // The seed's jobs are scheduled every minute: a scheduled run may fire during the test.
    // It must keep the limits like the rest, so it stays in the checks below.
    let triggered = done
        .runs
        .iter()
        .filter(|r| r.trigger_type == "trigger")
        .count();
    assert_eq!(triggered, applied.jobs.len() * 2, "every trigger ran once");
    assert!(
        done.runs
            .iter()
            .all(|r| r.trigger_type == "trigger" || r.trigger_type == "schedule"),
        "only triggered and scheduled runs"
    );
    for r in &done.runs {
        let out = stdout_of(&mut c, &r.id).await;
        assert!(
            r.groups.contains(&r.concurrency_group),
            "run {} counted against an allowed group",
            r.number
        );
        assert!(
            out.contains(&format!("in {}", r.concurrency_group)),
            "CONCURRENCY_GROUP={} seen by the run: {out:?}",
            r.concurrency_group
        );
        let expected_agent = if r.concurrency_group == "host-a_group" {
            "host-a"
        } else {
            "host-b"
        };
        assert_eq!(
            r.agent, expected_agent,
            "a group's runs go to agents serving it"
        );
    }
    (done.runs, cluster)
}

fn per_group_max(runs: &[pb::Run]) -> HashMap<String, usize> {
    let mut by: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for r in runs {
        by.entry(r.concurrency_group.clone())
            .or_default()
            .push((r.started_at_ms, r.finished_at_ms));
    }
    by.into_iter()
        .map(|(g, iv)| (g, max_overlap(&iv)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_config_one_group_per_host_holds_2_and_implicit_1() {
    let (runs, cluster) = run_seed_config("dsari-concurrency-1-local.json").await;
    let max = per_group_max(&runs);
    assert_eq!(max["host-a_group"], 2, "host-a_group max 2");
    assert_eq!(max["host-b_group"], 1, "undefined host-b_group has max 1");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_config_jobs_in_two_groups_spread_over_both() {
    let (runs, cluster) = run_seed_config("dsari-concurrency-2-local.json").await;
    let max = per_group_max(&runs);
    assert_eq!(max["host-a_group"], 2);
    assert_eq!(max["host-b_group"], 1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_config_job_groups_expand_and_behave_the_same() {
    let (runs, cluster) = run_seed_config("dsari-concurrency-3-local.json").await;
    let max = per_group_max(&runs);
    assert_eq!(max["host-a_group"], 2);
    assert_eq!(max["host-b_group"], 1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seed_configs_apply_unchanged_and_list_their_next_times() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    for n in 1..=3 {
        let path = format!(
            "{}/../examples/dsari-concurrency-{n}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        apply(&mut c, &path).await.unwrap();
        let jobs = c
            .list_jobs(pb::ListJobsRequest {})
            .await
            .unwrap()
            .into_inner()
            .jobs;
        assert_eq!(jobs.len(), 5);
        assert!(jobs
            .iter()
            .all(|j| j.next_run_at_ms > 0 && j.schedule == "* * * * *"));
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_config_names_the_problem_and_applies_nothing() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client().await;
    let good = "jobs:\n  keep:\n    command: [true]\n";
    c.apply(pb::ApplyRequest {
        path: "good.yaml".into(),
        content: good.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let cases = [
        ("jobs:\n  a:\n    comand: [true]\n", "unknown key \"comand\""),
        ("jobs:\n  a:\n    command: [true]\n    schedule: \"61 * * * *\"\n", "schedule"),
        ("jobs:\n  a:\n    command: [true]\n    after: [zz]\n", "zz"),
        ("jobs:\n  \"bad/name\":\n    command: [true]\n", "bad/name"),
        ("jobs:\n  a:\n    command: [true]\n    after: [b]\n  b:\n    command: [true]\n    after: [a]\n", "cycle"),
    ];
    for (content, expect) in cases {
        let err = c
            .apply(pb::ApplyRequest {
                path: "bad.yaml".into(),
                content: content.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("bad.yaml") && err.message().contains(expect),
            "{}",
            err.message()
        );
        let jobs = c
            .list_jobs(pb::ListJobsRequest {})
            .await
            .unwrap()
            .into_inner()
            .jobs;
        assert_eq!(
            jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
            vec!["keep"],
            "nothing applied"
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_environment_wins_over_job_over_global() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 2, &[]);
    let mut c = cluster.client().await;
    let cfg = "environment: {X: global, Y: global, Z: global}\njobs:\n  envjob:\n    command: 'sh -c \"echo $X $Y $Z $TRIGGER_TYPE $JOB_NAME\"'\n    environment: {Y: job, Z: job}\n";
    c.apply(pb::ApplyRequest {
        path: "env.yaml".into(),
        content: cfg.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let run = c
        .trigger(pb::TriggerRequest {
            job: "envjob".into(),
            env: [("Z".to_string(), "trigger".to_string())].into(),
        })
        .await
        .unwrap()
        .into_inner();
    let done = wait_jobset(&mut c, &run.jobset, Duration::from_secs(30)).await;
    assert!(done.all_succeeded);
    assert_eq!(
        stdout_of(&mut c, &run.id).await.trim(),
        "global job trigger trigger envjob"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_fires_on_its_own_with_schedule_environment() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 2, &[]);
    let mut c = cluster.client().await;
    // 6 fields: the sixth is seconds (dsari), so this fires every second.
    let cfg = "jobset: ticks\njobs:\n  tick:\n    command: 'sh -c \"echo $TRIGGER_TYPE $SCHEDULE_TIME\"'\n    schedule: '* * * * * *'\n";
    c.apply(pb::ApplyRequest {
        path: "tick.yaml".into(),
        content: cfg.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let run = eventually(
        Duration::from_secs(10),
        "a scheduled run to succeed",
        || {
            let mut c = c.clone();
            async move {
                let runs = c
                    .list_runs(pb::ListRunsRequest {
                        jobset: "ticks".into(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .runs;
                runs.into_iter().find(|r| r.state == "success")
            }
        },
    )
    .await;
    let out = stdout_of(&mut c, &run.id).await;
    let mut words = out.split_whitespace();
    assert_eq!(words.next(), Some("schedule"));
    assert!(
        words.next().unwrap().parse::<u64>().unwrap() > 1_700_000_000,
        "SCHEDULE_TIME is a unix time: {out}"
    );
    cluster.stop().await;
}

/// `rota trigger JOB`, without extra environment.
async fn trigger(c: &mut Client, job: &str) -> pb::Run {
    c.trigger(pb::TriggerRequest {
        job: job.into(),
        env: Default::default(),
    })
    .await
    .unwrap()
    .into_inner()
}

async fn runs_of(c: &mut Client, jobset: &str) -> Vec<pb::Run> {
    c.list_runs(pb::ListRunsRequest {
        jobset: jobset.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .runs
}

/// Re-applying updates live: a removed job stops being scheduled while its running run goes
/// on to the end; and a job without `concurrent_runs` never runs twice at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reapply_stops_removed_schedules_and_running_runs_go_on() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 4, &[]);
    let mut c = cluster.client().await;
    let go = cluster.dir.path().join("go");
    let cfg = format!(
        "jobset: live\njobs:\n  tick:\n    command: 'true'\n    schedule: '* * * * * *'\n  \
         slow:\n    command: 'sh -c \"sleep 0.3; while [ ! -e {} ]; do sleep 0.05; done; echo done\"'\n",
        go.display()
    );
    let applied = c
        .apply(pb::ApplyRequest {
            path: "live.yaml".into(),
            content: cfg,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(applied.jobs, ["tick", "slow"]);

    // Without concurrent_runs: two triggers of `slow` run one after the other.
    std::fs::write(&go, "").unwrap();
    for _ in 0..2 {
        trigger(&mut c, "slow").await;
    }
    let slow_done = eventually(Duration::from_secs(20), "both slow runs to finish", || {
        let mut c = c.clone();
        async move {
            let slow: Vec<pb::Run> = runs_of(&mut c, "live")
                .await
                .into_iter()
                .filter(|r| r.name == "slow" && r.state == "success")
                .collect();
            (slow.len() == 2).then_some(slow)
        }
    })
    .await;
    assert!(
        slow_done[1].started_at_ms >= slow_done[0].finished_at_ms,
        "never twice at once: {slow_done:?}"
    );

    eventually(
        Duration::from_secs(10),
        "tick to fire on its schedule",
        || {
            let mut c = c.clone();
            async move {
                let runs = runs_of(&mut c, "live").await;
                runs.iter().any(|r| r.name == "tick").then_some(())
            }
        },
    )
    .await;

    // A third one is held running by the gate while the job is removed.
    std::fs::remove_file(&go).unwrap();
    let third = trigger(&mut c, "slow").await;
    eventually(Duration::from_secs(10), "the third slow run to run", || {
        let mut c = c.clone();
        let id = third.id.clone();
        async move {
            let r = c.get_run(pb::RunRef { run: id }).await.ok()?.into_inner();
            (r.state == "running").then_some(())
        }
    })
    .await;
    let reapplied = c
        .apply(pb::ApplyRequest {
            path: "live.yaml".into(),
            content: "jobset: live\njobs: {}\n".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut removed = reapplied.removed.clone();
    removed.sort();
    assert_eq!(removed, ["slow", "tick"]);
    let listed = c
        .list_jobs(pb::ListJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.jobs.is_empty(), "{listed:?}");
    let ticks_after_apply = runs_of(&mut c, "live")
        .await
        .iter()
        .filter(|r| r.name == "tick")
        .count();

    std::fs::write(&go, "").unwrap();
    let third = eventually(
        Duration::from_secs(10),
        "the removed job's run to finish",
        || {
            let mut c = c.clone();
            let id = third.id.clone();
            async move {
                let r = c.get_run(pb::RunRef { run: id }).await.ok()?.into_inner();
                (r.finished_at_ms > 0).then_some(r)
            }
        },
    )
    .await;
    assert_eq!(third.state, "success", "{third:?}");
    assert_eq!(stdout_of(&mut c, &third.id).await, "done\n");
    // Absence takes a window to show: `tick` fired every second before; over 2.5 s after its
    // removal it must not fire again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ticks_later = runs_of(&mut c, "live")
        .await
        .iter()
        .filter(|r| r.name == "tick")
        .count();
    assert!(ticks_after_apply >= 1, "tick fired while defined");
    assert_eq!(
        ticks_later, ticks_after_apply,
        "a removed job is not scheduled"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_max_set_live_persists_and_waiting_reason_explains() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 4, &["g"]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    let runs: Vec<_> = (0..3)
        .map(|i| pb::RunSpec {
            groups: vec!["g".into()],
            ..rota_tests::sh(&format!("w{i}"), "sleep 1")
        })
        .collect();
    c.submit(pb::SubmitRequest {
        jobset: "gm".into(),
        runs,
        parallel: 0,
    })
    .await
    .unwrap();
    let waiting = eventually(Duration::from_secs(10), "a run waiting on g", || {
        let mut c = c.clone();
        async move {
            let runs = c
                .list_runs(pb::ListRunsRequest {
                    jobset: "gm".into(),
                    state: "pending".into(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .runs;
            runs.into_iter().next()
        }
    })
    .await;
    assert_eq!(waiting.waiting_reason, "g 1/1 is full");
    let g = c
        .set_group_max(pb::SetGroupMaxRequest {
            name: "g".into(),
            max: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.max, 3);
    let done = wait_jobset(&mut c, "gm", Duration::from_secs(30)).await;
    assert!(done.all_succeeded);
    let groups = c
        .list_groups(pb::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner()
        .groups;
    let g = groups.iter().find(|g| g.name == "g").unwrap();
    assert_eq!((g.max, g.agents.clone()), (3, vec!["a".to_string()]));
    // The limit survives a restart of the coordinator on the same data dir.
    let data = cluster.dir.path().join("data");
    cluster.coordinator.stop().await;
    let restarted = rota_tests::Coordinator::start(&data, |_| {}).await;
    let mut c = rota_tests::client(&restarted.url).await;
    let groups = c
        .list_groups(pb::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(
        groups.iter().find(|g| g.name == "g").map(|g| g.max),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_execution_times_out_and_retries_keep_every_attempt() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 4, &[]);
    let mut c = cluster.client().await;
    let cfg = "jobset: limits\njobs:\n  slow:\n    command: [sleep, '30']\n    max_execution: 0.5\n    max_execution_grace: 1\n  flaky:\n    command: [sh, -c, 'exit 3']\n    retries: 2\n";
    c.apply(pb::ApplyRequest {
        path: "limits.yaml".into(),
        content: cfg.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let slow = trigger(&mut c, "slow").await;
    let flaky = trigger(&mut c, "flaky").await;
    wait_jobset(&mut c, "limits", Duration::from_secs(30)).await;
    let slow = c
        .get_run(pb::RunRef { run: slow.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (slow.state.as_str(), slow.error.as_str()),
        ("errored", "timed out")
    );
    let flaky = c
        .get_run(pb::RunRef { run: flaky.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(flaky.state, "errored");
    assert_eq!(flaky.attempts.len(), 3, "the first attempt and two retries");
    for (i, a) in flaky.attempts.iter().enumerate() {
        assert_eq!(
            (a.attempt, a.exit_code, a.agent.as_str()),
            (i as u32 + 1, Some(3), "a")
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_run_knows_its_previous_run() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 2, &[]);
    let mut c = cluster.client().await;
    let cfg = "jobset: prev\njobs:\n  p:\n    command: 'sh -c \"echo ${PREVIOUS_RUN_ID:-none} ${PREVIOUS_EXIT_CODE:-none}; exit 4\"'\n";
    c.apply(pb::ApplyRequest {
        path: "prev.yaml".into(),
        content: cfg.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let first = trigger(&mut c, "p").await;
    wait_jobset(&mut c, "prev", Duration::from_secs(30)).await;
    let second = trigger(&mut c, "p").await;
    wait_jobset(&mut c, "prev", Duration::from_secs(30)).await;
    assert_eq!(stdout_of(&mut c, &first.id).await.trim(), "none none");
    assert_eq!(
        stdout_of(&mut c, &second.id).await.trim(),
        format!("{} 4", first.id)
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_run_knows_its_previous_good_and_bad_runs_as_dsari_names_them() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a", 2, &[]);
    let mut c = cluster.client().await;
    let cfg =
        "jobset: goodbad\njobs:\n  p:\n    command: 'sh -c \"echo ${PREVIOUS_GOOD_RUN_ID:-none} \
               ${PREVIOUS_GOOD_RUN_NUMBER:-none} ${PREVIOUS_BAD_RUN_ID:-none} \
               ${PREVIOUS_BAD_RUN_NUMBER:-none} ${PREVIOUS_BAD_EXIT_CODE:-none} $CI $START_TIME; \
               exit ${CODE:-0}\"'\n";
    c.apply(pb::ApplyRequest {
        path: "goodbad.yaml".into(),
        content: cfg.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut runs = Vec::new();
    for code in ["0", "3", "0"] {
        let run = c
            .trigger(pb::TriggerRequest {
                job: "p".into(),
                env: [("CODE".to_string(), code.to_string())].into(),
            })
            .await
            .unwrap()
            .into_inner();
        wait_jobset(&mut c, "goodbad", Duration::from_secs(30)).await;
        runs.push(run);
    }
    let words = |out: String| -> Vec<String> { out.split_whitespace().map(String::from).collect() };
    let first = words(stdout_of(&mut c, &runs[0].id).await);
    assert_eq!(first[..6], ["none", "none", "none", "none", "none", "true"]);
    assert!(
        first[6].parse::<u64>().unwrap() > 1_700_000_000,
        "START_TIME: {first:?}"
    );
    let third = words(stdout_of(&mut c, &runs[2].id).await);
    let (good, bad) = (&runs[0], &runs[1]);
    assert_eq!(
        third[..6],
        [
            good.id.clone(),
            good.number.to_string(),
            bad.id.clone(),
            bad.number.to_string(),
            "3".to_string(),
            "true".to_string()
        ]
    );
    cluster.stop().await;
}
