//! Real binaries on a real full filesystem (a small tmpfs; skipped, saying why, where the test
//! cannot mount): nothing acknowledged is lost, a run is not finished before its log is whole,
//! the coordinator keeps serving and refuses only new work, and it all recovers by itself
//! when space returns.

use std::path::Path;
use std::time::{Duration, Instant};

use rota_tests::bins;
use rota_tests::procs::{until, System, Tmpfs};

/// Lengths of the files under `dir`.
fn file_lens(dir: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(m) = p.metadata() {
                out.push(m.len());
            }
        }
    }
    out
}

fn seq_output(n: u32) -> Vec<u8> {
    (1..=n)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn with_the_logs_filesystem_full_a_run_finishes_only_once_its_log_is_stored_whole() {
    let mut sys = System::start_with(
        bins!(),
        &["--lease", "10", "--heartbeat", "1", "--reserve-mib", "0"],
    );
    sys.kill9_coordinator();
    let logs = match Tmpfs::mount(&sys.data_dir().join("logs"), "1m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here: {why}");
            return;
        }
    };
    sys.restart_coordinator();
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let expected = seq_output(450_000);
    let run = sys.submit(&["--shell", "--", "seq 1 450000"]);
    let n = run["number"].to_string();

    // The run has ended at the agent (its spool holds all of it) but the logs filesystem has
    // room for a third: the coordinator must not record it finished.
    let spool = sys.path("spool-a");
    until(Duration::from_secs(60), "the whole log spooled", || {
        file_lens(&spool)
            .contains(&(expected.len() as u64))
            .then_some(())
    });
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        let v = sys.show(&n);
        assert!(
            !v["finished_at_ms"].is_u64() || v["finished_at_ms"] == 0,
            "not finished while its log is not stored: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        file_lens(&spool).contains(&(expected.len() as u64)),
        "the agent keeps its spool"
    );

    // Space returns: the agent's resend completes the log and the run.
    logs.resize("64m");
    let v = sys.wait_state(&n, "success", Duration::from_secs(60));
    assert_eq!(v["stdout_len"], expected.len());
    let out = sys.rota(&["logs", &n]);
    assert!(out.status.success());
    assert!(out.stdout == expected, "the log is whole");
    until(
        Duration::from_secs(30),
        "the agent's spool deleted after the ack",
        || (!file_lens(&spool).contains(&(expected.len() as u64))).then_some(()),
    );
}

#[test]
fn a_full_data_dir_refuses_new_work_keeps_serving_and_recovers_by_itself() {
    let mut sys = System::start_with(
        bins!(),
        &["--lease", "10", "--heartbeat", "1", "--reserve-mib", "4"],
    );
    sys.kill9_coordinator();
    let data = match Tmpfs::mount(&sys.data_dir(), "16m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here: {why}");
            return;
        }
    };
    sys.restart_coordinator();
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    // Accepted before the disk fills: it must still finish and be recorded.
    let gate = sys.path("gate");
    let accepted = sys.submit(&[
        "--shell",
        "--",
        &format!(
            "while [ ! -e {} ]; do sleep 0.05; done; echo done",
            gate.display()
        ),
    ]);
    let accepted = accepted["number"].to_string();
    sys.wait_state(&accepted, "running", Duration::from_secs(30));
    // Accepted too, queued behind it on the agent's one slot.
    let queued = sys.submit(&["--shell", "--", "echo queued"])["number"].to_string();

    // Fill the filesystem to below the reserve (but above the half of it that logs of
    // accepted runs may use).
    let filler = data.path.join("filler");
    let free = {
        let st = nix::sys::statvfs::statvfs(&data.path).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64
    };
    std::fs::write(&filler, vec![0u8; (free - (3 << 20)) as usize]).unwrap();

    let out = sys.rota(&["submit", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "submit refused");
    assert!(
        err.contains("free") && err.contains("refused"),
        "says why: {err}"
    );
    // Still serving, and what was accepted finishes and is recorded.
    std::fs::write(&gate, b"").unwrap();
    let v = sys.wait_state(&accepted, "success", Duration::from_secs(30));
    assert_eq!(v["stdout_len"], 5);
    // Below the reserve no new attempt starts (the batch that recorded the result would
    // have dispatched it).
    assert_eq!(sys.show(&queued)["state"], "pending");

    // Completely full, a restart still comes up (starting needs no space) and serves.
    let free = {
        let st = nix::sys::statvfs::statvfs(&data.path).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64
    };
    let rest = data.path.join("filler-rest");
    let _ = std::fs::write(&rest, vec![0u8; free as usize]);
    sys.kill9_coordinator();
    sys.restart_coordinator();
    assert_eq!(sys.show(&accepted)["state"], "success");
    let out = sys.rota(&["submit", "--", "true"]);
    assert!(!out.status.success(), "still refused while full");

    // Space returns: new work is taken again, no restart.
    std::fs::remove_file(&rest).unwrap();
    std::fs::remove_file(&filler).unwrap();
    let run = sys.submit(&["--shell", "--", "echo again"]);
    sys.wait_state(
        &run["number"].to_string(),
        "success",
        Duration::from_secs(30),
    );
    let out = sys.rota(&["logs", &accepted]);
    assert_eq!(out.stdout, b"done\n");
    sys.wait_state(&queued, "success", Duration::from_secs(30));
    assert_eq!(sys.rota(&["logs", &queued]).stdout, b"queued\n");
}

#[test]
fn a_store_that_cannot_be_written_fails_the_start_before_the_address_is_announced() {
    let mut sys = System::start(bins!());
    sys.kill9_coordinator();
    // The store lives on a filesystem that is then made read-only; the data dir stays writable.
    let ro = match Tmpfs::mount(&sys.path("ro"), "8m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here: {why}");
            return;
        }
    };
    let data = sys.data_dir();
    for name in ["rota.db", "rota.db-wal", "rota.db-shm"] {
        if let Ok(bytes) = std::fs::read(data.join(name)) {
            std::fs::write(ro.path.join(name), bytes).unwrap();
            std::fs::remove_file(data.join(name)).unwrap();
            std::os::unix::fs::symlink(ro.path.join(name), data.join(name)).unwrap();
        }
    }
    ro.remount("ro");
    let out = sys.refused_coordinator(&[], Duration::from_secs(20));
    assert!(!out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "no address announced"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rota.db"), "names the store: {err}");
}
