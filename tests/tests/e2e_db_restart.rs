//! The PostgreSQL server restarted under load (issue 10): the coordinator's batch in flight
//! fails, it starts over from the store in place (same pid, same port) and serves again; the
//! agents reconnect and keep their runs. Nothing acknowledged is lost: every run succeeds once
//! with its whole log, and every submit that was answered is there. A binary of its own: the
//! restart cuts every connection to the test process's server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rota_tests::bins;
use rota_tests::pg::Backend;
use rota_tests::procs::{until, Cli, System, STEADY};

const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn a_database_restart_under_load_loses_nothing_acknowledged() {
    let Some(store) = Backend::postgres() else {
        return;
    };
    let mut sys = System::start_on(bins!(), &store, STEADY);
    sys.start_agent("a", 4, &[]);
    sys.start_agent("b", 4, &[]);
    sys.wait_agents(&["a", "b"]);
    let pid = sys.coordinator_pid();
    const RUNS: u64 = 120;
    let lines: String = (1..=RUNS)
        .map(|n| {
            format!("i=0; while [ $i -lt 10 ]; do echo \"run {n} line $i\"; i=$((i+1)); sleep 0.03; done\n")
        })
        .collect();
    sys.submit_lines("farm", &lines);
    let succeeded = |sys: &System| {
        sys.runs_of("farm")
            .values()
            .filter(|r| r["state"] == "success")
            .count()
    };
    until(DEADLINE, "some runs to finish before the restart", || {
        (succeeded(&sys) >= 20).then_some(())
    });

    // One submit after another through the restart: each answered one must be kept.
    let stop = AtomicBool::new(false);
    let acknowledged = std::thread::scope(|scope| {
        let submitter = scope.spawn(|| {
            let cli = Cli {
                bin: sys.bins.rota,
                url: &sys.url,
                env: &[],
            };
            let mut answered = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let number = n.to_string();
                let out = cli.rota(&["submit", "-q", "--jobset", "during", "--", "echo", &number]);
                if out.status.success() {
                    answered.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
                }
            }
            answered
        });
        std::thread::sleep(Duration::from_millis(300));
        rota_tests::pg::restart();
        // Serving again (it started over in place), then a while more of submits.
        until(DEADLINE, "the coordinator to serve again", || {
            sys.rota(&["runs", "--limit", "1"])
                .status
                .success()
                .then_some(())
        });
        let after = succeeded(&sys);
        until(DEADLINE, "runs to finish after the restart", || {
            (succeeded(&sys) >= after + 10).then_some(())
        });
        stop.store(true, Ordering::SeqCst);
        submitter.join().unwrap()
    });
    assert_eq!(sys.coordinator_pid(), pid, "the same process, started over");
    assert!(
        sys.coordinator_log()
            .contains("starting over from the store"),
        "{}",
        sys.coordinator_log()
    );

    let waited = sys.rota(&["wait", "--jobset", "farm"]);
    assert_eq!(waited.status.code(), Some(0), "{waited:?}");
    let runs = sys.runs_of("farm");
    assert_eq!(runs.len() as u64, RUNS);
    for (n, run) in &runs {
        let shown = sys.json(&["show", &n.to_string()]);
        assert_eq!(run["state"], "success", "run {n}: {shown}");
        assert_eq!(
            shown["attempts"].as_array().unwrap().len(),
            1,
            "run {n} ran once: {shown}"
        );
        let expected: String = (0..10).map(|i| format!("run {n} line {i}\n")).collect();
        let logs = sys.rota(&["logs", &n.to_string()]);
        assert_eq!(
            String::from_utf8_lossy(&logs.stdout),
            expected,
            "run {n}'s log"
        );
    }
    assert!(!acknowledged.is_empty(), "some submits were answered");
    let waited = sys.rota(&["wait", "--jobset", "during"]);
    assert_eq!(waited.status.code(), Some(0), "{waited:?}");
    for id in &acknowledged {
        assert_eq!(
            sys.show(id)["state"],
            "success",
            "acknowledged submit {id} kept"
        );
    }
}
