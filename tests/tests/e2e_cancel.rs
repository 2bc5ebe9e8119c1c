//! Real binaries: `rota cancel` stops a run's whole process group, the shell and everything
//! it started in the background, and the run ends `cancelled`.

use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::{alive, group_members, read_pid, until, System};

const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn cancel_kills_the_shell_and_its_background_child() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    let child_file = sys.path("child.pid");
    let shell_file = sys.path("shell.pid");
    let script = format!(
        "sleep 1000 & echo $! > {}; echo $$ > {}; sleep 1000",
        child_file.display(),
        shell_file.display()
    );
    let run = sys.submit(&["--", "sh", "-c", &script]);
    let n = run["number"].to_string();

    let (child, shell) = until(DEADLINE, "both pids written", || {
        Some((read_pid(&child_file)?, read_pid(&shell_file)?))
    });
    assert!(alive(child) && alive(shell), "both run before the cancel");
    sys.wait_state(&n, "running", DEADLINE);

    let cancelled = sys.json(&["cancel", &n]);
    assert_eq!(cancelled["number"].to_string(), n);

    until(
        DEADLINE,
        "the shell and its background child to be gone",
        || (!alive(child) && !alive(shell)).then_some(()),
    );
    let run = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(run["attempts"][0]["state"], "cancelled", "{run}");
}

#[test]
fn cancel_leaves_no_process_of_the_runs_group() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    let shell_file = sys.path("shell.pid");
    let ready_file = sys.path("ready");
    // Background children of every kind: plain, a subshell's, a nested shell's grandchild,
    // one that ignores SIGTERM (only SIGKILL ends it), and a pipeline.
    let script = format!(
        "echo $$ > {shell}; \
         sleep 1001 & \
         (sleep 1002 &) ; \
         sh -c 'sleep 1003 & sleep 1004' & \
         sh -c 'trap \"\" TERM; sleep 1005' & \
         sleep 1006 | cat & \
         touch {ready}; \
         wait",
        shell = shell_file.display(),
        ready = ready_file.display(),
    );
    let run = sys.submit(&["--shell", "--", &script]);
    let n = run["number"].to_string();

    let pgid = until(DEADLINE, "the shell's pid", || read_pid(&shell_file));
    until(DEADLINE, "every background child started", || {
        let members = group_members(pgid);
        // At least: sh, sleep 1001, 1002, 1003, 1004, 1005, 1006, cat (a shell may exec its last
        // command instead of forking it, so the nested shells are not counted).
        (ready_file.exists() && members.len() >= 8).then_some(())
    });
    let before = group_members(pgid);

    sys.json(&["cancel", &n]);

    until(DEADLINE, "every process of the group to be gone", || {
        group_members(pgid).is_empty().then_some(())
    });
    for pid in before {
        assert!(!alive(pid), "{pid} is gone");
    }
    let run = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_eq!(run["state"], "cancelled", "{run}");
}
