//! `rota-coordinator migrate`: a coordinator's SQLite store into PostgreSQL, then the same
//! coordinator on `--store postgres://` with the same data dir has every run, attempt and log,
//! and so does one whose data dir lost its log files (they are in the database).

use std::process::Command;

use rota_tests::bins;
use rota_tests::pg::Backend;
use rota_tests::procs::System;

fn migrate(sys: &System, url: &str) -> std::process::Output {
    Command::new(sys.bins.coordinator)
        .args(["migrate", "--from"])
        .arg(sys.data_dir())
        .args(["--to", url])
        .output()
        .expect("run rota-coordinator migrate")
}

#[test]
fn a_migrated_store_serves_every_run_and_log_from_postgres() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else {
        return;
    };
    let mut sys = System::start(bins!());
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    sys.submit_lines(
        "old",
        "echo one\nexit 3\nprintf 'two\\n' >&2\nprintf 'caf\\303\\251 \\001\\n'\n",
    );
    let waited = sys.rota(&["wait", "--jobset", "old"]);
    assert_eq!(waited.status.code(), Some(1), "one of them failed");
    let with_artifact = sys.submit(&[
        "--jobset",
        "kept",
        "--artifact",
        "out.txt",
        "--shell",
        "--",
        "seq 1 300000 > out.txt",
    ]);
    let with_artifact = with_artifact["number"].as_u64().unwrap().to_string();
    sys.wait_state(
        &with_artifact,
        "success",
        std::time::Duration::from_secs(60),
    );
    let artifact = |sys: &System| {
        let to = sys.path("got.txt");
        let _ = std::fs::remove_file(&to);
        let got = sys.rota(&[
            "artifacts",
            &with_artifact,
            "--get",
            "out.txt",
            "--to",
            to.to_str().unwrap(),
        ]);
        assert!(got.status.success(), "{got:?}");
        std::fs::read(&to).unwrap()
    };
    let artifact_before = artifact(&sys);
    let before = sys.runs_of("old");
    let logs = |sys: &System| -> Vec<(Vec<u8>, Vec<u8>)> {
        (1..=4)
            .map(|n| {
                let out = sys.rota(&["logs", &n.to_string()]);
                (out.stdout, out.stderr)
            })
            .collect()
    };
    let logs_before = logs(&sys);

    let running = migrate(&sys, &url);
    assert!(
        !running.status.success(),
        "refused while a coordinator runs"
    );
    assert!(
        String::from_utf8_lossy(&running.stderr).contains("stop the coordinator"),
        "{running:?}"
    );

    sys.stop_coordinator();
    let done = migrate(&sys, &url);
    assert!(done.status.success(), "{done:?}");
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        said.contains("5 runs")
            && said.contains("checked the counts")
            // (`exit 3` and the artifact's run printed nothing: no log to copy.)
            && said.contains("the logs of 3 finished attempts")
            && said.contains("1 artifact contents"),
        "{said}"
    );
    let again = migrate(&sys, &url);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not empty"),
        "a second migration into the same database is refused: {again:?}"
    );

    sys.restart_coordinator_with(&["--store", &url]);
    let after = sys.runs_of("old");
    assert_eq!(after.len(), before.len());
    for (n, run) in &before {
        for field in [
            "id",
            "state",
            "exit_code",
            "finished_at_ms",
            "stdout_len",
            "stderr_len",
        ] {
            assert_eq!(after[n][field], run[field], "run {n}: {field}");
        }
    }
    assert_eq!(logs(&sys), logs_before, "every log byte-identical");
    // Without the files, from the database.
    sys.stop_coordinator();
    std::fs::remove_dir_all(sys.data_dir().join("logs")).unwrap();
    std::fs::remove_dir_all(sys.data_dir().join("artifacts")).unwrap();
    sys.restart_coordinator_with(&["--store", &url]);
    assert_eq!(
        logs(&sys),
        logs_before,
        "every log byte-identical, read from PostgreSQL"
    );
    assert_eq!(
        artifact(&sys),
        artifact_before,
        "the artifact, from PostgreSQL"
    );
    // A segment changed in the database reads as damaged, never as other bytes.
    rota_tests::pg::execute(
        &url,
        &format!(
            "UPDATE log_segments SET data = 'changed' WHERE run_id = '{}' AND stream = 1",
            before[&1]["id"].as_str().unwrap()
        ),
    );
    let damaged = sys.rota(&["logs", "1"]);
    assert!(!damaged.status.success(), "{damaged:?}");
    assert!(
        String::from_utf8_lossy(&damaged.stderr).contains("do not match their recorded checksum"),
        "{damaged:?}"
    );
    // The store goes on from where SQLite left it.
    let next = sys.submit(&["--", "echo", "on postgres"]);
    assert_eq!(next["number"], 6);
    let waited = sys.rota(&["wait", "6"]);
    assert!(waited.status.success(), "{waited:?}");
    assert_eq!(sys.rota(&["logs", "6"]).stdout, b"on postgres\n");
}
