//! Real binaries: `rota submit --from FILE` (and `-` for stdin) queues one run per line in one
//! batch, and `rota wait --jobset` exits 0 only when every run of the set succeeded.

use rota_tests::bins;
use rota_tests::procs::System;
use serde_json::Value;

/// Checks that `runs` (a submit's JSON) are one batch of shell runs in `jobset`, one per
/// command, in order: consecutive numbers and one commit time.
fn assert_one_batch(runs: &Value, jobset: &str, commands: &[&str]) {
    let runs = runs.as_array().expect("a list of runs");
    assert_eq!(runs.len(), commands.len(), "one run per command line");
    let first = runs[0]["number"].as_u64().unwrap();
    for (i, (run, command)) in runs.iter().zip(commands).enumerate() {
        assert_eq!(run["number"], first + i as u64, "consecutive numbers");
        assert_eq!(run["jobset"], jobset);
        assert_eq!(run["shell"], true, "each line runs under the shell");
        let argv = run["command"].as_array().unwrap();
        assert_eq!(
            argv.last().and_then(Value::as_str),
            Some(*command),
            "the line is the command: {run}"
        );
        assert_eq!(
            run["submitted_at_ms"], runs[0]["submitted_at_ms"],
            "committed together"
        );
    }
}

fn wait_jobset(sys: &System, jobset: &str) -> (Option<i32>, Value) {
    let out = sys.rota(&["-o", "json", "wait", "--jobset", jobset]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "wait printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

#[test]
fn submit_from_a_file_queues_one_run_per_line_and_wait_exits_0_when_all_succeed() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 4, &[]);
    sys.wait_agents(&["a"]);
    let out_dir = sys.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let commands: Vec<String> = (1..=5)
        .map(|i| format!("echo line {i} > {}/{i}.txt", out_dir.display()))
        .collect();
    let file = sys.path("commands.txt");
    std::fs::write(
        &file,
        format!("# five commands\n\n{}\n", commands.join("\n  \n")),
    )
    .unwrap();

    let runs = sys.json(&[
        "submit",
        "--jobset",
        "from-file",
        "--from",
        file.to_str().unwrap(),
    ]);
    let expected: Vec<&str> = commands.iter().map(String::as_str).collect();
    assert_one_batch(&runs, "from-file", &expected);

    let (code, waited) = wait_jobset(&sys, "from-file");
    assert_eq!(code, Some(0), "all succeeded: {waited}");
    assert_eq!(waited["all_succeeded"], true);
    assert_eq!(waited["runs"].as_array().unwrap().len(), 5);
    for i in 1..=5 {
        let written = std::fs::read_to_string(out_dir.join(format!("{i}.txt"))).unwrap();
        assert_eq!(written, format!("line {i}\n"), "line {i} ran");
    }
}

#[test]
fn submit_from_stdin_queues_one_run_per_line_and_wait_exits_1_when_one_fails() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 4, &[]);
    sys.wait_agents(&["a"]);
    let input = "true\nexit 3\necho fine\n";
    let out = sys.rota_with_stdin(
        &["-o", "json", "submit", "--jobset", "stdin", "--from", "-"],
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_one_batch(&runs, "stdin", &["true", "exit 3", "echo fine"]);

    let (code, waited) = wait_jobset(&sys, "stdin");
    assert_eq!(code, Some(1), "one run failed: {waited}");
    assert_eq!(waited["all_succeeded"], false);
    let states: Vec<&str> = waited["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["success", "errored", "success"]);
    assert_eq!(waited["runs"][1]["exit_code"], 3);

    // The table output exits the same way.
    let out = sys.rota(&["wait", "--jobset", "stdin"]);
    assert_eq!(out.status.code(), Some(1));
    let jobset = sys.json(&["jobset", "show", "stdin"]);
    assert_eq!(jobset["state"], "errored");
    assert_eq!(jobset["total"], 3);
}

/// `rota runs` shows a page, says how to get the next one on stderr (so `-o json` stays
/// clean), and `--after N` continues from run N.
#[test]
fn runs_lists_pages_and_says_how_to_get_the_next() {
    let sys = System::start(bins!());
    let lines = "echo 1\necho 2\necho 3\necho 4\necho 5\n";
    sys.rota_with_stdin(
        &["submit", "--jobset", "paged", "--from", "-"],
        lines.as_bytes(),
    );
    let page = |args: &[&str]| {
        let mut all = vec!["-o", "json", "runs", "--jobset", "paged"];
        all.extend_from_slice(args);
        let out = sys.rota(&all);
        assert!(out.status.success(), "{out:?}");
        let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
        let numbers: Vec<u64> = runs
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["number"].as_u64().unwrap())
            .collect();
        (numbers, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (first, hint) = page(&["--limit", "2"]);
    assert_eq!(first, [1, 2]);
    assert!(hint.contains("--after 2"), "{hint}");
    let (second, _) = page(&["--limit", "2", "--after", "2"]);
    assert_eq!(second, [3, 4]);
    let (last, hint) = page(&["--limit", "2", "--after", "4"]);
    assert_eq!(last, [5]);
    assert!(hint.is_empty(), "no next page: {hint}");
    let (all, _) = page(&["--limit", "0"]);
    assert_eq!(all, [1, 2, 3, 4, 5]);
}
