//! Real binaries: a prune killed between removing files and deleting rows is finished by the
//! next start, leaving no run without its logs and no logs without their run.

use std::collections::BTreeSet;
use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::{until, System};

const DEADLINE: Duration = Duration::from_secs(30);

/// The run directories under `<data>/logs`.
fn log_dirs(sys: &System) -> BTreeSet<String> {
    std::fs::read_dir(sys.data_dir().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// (number, id) of every run, by number.
fn runs(sys: &System) -> Vec<(u64, String)> {
    sys.json(&["runs", "--limit", "0"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["number"].as_u64().unwrap(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_prune_aborted_after_removing_files_is_finished_by_the_next_start_with_no_orphans() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    sys.submit_lines("s", "echo 1\necho 2\necho 3\necho 4\necho 5\necho 6\n");
    let waited = sys.rota(&["wait", "--jobset", "s"]);
    assert!(waited.status.success());
    let all = runs(&sys);
    assert_eq!(all.len(), 6);
    assert_eq!(log_dirs(&sys).len(), 6);

    // Restarted with keep_last 1: five runs go in one batch, and the test hook aborts the
    // process (as kill -9 would: no cleanup) once the files of two are removed.
    sys.stop_coordinator();
    std::env::set_var("ROTA_TEST_PRUNE_ABORT_AFTER", "2");
    sys.restart_coordinator_with(&["--keep-last", "1"]);
    std::env::remove_var("ROTA_TEST_PRUNE_ABORT_AFTER");
    until(DEADLINE, "the coordinator to abort mid-prune", || {
        sys.coordinator().try_exit_code().map(|_| ())
    });
    assert_eq!(log_dirs(&sys).len(), 4, "two runs' files were removed");
    sys.kill9_coordinator();

    sys.restart_coordinator_with(&["--keep-last", "1"]);
    let newest = all.last().unwrap().clone();
    until(DEADLINE, "the interrupted prune to be finished", || {
        (runs(&sys) == vec![newest.clone()]).then_some(())
    });
    until(DEADLINE, "only the kept run's logs to be left", || {
        (log_dirs(&sys) == BTreeSet::from([newest.1.clone()])).then_some(())
    });
    let status = sys.json(&["status"]);
    assert_eq!(status["retention"], "keep_last 1");
    let logs = sys.rota(&["logs", &newest.0.to_string()]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "6\n");
}
