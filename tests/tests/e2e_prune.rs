//! Real binaries: a prune killed between removing files and deleting rows is finished by the
//! next start, leaving no run without its logs and no logs without their run, and no
//! artifact content no run keeps (content shared with a kept run stays).

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

/// The artifact contents under `<data>/artifacts/content`, by digest.
fn contents(sys: &System) -> BTreeSet<String> {
    std::fs::read_dir(sys.data_dir().join("artifacts/content"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
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
    // Each run keeps one artifact of its own and one all six share (stored once).
    let lines: String = (1..=6)
        .map(|i| format!("echo shared > s.txt; echo {i} > own.txt; echo {i}\n"))
        .collect();
    let file = sys.path("s.txt");
    std::fs::write(&file, lines).unwrap();
    let submitted = sys.json(&[
        "submit",
        "--jobset",
        "s",
        "--artifact",
        "*.txt",
        "--from",
        file.to_str().unwrap(),
    ]);
    assert_eq!(submitted.as_array().map(Vec::len), Some(6));
    let waited = sys.rota(&["wait", "--jobset", "s"]);
    assert!(waited.status.success());
    let all = runs(&sys);
    assert_eq!(all.len(), 6);
    assert_eq!(log_dirs(&sys).len(), 6);
    assert_eq!(
        contents(&sys).len(),
        7,
        "six own contents and the shared one"
    );

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
    // The pruned runs' own contents are gone; the shared one stays with the kept run.
    assert_eq!(
        contents(&sys),
        BTreeSet::from([sha256_hex(b"shared\n"), sha256_hex(b"6\n")])
    );
    let status = sys.json(&["status"]);
    assert_eq!(status["retention"], "keep_last 1");
    let logs = sys.rota(&["logs", &newest.0.to_string()]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "6\n");
}
