//! Real binaries: `rota-coordinator backup` while the coordinator runs and dispatches a stream
//! of short runs (W1-like), then a coordinator started on the backup serves every run it
//! holds, with the same record and the same log bytes.

use std::time::Duration;

use rota_tests::procs::{self, until, System, STEADY};
use rota_tests::{bins, pseudo_random_bytes};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

fn runs_at(bin: &str, url: &str) -> Vec<Value> {
    let out = procs::rota(bin, url, &["-o", "json", "runs", "--limit", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn logs_at(bin: &str, url: &str, run: u64) -> Vec<u8> {
    let out = procs::rota(bin, url, &["logs", &run.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_backup_taken_under_load_restores_every_run_and_log_it_holds() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 4, &[]);
    sys.wait_agents(&["a"]);
    // Runs with output worth checking: a few hundred KiB each, some of them on stderr.
    let blob = sys.path("blob");
    std::fs::write(&blob, pseudo_random_bytes(7, 300_000)).unwrap();
    let blob = blob.to_str().unwrap();
    let lines: String = (0..8)
        .map(|i| format!("cat {blob}; echo {i} >&2\n"))
        .collect();
    sys.submit_lines("logs", &lines);
    assert!(sys.rota(&["wait", "--jobset", "logs"]).status.success());

    // Load: 300 short runs submitted in bursts while the backup is taken.
    let load = "true\n".repeat(100);
    for _ in 0..2 {
        sys.submit_lines("load", &load);
    }
    let backup = sys.path("backup");
    let out = std::process::Command::new(sys.bins.coordinator)
        .args(["backup", "--data-dir"])
        .arg(sys.data_dir())
        .arg("--to")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("backed up "));
    sys.submit_lines("load", &load);
    assert!(sys.rota(&["wait", "--jobset", "load"]).status.success());
    let original = runs_at(sys.bins.rota, &sys.url);

    // Restore: the backup directory is a data dir.
    let (mut restored, addr) =
        procs::coordinator(sys.bins.coordinator, &backup, "127.0.0.1:0", STEADY);
    let url = format!("http://{addr}");
    let held = runs_at(sys.bins.rota, &url);
    assert!(
        held.len() >= 8,
        "the backup holds the finished runs: {}",
        held.len()
    );
    let mut finished = 0;
    for run in &held {
        let n = run["number"].as_u64().unwrap();
        let now = &original[(n - 1) as usize];
        assert_eq!(now["id"], run["id"]);
        if ["success", "errored"].contains(&run["state"].as_str().unwrap()) {
            // A run finished in the backup is exactly the run as it is now.
            finished += 1;
            assert_eq!(now, run, "run {n}");
            assert_eq!(
                logs_at(sys.bins.rota, &url, n),
                logs_at(sys.bins.rota, &sys.url, n),
                "logs of run {n}"
            );
        }
    }
    assert!(finished >= 8);
    // The last burst was submitted after the backup: not in it.
    assert!(
        held.len() <= original.len() - 100,
        "{} of {}",
        held.len(),
        original.len()
    );
    // The restored coordinator takes new work.
    let out = procs::rota(sys.bins.rota, &url, &["-o", "json", "submit", "--", "true"]);
    assert!(out.status.success());
    until(
        DEADLINE,
        "the restored coordinator to list the new run",
        || (runs_at(sys.bins.rota, &url).len() == held.len() + 1).then_some(()),
    );
    restored.kill9();
}
