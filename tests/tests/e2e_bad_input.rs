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
