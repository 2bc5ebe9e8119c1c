//! Real binaries and real files: the data dir belongs to one coordinator at a time, a lost
//! store is not silently replaced by an empty one, and a stored log that was changed on disk
//! reads as an error naming the run, never as wrong bytes.

use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::System;

/// stderr of a refused start, checked to be one line.
fn one_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "exit status {:?}", out.status);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "no address announced: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn a_second_coordinator_on_the_same_data_dir_exits_naming_the_dir_and_the_holders_pid() {
    let mut sys = System::start(bins!());
    let out = sys.refused_coordinator(&[], Duration::from_secs(20));
    let err = one_line(&out);
    assert!(
        err.contains(&sys.data_dir().display().to_string()),
        "names the dir: {err}"
    );
    assert!(
        err.contains(&format!("pid {}", sys.coordinator_pid())),
        "names the holder's pid: {err}"
    );
    // The first one still serves; once it is gone, the dir is free again.
    sys.json(&["runs"]);
    sys.kill9_coordinator();
    sys.restart_coordinator();
    sys.json(&["runs"]);
}

#[test]
fn a_lost_store_beside_run_logs_is_refused_unless_started_fresh() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let run = sys.submit(&["--shell", "--", "echo kept"]);
    let n = run["number"].to_string();
    sys.wait_state(&n, "success", Duration::from_secs(30));
    sys.kill9_coordinator();
    let db = sys.data_dir().join("rota.db");
    for side in ["rota.db-wal", "rota.db-shm"] {
        let _ = std::fs::remove_file(sys.data_dir().join(side));
    }

    std::fs::write(&db, b"").unwrap();
    let err = one_line(&sys.refused_coordinator(&[], Duration::from_secs(20)));
    assert!(
        err.contains("rota.db is empty") && err.contains("--fresh"),
        "{err}"
    );
    std::fs::remove_file(&db).unwrap();
    let err = one_line(&sys.refused_coordinator(&[], Duration::from_secs(20)));
    assert!(err.contains("rota.db is missing"), "{err}");

    // A store that cannot be used fails before the address is announced.
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let err = one_line(&sys.refused_coordinator(&[], Duration::from_secs(20)));
    assert!(err.contains("rota.db"), "{err}");
    std::fs::remove_file(&db).unwrap();

    // Told to, it starts with an empty store.
    sys.restart_coordinator_with(&["--fresh"]);
    assert_eq!(sys.json(&["runs"]), serde_json::json!([]));
}

/// A finished run with 3 MiB of stdout (several checksum segments) and the path of its file.
fn finished_run(sys: &mut System) -> (String, std::path::PathBuf, Vec<u8>) {
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let run = sys.submit(&["--shell", "--", "seq 1 450000"]);
    let n = run["number"].to_string();
    let run = sys.wait_state(&n, "success", Duration::from_secs(60));
    let id = run["id"].as_str().unwrap().to_string();
    let file = sys.data_dir().join("logs").join(&id).join("1.stdout");
    let out = sys.rota(&["logs", &n]);
    assert!(out.status.success());
    let expected: Vec<u8> = (1..=450000)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes();
    assert!(out.stdout == expected, "intact log reads back whole");
    (n, file, expected)
}

#[test]
fn a_stored_log_changed_on_disk_reads_as_an_error_naming_the_run() {
    let mut sys = System::start(bins!());
    let (n, file, original) = finished_run(&mut sys);
    let id = file
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let damaged = |sys: &System, what: &str| {
        let out = sys.rota(&["logs", &n]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: rota logs fails");
        assert!(
            err.contains(&id) && err.contains("damaged"),
            "{what}: {err}"
        );
        assert!(
            out.stdout.len() < original.len(),
            "{what}: not all of it printed as if whole"
        );
    };

    let mut appended = original.clone();
    appended.extend_from_slice(b"extra\n");
    std::fs::write(&file, &appended).unwrap();
    damaged(&sys, "appended");

    std::fs::write(&file, &original[..original.len() / 2]).unwrap();
    damaged(&sys, "truncated");

    let mut flipped = original.clone();
    flipped[2_000_000] ^= 1;
    std::fs::write(&file, &flipped).unwrap();
    damaged(&sys, "changed in place");

    std::fs::remove_file(&file).unwrap();
    damaged(&sys, "deleted");

    std::fs::write(&file, &original).unwrap();
    let out = sys.rota(&["logs", &n]);
    assert!(
        out.status.success() && out.stdout == original,
        "restored: whole again"
    );
}
