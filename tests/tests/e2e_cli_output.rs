//! Real binaries: the CLI's output for scripts. `submit -q` prints only run numbers,
//! `-o id` prints one key per line on every listing, `-o json` parses with the fields scripts
//! read, `completions`/`man` print what shells and man(1) load, and log lines carry no colour
//! codes when stderr is not a terminal.

use std::process::{Command, Output, Stdio};

use rota_tests::bins;
use rota_tests::procs::System;
use serde_json::Value;

fn stdout(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// `rota ARGS...` without a coordinator (completions, man, a refused connection).
fn rota_alone(args: &[&str]) -> Output {
    Command::new(bins!().rota)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("ROTA_COORDINATOR")
        .stdin(Stdio::null())
        .output()
        .expect("run rota")
}

#[test]
fn quiet_submit_and_id_output_print_only_keys_and_json_has_the_fields() {
    let mut sys = System::start(bins!());
    sys.start_agent("host-a", 2, &["--group", "db"]);
    sys.wait_agents(&["host-a"]);

    let first = stdout(
        &sys.rota(&["submit", "-q", "--group", "db", "--", "true"]),
        "submit -q",
    );
    let batch = stdout(
        &sys.rota_with_stdin(&["submit", "--quiet", "--from", "-"], b"true\ntrue\n"),
        "submit -q --from -",
    );
    let n: u64 = first
        .trim_end()
        .parse()
        .unwrap_or_else(|e| panic!("{first:?}: {e}"));
    assert_eq!(first, format!("{n}\n"), "exactly the number");
    assert_eq!(
        batch,
        format!("{}\n{}\n", n + 1, n + 2),
        "one number per line"
    );
    assert_eq!(
        stdout(&sys.rota(&["-o", "id", "submit", "true"]), "-o id submit"),
        format!("{}\n", n + 3),
        "-o id is the same as -q"
    );
    for run in n..=n + 3 {
        sys.wait_state(
            &run.to_string(),
            "success",
            std::time::Duration::from_secs(20),
        );
    }

    assert_eq!(
        stdout(&sys.rota(&["runs", "-o", "id"]), "runs -o id"),
        (n..=n + 3).map(|r| format!("{r}\n")).collect::<String>()
    );
    assert_eq!(
        stdout(
            &sys.rota(&["show", &n.to_string(), "-o", "id"]),
            "show -o id"
        ),
        format!("{n}\n")
    );
    assert_eq!(
        stdout(
            &sys.rota(&["-o", "id", "wait", &n.to_string(), &(n + 1).to_string()]),
            "wait -o id"
        ),
        format!("{n}\n{}\n", n + 1)
    );
    assert_eq!(
        stdout(&sys.rota(&["agents", "-o", "id"]), "agents -o id"),
        "host-a\n"
    );
    assert_eq!(
        stdout(&sys.rota(&["groups", "-o", "id"]), "groups -o id"),
        "db\n"
    );
    let config = sys.path("jobs.yaml");
    std::fs::write(&config, "jobs:\n  nightly:\n    command: \"true\"\n").unwrap();
    stdout(&sys.rota(&["apply", config.to_str().unwrap()]), "apply");
    assert_eq!(
        stdout(&sys.rota(&["jobs", "-o", "id"]), "jobs -o id"),
        "nightly\n"
    );

    let runs = sys.json(&["runs"]);
    let runs = runs.as_array().expect("runs -o json is a list");
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0]["number"], n);
    assert_eq!(runs[0]["state"], "success");
    assert_eq!(runs[0]["concurrency_group"], "db");
    assert_eq!(runs[0]["exit_code"], 0);
    assert!(
        runs[0]["id"].as_str().is_some_and(|id| id.len() == 36),
        "{}",
        runs[0]
    );
    let shown = sys.show(&n.to_string());
    assert_eq!(shown["id"], runs[0]["id"]);
    assert_eq!(shown["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(sys.json(&["agents"])[0]["name"], "host-a");
    assert_eq!(sys.json(&["agents"])[0]["slots"], 2);
    assert_eq!(sys.json(&["groups"])[0]["name"], "db");
    assert_eq!(sys.json(&["jobs"])[0]["name"], "nightly");
    assert_eq!(sys.json(&["jobs"])[0]["command"], Value::from(vec!["true"]));
}

#[test]
fn completions_list_the_subcommands_for_each_shell() {
    let bash = stdout(&rota_alone(&["completions", "bash"]), "completions bash");
    assert!(bash.contains("complete -F _rota"), "{bash}");
    for command in ["submit", "runs", "show", "logs", "completions", "man"] {
        assert!(bash.contains(command), "bash completes {command}");
    }
    let zsh = stdout(&rota_alone(&["completions", "zsh"]), "completions zsh");
    assert!(zsh.starts_with("#compdef rota"), "{zsh}");
    let fish = stdout(&rota_alone(&["completions", "fish"]), "completions fish");
    assert!(fish.contains("complete -c rota"), "{fish}");
    assert_eq!(rota_alone(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_prints_a_roff_page_of_rota() {
    let page = stdout(&rota_alone(&["man"]), "man");
    let th = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .expect("a header line");
    assert!(th.starts_with(".TH rota 1"), "roff header first: {page}");
    assert!(page.contains(".SH NAME"), "{page}");
    assert!(page.contains("submit"), "lists the subcommands: {page}");
}

#[test]
fn logs_on_a_pipe_carry_no_colour_codes() {
    // -vvv logs the connection attempt; stderr is a pipe here, so no escape codes.
    let out = rota_alone(&["-vvv", "--coordinator", "http://127.0.0.1:1", "agents"]);
    assert!(!out.status.success(), "nothing listens on port 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TRACE"), "trace lines were logged: {err}");
    assert!(!err.contains('\x1b'), "no ANSI escapes on a pipe: {err}");
}

#[test]
fn run_with_id_output_prints_only_the_run_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.yaml");
    std::fs::write(
        &config,
        "jobs:\n  a:\n    command: \"true\"\n  b:\n    command: \"true\"\n",
    )
    .unwrap();
    let out = rota_alone(&["run", config.to_str().unwrap(), "-o", "id"]);
    assert_eq!(stdout(&out, "run -o id"), "1\n2\n", "no progress, no table");
}
