//! Real binaries, bad input: every mistake a person can make at the command line ends in one
//! line that names what was wrong, and never disturbs the agent or other runs.

use std::process::Output;
use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::System;

/// stderr as text, for messages.
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the command failed with exit code 1 and exactly one line on stderr; returns it.
fn one_error_line(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit code; stderr: {err}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "{what}: one line on stderr: {err:?}"
    );
    assert!(
        err.starts_with("rota: "),
        "{what}: the line says who speaks: {err:?}"
    );
    err
}

#[test]
fn show_of_an_unknown_run_fails_with_one_line_naming_it() {
    let sys = System::start(bins!());
    let id = "0b6e2b9c-7f7e-4c7a-a1f2-9b1b2f0c6a11";
    let err = one_error_line(&sys.rota(&["show", id]), "show unknown id");
    assert!(err.contains(id), "names the id: {err:?}");

    let err = one_error_line(&sys.rota(&["show", "4242"]), "show unknown number");
    assert!(err.contains("4242"), "names the number: {err:?}");

    let out = sys.rota(&["-o", "json", "show", id]);
    let err = one_error_line(&out, "show -o json unknown id");
    assert!(err.contains(id), "{err:?}");
    assert!(
        out.stdout.is_empty(),
        "no JSON for a run that does not exist"
    );
}

#[test]
fn run_of_malformed_yaml_exits_1_naming_the_file() {
    let sys = System::start(bins!());
    let file = sys.path("bad.yaml");
    std::fs::write(&file, "jobs:\n  a:\n    command: [echo, hi\n  b: {\n").unwrap();
    let out = sys.rota(&["run", file.to_str().unwrap()]);
    let err = one_error_line(&out, "run bad.yaml");
    assert!(err.contains("bad.yaml"), "names the file: {err:?}");
    assert!(
        sys.json(&["runs"]).as_array().unwrap().is_empty(),
        "nothing was submitted"
    );
}

#[test]
fn an_unknown_key_in_a_run_file_is_named_with_the_file() {
    let sys = System::start(bins!());
    let file = sys.path("typo.yaml");
    std::fs::write(
        &file,
        "jobs:\n  build:\n    command: [echo, hi]\n    retires: 2\n",
    )
    .unwrap();
    let out = sys.rota(&["run", file.to_str().unwrap()]);
    let err = one_error_line(&out, "run typo.yaml");
    assert!(err.contains("retires"), "names the key: {err:?}");
    assert!(err.contains("typo.yaml"), "names the file: {err:?}");
    assert!(err.contains("build"), "names the job: {err:?}");
}

#[test]
fn a_command_that_does_not_exist_errors_its_run_only() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);

    let bad = sys.submit(&["--", "/nonexistent/rota-no-such-command", "x"]);
    let good = sys.submit(&["--", "echo", "still fine"]);
    let bad_n = bad["number"].to_string();
    let good_n = good["number"].to_string();

    let bad = sys.wait_run(&bad_n, Duration::from_secs(20), "final", |v| {
        v["finished_at_ms"].is_u64()
    });
    assert_eq!(bad["state"], "errored", "{bad}");
    let error = bad["error"].as_str().unwrap();
    assert!(
        error.contains("rota-no-such-command") && error.contains("No such file"),
        "the spawn error is in the run: {error:?}"
    );
    assert_eq!(bad["exit_code"], serde_json::Value::Null);
    assert_eq!(bad["attempts"][0]["error"], bad["error"]);

    let good = sys.wait_state(&good_n, "success", Duration::from_secs(20));
    assert_eq!(good["exit_code"], 0);
    let out = sys.rota(&["logs", &good_n, "--stdout"]);
    assert_eq!(out.stdout, b"still fine\n");

    // The agent is unaffected: still connected, and it runs the next run.
    let agent = sys.agents().into_iter().find(|a| a["name"] == "a").unwrap();
    assert_eq!(agent["state"], "connected", "{agent}");
    let next = sys.submit(&["--", "true"]);
    sys.wait_state(
        &next["number"].to_string(),
        "success",
        Duration::from_secs(20),
    );
    assert!(
        sys.agent("a").child.try_wait().unwrap().is_none(),
        "agent still runs"
    );
}

#[test]
fn an_unreachable_coordinator_is_one_clear_line() {
    let rota = bins!().rota;
    // A port that was free a moment ago: bind, read the port, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [&["runs"][..], &["show", "1"], &["submit", "--", "true"]] {
        let out = std::process::Command::new(rota)
            .arg("--coordinator")
            .arg(&url)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = one_error_line(&out, &format!("{args:?}"));
        assert!(
            err.contains(&format!("cannot reach coordinator at {url}")),
            "{args:?}: {err:?}"
        );
        assert!(err.contains("refused"), "{args:?}: says why: {err:?}");
    }
}

/// Asserts `out` is a failed start: non-zero exit `code`, nothing on stdout (no address
/// announced), exactly one line on stderr, from `bin`, no panic; returns the line.
fn one_line_refusal(out: &Output, bin: &str, code: i32, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit code; stderr: {err}"
    );
    assert!(out.stdout.is_empty(), "{what}: nothing announced: {out:?}");
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err:?}");
    assert!(err.starts_with(&format!("{bin}: ")), "{what}: {err:?}");
    assert!(!err.contains("panicked"), "{what}: {err:?}");
    err
}

#[test]
fn coordinator_timings_that_cannot_work_stop_it_with_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, code, says) in [
        (&["--heartbeat", "nan"][..], 2, "'--heartbeat <DUR>'"),
        (&["--lease", "1e30"], 2, "'--lease <DUR>'"),
        (&["--lease=-1"], 2, "'--lease <DUR>'"),
        (&["--lease", "0"], 1, "--lease must be at least 1ms"),
        (
            &["--lease", "2", "--heartbeat", "2"],
            1,
            "--heartbeat (2s) must be shorter than --lease (2s)",
        ),
        (
            &["--lease", "5", "--heartbeat", "10"],
            1,
            "must be shorter than --lease",
        ),
        (
            &["--cancel-grace", "3d"],
            1,
            "--cancel-grace must be at most",
        ),
    ] {
        let out = std::process::Command::new(bins!().coordinator)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(flags)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = one_line_refusal(&out, "rota-coordinator", code, &format!("{flags:?}"));
        assert!(err.contains(says), "{flags:?}: {err:?}");
    }
}

#[test]
fn an_agent_refused_for_good_exits_with_one_line_instead_of_retrying() {
    let sys = System::start(bins!());
    // Its output once it exited; a test failure (not a hang) if it keeps retrying.
    let agent = |name: &str, slots: &str| {
        let log = sys.path(&format!("agent-{}.err", name.replace('/', "_")));
        let child = std::process::Command::new(bins!().agent)
            .args(["--coordinator", &sys.url, "--name", name, "--slots", slots])
            .arg("--spool-dir")
            .arg(sys.path("spool"))
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut proc = rota_tests::procs::Proc { child };
        let code = rota_tests::procs::until(Duration::from_secs(30), "the agent to exit", || {
            proc.try_exit_code()
        });
        Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(code.unwrap_or(1) << 8),
            stdout: Vec::new(),
            stderr: std::fs::read(&log).unwrap(),
        }
    };
    let err = one_line_refusal(&agent("a", "0"), "rota-agent", 2, "--slots 0");
    assert!(err.contains("'--slots <SLOTS>'"), "{err:?}");

    // The coordinator refuses the name: permanent, so the agent exits (it used to retry
    // forever), with the coordinator's reason.
    let err = one_line_refusal(&agent("bad/name", "1"), "rota-agent", 1, "bad name");
    assert!(
        err.contains("refused this agent") && err.contains("\"bad/name\""),
        "{err:?}"
    );
    assert!(sys.agents().is_empty(), "no agent registered");
}

#[test]
fn an_agent_keeps_retrying_a_coordinator_that_is_not_there_yet() {
    let mut sys = System::start(bins!());
    // A port that was free a moment ago: connection refused, a transient failure.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    sys.start_agent_at(&format!("http://127.0.0.1:{port}"), "patient", 1, &[]);
    let log = sys.path("agent-patient.log");
    rota_tests::procs::until(Duration::from_secs(30), "two reconnect attempts", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.matches("reconnecting").count() >= 2).then_some(())
    });
    assert_eq!(sys.agent("patient").try_exit_code(), None, "still running");
}

#[test]
fn submit_name_follows_the_config_name_rule() {
    let sys = System::start(bins!());
    for bad in ["bad/name", "..", "tab\there", &"n".repeat(65)] {
        let out = sys.rota(&["submit", "--name", bad, "--", "true"]);
        let err = one_error_line(&out, &format!("submit --name {bad:?}"));
        assert!(err.contains("invalid job name"), "{bad:?}: {err:?}");
    }
    assert!(
        sys.json(&["runs"]).as_array().unwrap().is_empty(),
        "nothing submitted"
    );
    let run = sys.submit(&["--name", "build-1.2_x:y@z", "--", "true"]);
    assert_eq!(run["name"], "build-1.2_x:y@z");
}

#[test]
fn a_nul_byte_in_a_config_command_is_refused_at_apply() {
    let sys = System::start(bins!());
    let file = sys.path("nul.yaml");
    std::fs::write(&file, "jobs:\n  j:\n    command: [\"echo\", \"a\\0b\"]\n").unwrap();
    let out = sys.rota(&["apply", file.to_str().unwrap()]);
    let err = one_error_line(&out, "apply nul.yaml");
    assert!(
        err.contains("nul.yaml") && err.contains("\"j\"") && err.contains("NUL"),
        "{err:?}"
    );
    assert!(
        sys.json(&["jobs"]).as_array().unwrap().is_empty(),
        "no job defined"
    );
}

#[test]
fn runs_of_an_unknown_state_is_an_error_not_an_empty_list() {
    let sys = System::start(bins!());
    sys.submit(&["--", "true"]);
    let err = one_error_line(
        &sys.rota(&["runs", "--state", "bogus"]),
        "runs --state bogus",
    );
    assert!(
        err.contains("\"bogus\"") && err.contains("pending"),
        "{err:?}"
    );
    assert_eq!(
        sys.json(&["runs", "--state", "pending"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
