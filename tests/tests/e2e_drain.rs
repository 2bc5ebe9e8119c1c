//! Real binaries: an agent asked to drain (SIGTERM, or `rota drain NAME`) takes no new runs,
//! lets its running run finish, and exits 0 only once that run's result and whole log are
//! stored by the coordinator.

use std::time::Duration;

use nix::sys::signal::Signal;
use rota_tests::procs::{until, System};
use rota_tests::{bins, pseudo_random_bytes};

const DEADLINE: Duration = Duration::from_secs(20);

/// How the agent is told to drain.
enum Ask {
    Sigterm,
    RotaDrain,
}

fn drain_waits_for_the_running_run(ask: Ask) {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    // Output written after the drain began: it must still all arrive.
    let tail = pseudo_random_bytes(7, 3 << 20);
    let tail_file = sys.path("tail.bin");
    std::fs::write(&tail_file, &tail).unwrap();
    let go = sys.path("go");
    let script = format!(
        "echo start; while [ ! -e {go} ]; do sleep 0.02; done; cat {tail}; echo end",
        go = go.display(),
        tail = tail_file.display(),
    );
    let run = sys.submit(&["--shell", "--", &script]);
    let n = run["number"].to_string();
    sys.wait_state(&n, "running", DEADLINE);

    match ask {
        Ask::Sigterm => sys.agent("a").signal(Signal::SIGTERM),
        Ask::RotaDrain => {
            let agent = sys.json(&["drain", "a"]);
            assert_eq!(agent["state"], "draining", "{agent}");
        }
    }
    until(DEADLINE, "the coordinator to see agent a draining", || {
        sys.agents()
            .iter()
            .any(|a| a["name"] == "a" && a["state"] == "draining")
            .then_some(())
    });
    // A draining agent takes no new run, even with a free slot.
    let queued = sys.submit(&["--", "true"]);
    assert_eq!(queued["state"], "pending", "{queued}");
    assert!(
        sys.agent("a").child.try_wait().unwrap().is_none(),
        "the agent waits for its running run"
    );
    assert_eq!(sys.show(&n)["state"], "running");

    std::fs::write(&go, "").unwrap();

    let code = until(DEADLINE, "the agent to exit", || {
        sys.agent("a").child.try_wait().unwrap()
    })
    .code();
    assert_eq!(code, Some(0), "a drained agent exits 0");
    // Its exit came after the coordinator stored the result and the whole log.
    let run = sys.show(&n);
    assert_eq!(run["state"], "success", "{run}");
    let mut expected = b"start\n".to_vec();
    expected.extend_from_slice(&tail);
    expected.extend_from_slice(b"end\n");
    assert_eq!(run["stdout_len"], expected.len());
    let logs = sys.rota(&["logs", &n]);
    assert!(logs.status.success());
    assert!(logs.stdout == expected, "the full output is stored");
    assert_eq!(
        sys.show(&queued["number"].to_string())["state"],
        "pending",
        "the queued run waits for another agent"
    );
}

#[test]
fn sigterm_makes_the_agent_exit_0_only_after_its_run_finished_and_its_log_is_stored() {
    drain_waits_for_the_running_run(Ask::Sigterm);
}

#[test]
fn rota_drain_makes_the_agent_exit_0_only_after_its_run_finished_and_its_log_is_stored() {
    drain_waits_for_the_running_run(Ask::RotaDrain);
}

#[test]
fn a_run_still_going_at_the_drain_deadline_is_retried_on_another_agent() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 1, &["--drain-timeout", "1s"]);
    sys.wait_agents(&["a"]);
    // The first attempt would run for a long time; any later attempt succeeds at once.
    let run = sys.submit(&["--shell", "--", "test \"$ATTEMPT\" -gt 1 || sleep 300"]);
    let n = run["number"].to_string();
    sys.wait_state(&n, "running", DEADLINE);
    sys.agent("a").signal(Signal::SIGTERM);
    let code = until(DEADLINE, "agent a to give up its run and exit", || {
        sys.agent("a").child.try_wait().unwrap()
    })
    .code();
    assert_eq!(code, Some(0));
    sys.start_agent("b", 1, &[]);
    sys.wait_state(&n, "success", DEADLINE);
    let shown = sys.show(&n);
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{shown}");
    assert_eq!(attempts[0]["agent"], "a");
    assert_eq!(attempts[1]["agent"], "b");
    assert_eq!(attempts[1]["state"], "success");
}
