//! Real binaries: `rota logs -f` and `rota wait` ride out a coordinator restart (graceful or
//! `kill -9`): they reconnect, resume where they were, print every byte exactly once and exit
//! 0 only once the run has really ended. `rota logs --attempt N` shows an earlier attempt.

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::{connected_to, lines_of, until, System};

/// A run that prints `line 1` … `line 3`, waits for the file `go`, then prints `line 4` …
/// `line 20`, a little apart.
fn twenty_lines(sys: &System) -> (String, std::path::PathBuf) {
    let go = sys.path("go");
    let script = format!(
        "for i in 1 2 3; do echo line $i; done; \
         while [ ! -e {go} ]; do sleep 0.02; done; \
         i=4; while [ $i -le 20 ]; do echo line $i; sleep 0.02; i=$((i+1)); done",
        go = go.display()
    );
    let run = sys.submit(&["--shell", "--", &script]);
    (run["number"].to_string(), go)
}

fn follow(sys: &System, n: &str) -> (Child, mpsc::Receiver<String>) {
    let mut follower = sys
        .rota_command(&["logs", n, "-f", "--stdout"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(follower.stdout.take().unwrap());
    (follower, lines)
}

/// Follows a run across `restart`; asserts all 20 lines arrive exactly once, in order, and
/// that the follower exits 0 only after the run succeeded.
fn follow_across(restart: impl FnOnce(&mut System)) {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let (n, go) = twenty_lines(&sys);
    sys.wait_state(&n, "running", Duration::from_secs(20));
    let (mut follower, lines) = follow(&sys, &n);
    let mut got: Vec<String> = (0..3)
        .map(|_| {
            lines
                .recv_timeout(Duration::from_secs(20))
                .expect("the first three lines while the run waits")
        })
        .collect();

    restart(&mut sys);
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the follower outlives the coordinator's restart"
    );
    std::fs::write(&go, "").unwrap();

    let status = until(Duration::from_secs(60), "the follower to exit", || {
        follower.try_wait().unwrap()
    });
    got.extend(lines.iter());
    let mut err = String::new();
    follower
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "follower exit status {status:?}: {err}");
    let want: Vec<String> = (1..=20).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want, "every line exactly once, in order");
    assert_eq!(
        sys.show(&n)["state"],
        "success",
        "it exited once the run ended"
    );
}

#[test]
fn logs_follow_prints_every_line_once_across_a_graceful_coordinator_restart() {
    follow_across(|sys| {
        sys.stop_coordinator();
        sys.restart_coordinator();
    });
}

#[test]
fn logs_follow_prints_every_line_once_across_a_coordinator_kill_9() {
    follow_across(|sys| {
        sys.kill9_coordinator();
        sys.restart_coordinator();
    });
}

#[test]
fn wait_outlives_a_coordinator_restart_and_keeps_its_exit_code_rule() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    let go = sys.path("go");
    let wait_for_go = format!("while [ ! -e {} ]; do sleep 0.02; done", go.display());
    let ok = sys.submit(&["--shell", "--", &wait_for_go])["number"].to_string();
    let failing = format!("{wait_for_go}; exit 3");
    let bad = sys.submit(&["--shell", "--", &failing])["number"].to_string();
    sys.wait_state(&ok, "running", Duration::from_secs(20));
    sys.wait_state(&bad, "running", Duration::from_secs(20));
    let spawn_wait = |runs: &[&str]| {
        let mut args = vec!["wait"];
        args.extend_from_slice(runs);
        sys.rota_command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut wait_ok = spawn_wait(&[&ok]);
    let mut wait_both = spawn_wait(&[&ok, &bad]);
    // A first connection that fails is an error (a wrong address should not hang): take the
    // coordinator away only once both wait.
    for w in [&wait_ok, &wait_both] {
        until(Duration::from_secs(20), "wait to connect", || {
            connected_to(w.id(), sys.addr.port()).then_some(())
        });
    }

    sys.kill9_coordinator();
    sys.restart_coordinator();
    // Serving again (its agent is back) before the graceful stop.
    sys.wait_agents(&["a"]);
    sys.stop_coordinator();
    sys.restart_coordinator();
    for w in [&mut wait_ok, &mut wait_both] {
        if let Some(status) = w.try_wait().unwrap() {
            let mut err = String::new();
            w.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("wait exited across a restart ({status}): {err}");
        }
    }
    std::fs::write(&go, "").unwrap();

    let code = |child: &mut Child| {
        let status = until(Duration::from_secs(60), "wait to exit", || {
            child.try_wait().unwrap()
        });
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code(), err)
    };
    let (c, err) = code(&mut wait_ok);
    assert_eq!(c, Some(0), "the run succeeded: {err}");
    let (c, err) = code(&mut wait_both);
    assert_eq!(c, Some(1), "one run failed: {err}");
    assert_eq!(sys.show(&ok)["state"], "success");
    assert_eq!(sys.show(&bad)["state"], "errored");
}

#[test]
fn logs_attempt_shows_the_bytes_of_an_earlier_attempt() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let mark = sys.path("tried");
    let script = format!(
        "if [ -e {m} ]; then echo second try; else touch {m}; echo first try; exit 1; fi",
        m = mark.display()
    );
    let n = sys.submit(&["--shell", "--", &script])["number"].to_string();
    sys.wait_state(&n, "errored", Duration::from_secs(20));
    let out = sys.rota(&["retry", &n]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sys.wait_state(&n, "success", Duration::from_secs(20));

    let logs = |args: &[&str]| {
        let out = sys.rota(args);
        assert!(
            out.status.success(),
            "rota {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(logs(&["logs", &n, "--attempt", "1"]), "first try\n");
    assert_eq!(logs(&["logs", &n, "--attempt", "2"]), "second try\n");
    assert_eq!(logs(&["logs", &n]), "second try\n", "the latest by default");
    assert_eq!(logs(&["logs", &n, "-f", "--attempt", "1"]), "first try\n");

    let out = sys.rota(&["logs", &n, "--attempt", "3"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no attempt 3"), "{err}");
}

#[test]
fn logs_follow_goes_on_to_the_next_attempt_of_a_retried_run_and_exits_when_it_ends() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let go = sys.path("go");
    let mark = sys.path("tried");
    let script = format!(
        "if [ -e {m} ]; then echo second try; exit 0; fi; touch {m}; echo first try; \
         while [ ! -e {go} ]; do sleep 0.02; done; exit 1",
        m = mark.display(),
        go = go.display()
    );
    let n = sys.submit(&["--retries", "1", "--shell", "--", &script])["number"].to_string();
    sys.wait_state(&n, "running", Duration::from_secs(20));
    let (mut follower, lines) = follow(&sys, &n);
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(20)).unwrap(),
        "first try"
    );
    std::fs::write(&go, "").unwrap();
    let status = until(Duration::from_secs(60), "the follower to exit", || {
        follower.try_wait().unwrap()
    });
    assert!(status.success(), "follower exit status {status:?}");
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(rest, ["second try"], "the retry's output follows");
    let run = sys.show(&n);
    assert_eq!(run["state"], "success");
    assert_eq!(run["attempt"], 2);
}
