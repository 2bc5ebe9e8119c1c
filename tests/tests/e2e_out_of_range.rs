//! Numbers no run can have (past SQLite's signed 64-bit integers, up to `u64::MAX`) are
//! refused with one line naming them, by every command that takes a run, and never stop the
//! coordinator. Behind the service's checks, a read the store cannot do answers its own command
//! with an error and the engine goes on.

use std::time::Duration;

use rota_coordinator::engine::{self, Actor, Command, EngineConfig};
use rota_coordinator::sched::SchedConfig;
use rota_proto as pb;
use rota_tests::bins;
use rota_tests::procs::System;

const PAST_I64: [&str; 3] = [
    "9223372036854775808",
    "9223372036854775809",
    "18446744073709551615",
];

#[test]
fn run_numbers_past_the_store_are_refused_by_every_command_and_the_coordinator_serves_on() {
    let sys = System::start(bins!());
    let run = sys.submit(&["--", "true"]);
    for n in PAST_I64 {
        for args in [
            vec!["show", n],
            vec!["logs", n],
            vec!["logs", "-f", n],
            vec!["cancel", n],
            vec!["retry", n],
            vec!["retire", n],
            vec!["wait", n],
            vec!["runs", "--after", n],
        ] {
            let out = sys.rota(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "rota {args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "rota {args:?}: one line: {err:?}");
            assert!(err.contains(n), "rota {args:?} names the number: {err:?}");
            // Still serving, with its runs intact.
            assert_eq!(sys.show(run["id"].as_str().unwrap())["number"], 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_read_answers_its_command_and_the_engine_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine::start(EngineConfig {
        postgres: None,
        data_dir: dir.path().to_path_buf(),
        lease: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(1),
        sched: SchedConfig::default(),
        cancel_grace: Duration::from_secs(1),
        reserve_bytes: 0,
        max_log_bytes: rota_coordinator::server::DEFAULT_MAX_LOG_BYTES,
        retention: Default::default(),
        clock: Default::default(),
        address: String::new(),
        seen: Default::default(),
    })
    .unwrap();
    // Straight to the engine, past the service's checks: each read fails in the store.
    let big = PAST_I64[0].to_string();
    let err = engine
        .ask(|t| Command::GetRun(big.clone(), t))
        .await
        .expect_err("no such run");
    assert!(err.to_string().contains("out of range"), "{err}");
    engine
        .ask(|t| Command::Cancel(big.clone(), Actor::config_file(), t))
        .await
        .expect_err("no such run");
    engine
        .ask(|t| Command::Retire(big.clone(), Actor::config_file(), t))
        .await
        .expect_err("no such run");
    let retry = pb::RetryRequest {
        run: big.clone(),
        ..Default::default()
    };
    engine
        .ask(|t| Command::Retry(retry, Actor::config_file(), t))
        .await
        .expect_err("no such run");
    let list = pb::ListRunsRequest {
        after_number: u64::MAX,
        ..Default::default()
    };
    engine
        .ask(|t| Command::ListRuns(list, t))
        .await
        .expect_err("beyond the store");

    // The engine still takes writes and reads.
    let submit = pb::SubmitRequest {
        runs: vec![rota_tests::sh("ok", "true")],
        ..Default::default()
    };
    let runs = engine
        .ask(|t| Command::Submit(submit, Actor::config_file(), t))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let run = engine
        .ask(|t| Command::GetRun("1".into(), t))
        .await
        .unwrap();
    assert_eq!(run.id, runs[0].id);
}
