//! Real binaries, agent faults: an agent killed with `kill -9`, and an agent whose network
//! stalls (a TCP proxy that stops forwarding without closing). Either way the run is retried
//! on the other agent and ends with exactly one success; a stale agent's late result never
//! counts and its leftover process is killed.

use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::{alive, read_pid, until, System, FAST};
use rota_tests::proxy::Proxy;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

/// A command that never ends on agent `a` (it records its pid in `pid_file` first) and
/// succeeds at once anywhere else.
fn stuck_on_a(pid_file: &std::path::Path, label: &str) -> String {
    format!(
        "if [ \"$AGENT_NAME\" = a ]; then echo $$ > {pid}; exec sleep 1000; fi; \
         echo {label} ran on $AGENT_NAME",
        pid = pid_file.display()
    )
}

/// Like [`stuck_on_a`], but on `a` the shell waits on a background child whose pid goes to
/// `child_file`: the process a parent-death signal alone would leave running.
fn stuck_on_a_with_child(pid_file: &std::path::Path, child_file: &std::path::Path) -> String {
    format!(
        "if [ \"$AGENT_NAME\" = a ]; then sleep 1000 & echo $! > {child}; echo $$ > {pid}; wait; fi; \
         echo r ran on $AGENT_NAME",
        pid = pid_file.display(),
        child = child_file.display()
    )
}

/// Asserts the run succeeded on `b` after its first attempt on `a` was lost: two attempts,
/// exactly one success.
fn assert_lost_on_a_then_succeeded_on_b(run: &Value) {
    assert_eq!(run["state"], "success", "{run}");
    assert_eq!(run["agent"], "b", "{run}");
    assert_eq!(run["exit_code"], 0, "{run}");
    let attempts = run["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "two attempts: {run}");
    let successes = attempts.iter().filter(|a| a["state"] == "success").count();
    assert_eq!(successes, 1, "exactly one success: {run}");
    assert_eq!(attempts[0]["agent"], "a");
    assert_eq!(attempts[0]["state"], "errored");
    assert_eq!(attempts[0]["error"], "agent lost");
    assert_eq!(attempts[1]["agent"], "b");
    assert_eq!(attempts[1]["state"], "success");
}

#[test]
fn kill_9_of_an_agent_retries_its_run_on_the_other_agent() {
    let mut sys = System::start_with(bins!(), FAST);
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let pid_file = sys.path("a.pid");
    let child_file = sys.path("a-child.pid");
    let run = sys.submit(&[
        "--retries",
        "1",
        "--shell",
        "--",
        &stuck_on_a_with_child(&pid_file, &child_file),
    ]);
    let n = run["number"].to_string();
    let pid = until(DEADLINE, "the run to start on a", || read_pid(&pid_file));
    let child = until(DEADLINE, "its background child", || read_pid(&child_file));
    sys.wait_run(&n, DEADLINE, "running on a", |v| {
        v["state"] == "running" && v["agent"] == "a"
    });
    sys.start_agent("b", 1, &[]);
    sys.wait_agents(&["a", "b"]);

    sys.agent("a").kill9();

    until(
        DEADLINE,
        "a's run and its background child to die with it",
        || (!alive(pid) && !alive(child)).then_some(()),
    );
    let run = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_lost_on_a_then_succeeded_on_b(&run);
    assert_eq!(sys.rota(&["logs", &n]).stdout, b"r ran on b\n");
}

#[test]
fn a_stalled_agent_loses_its_run_to_another_and_its_late_result_is_refused() {
    let mut sys = System::start_with(bins!(), FAST);
    let proxy = Proxy::start(sys.addr);
    sys.start_agent_at(&proxy.url(), "a", 2, &[]);
    sys.wait_agents(&["a"]);

    // Two runs on a: one that will end by itself while a is cut off (its result comes too
    // late), one that would run forever (a must kill it once it learns it lost the run).
    let late_pid_file = sys.path("late.pid");
    let release = sys.path("release");
    let late_script = format!(
        "if [ \"$AGENT_NAME\" = a ]; then echo $$ > {pid}; \
         while [ ! -e {release} ]; do sleep 0.02; done; fi; echo late ran on $AGENT_NAME",
        pid = late_pid_file.display(),
        release = release.display(),
    );
    let stuck_pid_file = sys.path("stuck.pid");
    let late = sys.submit(&["--retries", "1", "--shell", "--", &late_script]);
    let stuck = sys.submit(&[
        "--retries",
        "1",
        "--shell",
        "--",
        &stuck_on_a(&stuck_pid_file, "stuck"),
    ]);
    let (late_n, stuck_n) = (late["number"].to_string(), stuck["number"].to_string());
    let late_pid = until(DEADLINE, "late to start on a", || read_pid(&late_pid_file));
    let stuck_pid = until(DEADLINE, "stuck to start on a", || {
        read_pid(&stuck_pid_file)
    });
    for n in [&late_n, &stuck_n] {
        sys.wait_run(n, DEADLINE, "running on a", |v| {
            v["state"] == "running" && v["agent"] == "a"
        });
    }
    sys.start_agent("b", 2, &[]);
    sys.wait_agents(&["a", "b"]);

    proxy.freeze(true);

    // Past the lease the coordinator gives a's runs to b, where they succeed.
    for n in [&late_n, &stuck_n] {
        let run = sys.wait_run(n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
        assert_lost_on_a_then_succeeded_on_b(&run);
    }
    // a's copies still run: cut off, a cannot know it lost them.
    assert!(alive(late_pid) && alive(stuck_pid));
    // The late run now ends on a with exit 0, while a is still cut off.
    std::fs::write(&release, "").unwrap();
    until(DEADLINE, "late to end on a", || {
        (!alive(late_pid)).then_some(())
    });

    proxy.freeze(false);

    until(DEADLINE, "a to kill the run it lost", || {
        (!alive(stuck_pid)).then_some(())
    });
    until(DEADLINE, "a to be back, holding nothing", || {
        sys.agents()
            .iter()
            .any(|a| {
                a["name"] == "a"
                    && a["state"] == "connected"
                    && a["running_runs"].as_array().is_some_and(Vec::is_empty)
            })
            .then_some(())
    });
    // a's late success changed nothing: one success each, b's, with b's output.
    for (n, label) in [(&late_n, "late"), (&stuck_n, "stuck")] {
        let run = sys.show(n);
        assert_lost_on_a_then_succeeded_on_b(&run);
        let logs = sys.rota(&["logs", n]);
        assert_eq!(
            String::from_utf8_lossy(&logs.stdout),
            format!("{label} ran on b\n")
        );
    }
}
