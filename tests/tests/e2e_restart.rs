//! Real binaries: the coordinator is `kill -9`ed and restarted on the same data dir and port;
//! nothing pending, running or finished is lost, run numbers do not change, and agents
//! reconnect by themselves and resend their logs from where the coordinator stopped. The
//! kill -9 tests run on both stores, SQLite in the data dir and PostgreSQL.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use rota_tests::pg::Backend;
use rota_tests::procs::{until, System, STEADY};
use rota_tests::{bins, on_both_stores, pseudo_random_bytes};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until no run of `jobset` is running any more.
fn wait_jobset_finished(sys: &System, jobset: &str, deadline: Duration) {
    until(deadline, &format!("jobset {jobset} to finish"), || {
        (sys.json(&["jobset", "show", jobset])["state"] != "running").then_some(())
    });
}

fn kill_9_of_the_coordinator_loses_no_queued_or_finished_run(store: Backend) {
    let mut sys = System::start_on(bins!(), &store, STEADY);
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    sys.submit_lines("done", "echo one\nexit 3\nprintf 'two\\n' >&2\n");
    let waited = sys.rota(&["wait", "--jobset", "done"]);
    assert_eq!(waited.status.code(), Some(1), "one of them failed");
    let finished = sys.runs_of("done");
    assert_eq!(finished.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);

    // No agent from here on: what is submitted now stays queued.
    sys.agent("a").signal(Signal::SIGTERM);
    assert_eq!(sys.agent("a").wait(), Some(0));
    until(DEADLINE, "agent a to be gone", || {
        sys.agents()
            .iter()
            .all(|a| a["state"] != "connected")
            .then_some(())
    });
    sys.submit_lines("queued", "echo q4\necho q5\necho q6\n");
    let queued = sys.runs_of("queued");
    assert_eq!(queued.keys().copied().collect::<Vec<_>>(), [4, 5, 6]);
    assert!(queued.values().all(|r| r["state"] == "pending"));

    sys.kill9_coordinator();
    sys.restart_coordinator();

    let after = sys.runs_of("done");
    assert_eq!(after.len(), 3);
    for (n, before) in &finished {
        let now = &after[n];
        for field in [
            "id",
            "state",
            "exit_code",
            "error",
            "finished_at_ms",
            "command",
            "stdout_len",
            "stderr_len",
        ] {
            assert_eq!(now[field], before[field], "run {n}: {field}");
        }
    }
    let states: Vec<(&str, &Value)> = after
        .values()
        .map(|r| (r["state"].as_str().unwrap(), &r["exit_code"]))
        .collect();
    assert_eq!(
        states,
        [
            ("success", &Value::from(0)),
            ("errored", &Value::from(3)),
            ("success", &Value::from(0)),
        ]
    );
    assert_eq!(sys.rota(&["logs", "1"]).stdout, b"one\n");
    assert_eq!(sys.rota(&["logs", "3"]).stderr, b"two\n");

    let still = sys.runs_of("queued");
    for (n, before) in &queued {
        assert_eq!(still[n]["id"], before["id"], "run {n} keeps its id");
        assert_eq!(still[n]["state"], "pending", "run {n} is still queued");
        assert_ne!(still[n]["waiting_reason"], "", "run {n} says why it waits");
    }

    // An agent comes: the queued runs run, in order, and new numbers continue the sequence.
    sys.start_agent("b", 1, &[]);
    let waited = sys.rota(&["wait", "--jobset", "queued"]);
    assert_eq!(waited.status.code(), Some(0), "every queued run succeeded");
    for n in 4..=6 {
        let logs = sys.rota(&["logs", &n.to_string()]);
        assert_eq!(logs.stdout, format!("q{n}\n").as_bytes());
    }
    let next = sys.submit(&["--", "true"]);
    assert_eq!(next["number"], 7, "numbers continue without a gap");
}

/// 64 KiB pieces of output per run, printed with short pauses: 5 MiB over a few seconds.
const PIECE: usize = 64 << 10;
const PIECES: usize = 80;
const RUNS: usize = 20;

fn stored_len(sys: &System, run_id: &str) -> u64 {
    let path: PathBuf = sys.data_dir().join("logs").join(run_id).join("1.stdout");
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Bytes of a run's stdout in its agent's spool (it runs on `a` or `b`).
fn spooled_len(sys: &System, run_id: &str) -> u64 {
    ["a", "b"]
        .iter()
        .map(|agent| {
            sys.path(&format!("spool-{agent}"))
                .join(format!("{run_id}.1.stdout"))
        })
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

fn kill_9_of_the_coordinator_while_twenty_runs_print_loses_no_byte_and_no_result(store: Backend) {
    let mut sys = System::start_on(bins!(), &store, STEADY);
    sys.start_agent("a", 10, &[]);
    sys.start_agent("b", 10, &[]);
    let data = pseudo_random_bytes(42, PIECE * PIECES);
    let data_file = sys.path("data.bin");
    std::fs::write(&data_file, &data).unwrap();
    let lines: String = (0..RUNS)
        .map(|k| {
            format!(
                "printf 'run {k}\\n'; i=0; while [ $i -lt {PIECES} ]; do \
                 dd if={data} bs={PIECE} skip=$i count=1 2>/dev/null; sleep 0.05; i=$((i+1)); \
                 done\n",
                data = data_file.display()
            )
        })
        .collect();
    sys.wait_agents(&["a", "b"]);
    let runs = sys.submit_lines("big", &lines);
    assert_eq!(runs.len(), RUNS);
    let ids: Vec<String> = runs
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();

    // Mid-way: every run is running and has part of its output stored, none is finished.
    until(DEADLINE, "every run to have stored some output", || {
        ids.iter()
            .all(|id| stored_len(&sys, id) >= 512 << 10)
            .then_some(())
    });
    let before = sys.runs_of("big");
    assert!(
        before.values().all(|r| r["state"] == "running"),
        "all running at the kill"
    );
    sys.kill9_coordinator();
    let at_kill: Vec<u64> = ids.iter().map(|id| stored_len(&sys, id)).collect();
    assert!(at_kill.iter().all(|&len| len < (PIECE * PIECES) as u64));
    // The runs go on without a coordinator: their agents spool what the coordinator misses.
    until(
        DEADLINE,
        "every run to spool output past what was stored",
        || {
            ids.iter()
                .zip(&at_kill)
                .all(|(id, &stored)| spooled_len(&sys, id) >= stored + (256 << 10))
                .then_some(())
        },
    );
    sys.restart_coordinator();

    wait_jobset_finished(&sys, "big", Duration::from_secs(50));
    let after = sys.runs_of("big");
    for (k, id) in ids.iter().enumerate() {
        let run = after.values().find(|r| r["id"] == id.as_str()).unwrap();
        let n = run["number"].to_string();
        assert_eq!(run["state"], "success", "run {n}: {run}");
        let shown = sys.show(&n);
        let successes = shown["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "success")
            .count();
        assert_eq!(successes, 1, "run {n} has exactly one success: {shown}");
        let mut expected = format!("run {k}\n").into_bytes();
        expected.extend_from_slice(&data);
        let logs = sys.rota(&["logs", &n, "--stdout"]);
        assert_eq!(logs.stdout.len(), expected.len(), "run {n}: log length");
        assert!(logs.stdout == expected, "run {n}: log is byte-identical");
    }
}

/// A cancel is answered once stored: a run that ignores SIGTERM is still running (in its grace)
/// when the coordinator is `kill -9`ed; after the restart its agent reports it killed, and it
/// ends `cancelled` with one attempt, not queued again as if its agent had stopped it.
fn a_cancel_in_its_grace_survives_a_kill_9_of_the_coordinator(store: Backend) {
    let mut flags = STEADY.to_vec();
    flags.extend(["--cancel-grace", "3"]);
    let mut sys = System::start_on(bins!(), &store, &flags);
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let pid_file = sys.path("stubborn.pid");
    let run = sys.submit(&[
        "--shell",
        "--",
        &format!(
            "trap '' TERM; echo $$ > {}; while :; do sleep 0.1; done",
            pid_file.display()
        ),
    ]);
    let n = run["number"].to_string();
    let pid = until(DEADLINE, "the run to start", || {
        rota_tests::procs::read_pid(&pid_file)
    });
    sys.wait_state(&n, "running", DEADLINE);
    let cancelled = sys.rota(&["cancel", &n]);
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert!(
        rota_tests::procs::alive(pid),
        "SIGTERM is ignored: the run is in its grace"
    );

    sys.kill9_coordinator();
    sys.restart_coordinator();

    let run = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(run["attempts"].as_array().unwrap().len(), 1, "{run}");
    assert!(!rota_tests::procs::alive(pid));
}

/// Issue 4's outage: the coordinator is gone for 30 s while four runs print a line every 50 ms.
/// The agent keeps spooling, reconnects on its own once the coordinator is back, resends from
/// the acknowledged offsets, and every log comes back byte-identical with one success.
#[test]
fn a_coordinator_away_for_30_s_loses_no_byte_of_runs_that_kept_printing() {
    const RUNS: usize = 4;
    const LINES: usize = 800; // 50 ms apart: about 40 s of output per run
    const OUTAGE: Duration = Duration::from_secs(30);
    let mut sys = System::start(bins!());
    sys.start_agent("a", RUNS as u32, &[]);
    sys.wait_agents(&["a"]);
    let lines: String = (0..RUNS)
        .map(|k| {
            format!(
                "i=0; while [ $i -lt {LINES} ]; do printf 'run {k} line %05d\\n' $i; \
                 sleep 0.05; i=$((i+1)); done\n"
            )
        })
        .collect();
    let runs = sys.submit_lines("outage", &lines);
    let ids: Vec<String> = runs
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    until(DEADLINE, "every run to have stored some output", || {
        ids.iter().all(|id| stored_len(&sys, id) > 0).then_some(())
    });

    sys.kill9_coordinator();
    let at_kill: Vec<u64> = ids.iter().map(|id| spooled_len(&sys, id)).collect();
    // The outage itself is the scenario, not a wait for a condition.
    std::thread::sleep(OUTAGE);
    for (id, &before) in ids.iter().zip(&at_kill) {
        assert!(
            spooled_len(&sys, id) > before + 1024,
            "run {id} kept printing into the spool while the coordinator was away"
        );
    }
    sys.restart_coordinator();

    wait_jobset_finished(&sys, "outage", Duration::from_secs(60));
    let after = sys.runs_of("outage");
    for (k, id) in ids.iter().enumerate() {
        let run = after.values().find(|r| r["id"] == id.as_str()).unwrap();
        let n = run["number"].to_string();
        assert_eq!(run["state"], "success", "run {n}: {run}");
        assert_eq!(sys.show(&n)["attempts"].as_array().unwrap().len(), 1);
        let expected: String = (0..LINES)
            .map(|i| format!("run {k} line {i:05}\n"))
            .collect();
        let logs = sys.rota(&["logs", &n, "--stdout"]);
        assert!(
            logs.stdout == expected.as_bytes(),
            "run {n}: log differs ({} bytes, expected {})",
            logs.stdout.len(),
            expected.len()
        );
    }
}

on_both_stores!(
    kill_9_of_the_coordinator_loses_no_queued_or_finished_run,
    kill_9_of_the_coordinator_while_twenty_runs_print_loses_no_byte_and_no_result,
    a_cancel_in_its_grace_survives_a_kill_9_of_the_coordinator,
);
