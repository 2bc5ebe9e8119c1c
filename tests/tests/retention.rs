//! Retention in-process: finished runs past `max_age` (on an injected clock, no sleeping) or
//! beyond `keep_last` are deleted with their logs and emptied jobsets, nothing younger is, and
//! `PrunePreview` lists what goes before it goes.

use std::path::Path;
use std::time::Duration;

use rota_coordinator::retention::Policy;
use rota_coordinator::time::Clock;
use rota_proto as pb;
use rota_tests::{eventually, sh, wait_jobset, Agent, Client, Coordinator};

const DEADLINE: Duration = Duration::from_secs(30);

async fn submit(c: &mut Client, jobset: &str, parallel: u32, n: usize) -> Vec<pb::Run> {
    let runs = c
        .submit(pb::SubmitRequest {
            jobset: jobset.into(),
            parallel,
            runs: (0..n)
                .map(|i| sh(&format!("r{i}"), "echo out; echo err >&2"))
                .collect(),
        })
        .await
        .expect("submit")
        .into_inner()
        .runs;
    wait_jobset(c, jobset, DEADLINE).await;
    runs
}

async fn numbers(c: &mut Client, jobset: &str) -> Vec<u64> {
    c.list_runs(pb::ListRunsRequest {
        jobset: jobset.into(),
        ..Default::default()
    })
    .await
    .expect("list runs")
    .into_inner()
    .runs
    .iter()
    .map(|r| r.number)
    .collect()
}

fn log_dir(data: &Path, run: &pb::Run) -> std::path::PathBuf {
    data.join("logs").join(&run.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_on_an_injected_clock_deletes_old_runs_and_their_logs_and_nothing_younger() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let clock = Clock::adjustable();
    let mut coord = Coordinator::start(&data, |c| {
        c.clock = clock.clone();
        c.retention = Policy {
            max_age: Some(Duration::from_secs(600)),
            ..Default::default()
        };
    })
    .await;
    let mut c = rota_tests::client(&coord.url).await;
    let mut agent = Agent::start(&coord.url, "a", 4, &[], &dir.path().join("spool"));
    let old = submit(&mut c, "old", 0, 3).await;
    for run in &old {
        assert!(log_dir(&data, run).is_dir(), "{} has logs", run.id);
    }
    // Without an agent (its going processed) nothing wakes the engine between the clock's
    // jump and the preview but its own sweep timer, a minute of wall time away.
    agent.stop().await;
    eventually(DEADLINE, "the agent to be gone", || {
        let mut c = c.clone();
        async move {
            let agents = c
                .list_agents(pb::ListAgentsRequest {})
                .await
                .ok()?
                .into_inner();
            (!agents
                .agents
                .iter()
                .any(|a| a.state == "connected" || a.state == "draining"))
            .then_some(())
        }
    })
    .await;

    clock.advance(Duration::from_secs(601));
    let preview = c
        .prune_preview(pb::PruneRequest { limit: 0 })
        .await
        .expect("preview")
        .into_inner();
    let mut listed: Vec<u64> = preview.runs.iter().map(|r| r.number).collect();
    listed.sort();
    assert_eq!(listed, old.iter().map(|r| r.number).collect::<Vec<_>>());
    assert!(!preview.more);
    assert_eq!(preview.policy, "max_age 10m");

    let mut agent = Agent::start(&coord.url, "b", 4, &[], &dir.path().join("spool"));
    let young = submit(&mut c, "young", 0, 2).await;
    eventually(DEADLINE, "the old runs to be pruned", || {
        let mut c = c.clone();
        async move { numbers(&mut c, "").await.len().eq(&2).then_some(()) }
    })
    .await;
    assert_eq!(
        numbers(&mut c, "").await,
        young.iter().map(|r| r.number).collect::<Vec<_>>()
    );
    for run in &old {
        assert!(!log_dir(&data, run).exists(), "{}'s logs are gone", run.id);
    }
    for run in &young {
        assert!(log_dir(&data, run).is_dir(), "{} keeps its logs", run.id);
    }
    // The audit trail goes with the runs it names: the old submit's entry is gone, the young
    // one's stays.
    let audit = |run: u64| {
        let mut c = c.clone();
        async move {
            c.list_audit(pb::ListAuditRequest {
                run,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries
        }
    };
    for run in &old {
        assert_eq!(
            audit(run.number).await,
            [],
            "run {} has no audit left",
            run.number
        );
    }
    let kept = audit(young[0].number).await;
    assert!(kept.iter().any(|e| e.method == "Submit"), "{kept:?}");
    let all = audit(0).await;
    let submits: Vec<_> = all.iter().filter(|e| e.method == "Submit").collect();
    assert_eq!(
        submits.len(),
        1,
        "only the young runs' submit is left: {all:?}"
    );
    let jobsets: Vec<String> = c
        .list_jobsets(pb::ListJobsetsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobsets
        .into_iter()
        .map(|j| j.name)
        .collect();
    assert!(!jobsets.contains(&"old".to_string()), "{jobsets:?}");
    assert!(jobsets.contains(&"young".to_string()), "{jobsets:?}");
    let status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.pruned_runs, 3);
    assert_eq!(status.retention, "max_age 10m");
    assert!(status.log_bytes > 0);
    agent.stop().await;
    coord.stop().await;
}

const JOBS: &str = "
jobs:
  nightly:
    command: [echo, nightly]
    retention:
      keep_last: 1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_last_keeps_the_newest_finished_runs_of_each_jobset_and_a_job_policy_wins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut coord = Coordinator::start(&data, |c| {
        c.retention = Policy {
            keep_last: Some(2),
            ..Default::default()
        };
    })
    .await;
    let mut c = rota_tests::client(&coord.url).await;
    let mut agent = Agent::start(&coord.url, "a", 4, &[], &dir.path().join("spool"));
    c.apply(pb::ApplyRequest {
        path: "jobs.yaml".into(),
        content: JOBS.into(),
        ..Default::default()
    })
    .await
    .expect("apply");

    let a = submit(&mut c, "a", 1, 5).await;
    let b = submit(&mut c, "b", 1, 1).await;
    let mut nightly = Vec::new();
    for _ in 0..3 {
        let run = c
            .trigger(pb::TriggerRequest {
                job: "nightly".into(),
                ..Default::default()
            })
            .await
            .expect("trigger")
            .into_inner();
        c.wait(pb::WaitRequest {
            runs: vec![run.id.clone()],
            jobset: String::new(),
        })
        .await
        .expect("wait");
        nightly.push(run);
    }
    let expect_a: Vec<u64> = a[3..].iter().map(|r| r.number).collect();
    eventually(DEADLINE, "keep_last to apply", || {
        let mut c = c.clone();
        let expect_a = expect_a.clone();
        async move {
            let left_a = numbers(&mut c, "a").await;
            let left_jobs = numbers(&mut c, "jobs").await;
            (left_a == expect_a && left_jobs.len() == 1).then_some(())
        }
    })
    .await;
    assert_eq!(numbers(&mut c, "b").await, vec![b[0].number]);
    assert_eq!(numbers(&mut c, "jobs").await, vec![nightly[2].number]);
    for run in &a[..3] {
        assert!(!log_dir(&data, run).exists());
    }
    let status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.retention, "keep_last 2; 1 job with its own");
    agent.stop().await;
    coord.stop().await;
}

/// An audit entry that names no run (a group's max, a jobset's parallel) has no run to be
/// pruned with: it goes once older than `max_age`, and a younger one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_entries_naming_no_run_go_by_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::adjustable();
    let mut coord = Coordinator::start(&dir.path().join("data"), |c| {
        c.clock = clock.clone();
        c.retention = Policy {
            max_age: Some(Duration::from_secs(600)),
            ..Default::default()
        };
    })
    .await;
    let c = rota_tests::client(&coord.url).await;
    let set_max = |max: u32| {
        let mut c = c.clone();
        async move {
            c.set_group_max(pb::SetGroupMaxRequest {
                name: "db".into(),
                max,
            })
            .await
            .expect("set group max");
        }
    };
    set_max(2).await;
    clock.advance(Duration::from_secs(601));
    // The next batch starts an age sweep (its timer is past): the old entry goes, this one
    // (made now) stays.
    set_max(3).await;
    let targets = |c: &Client| {
        let mut c = c.clone();
        async move {
            c.list_audit(pb::ListAuditRequest::default())
                .await
                .unwrap()
                .into_inner()
                .entries
                .into_iter()
                .map(|e| e.target)
                .collect::<Vec<_>>()
        }
    };
    let left = eventually(DEADLINE, "the old group-max entry to go", || async {
        let left = targets(&c).await;
        (left.len() == 1).then_some(left)
    })
    .await;
    assert_eq!(left, ["group db max 3"]);
    coord.stop().await;
}
