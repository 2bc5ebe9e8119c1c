//! Every refusal is one line naming the file, the job or group, and the key.

use std::path::Path;

use super::super::*;
use super::*;

#[test]
fn unknown_job_key_names_file_job_and_key() {
    let yaml = "jobs:\n  dump-db1:\n    comand: pg_dump db1\n";
    assert_eq!(
        error("examples/x.yaml", yaml),
        "examples/x.yaml: job \"dump-db1\": unknown key \"comand\""
    );
}

#[test]
fn unknown_keys_are_refused_at_every_level() {
    assert_eq!(
        error("c.json", r#"{"jobz": {}}"#),
        "c.json: unknown key \"jobz\""
    );
    assert_eq!(
        error("c.json", r#"{"concurrency_groups": {"g": {"maximum": 2}}}"#),
        "c.json: concurrency group \"g\": unknown key \"maximum\""
    );
    assert_eq!(
        error(
            "c.json",
            r#"{"job_groups": {"g": {"job_names": ["a"], "command": ["x"], "colour": 1}}}"#
        ),
        "c.json: job group \"g\": unknown key \"colour\""
    );
    // job_names belongs to job groups, not to jobs.
    assert_eq!(
        error(
            "c.json",
            r#"{"jobs": {"a": {"command": ["x"], "job_names": ["b"]}}}"#
        ),
        "c.json: job \"a\": unknown key \"job_names\""
    );
}

#[test]
fn after_must_name_a_job_in_the_file() {
    let json = r#"{"jobs": {"a": {"command": ["true"]}, "b": {"command": ["true"], "after": ["a", "zz"]}}}"#;
    assert_eq!(
        error("cfg.json", json),
        "cfg.json: job \"b\": after: no job named \"zz\""
    );
}

#[test]
fn cycles_in_after_are_shown_as_a_path() {
    let yaml = "jobs:\n  a: {command: [true], after: [b]}\n  b: {command: [true], after: [a]}\n";
    assert_eq!(
        error("cfg.yaml", yaml),
        "cfg.yaml: cycle in after: a -> b -> a"
    );
    let yaml = "jobs:\n  a: {command: [true], after: [a]}\n";
    assert_eq!(error("cfg.yaml", yaml), "cfg.yaml: cycle in after: a -> a");
    let yaml = "jobs:\n  x: {command: [true]}\n  a: {command: [true], after: [x, b]}\n  \
                b: {command: [true], after: [c]}\n  c: {command: [true], after: [a]}\n";
    assert_eq!(
        error("cfg.yaml", yaml),
        "cfg.yaml: cycle in after: a -> b -> c -> a"
    );
}

#[test]
fn a_long_after_chain_is_not_a_cycle() {
    let mut yaml = String::from("jobs:\n  j0: {command: [true]}\n");
    for i in 1..2000 {
        yaml.push_str(&format!(
            "  j{i}: {{command: [true], after: [j{}]}}\n",
            i - 1
        ));
    }
    assert_eq!(load("chain.yaml", &yaml).jobs.len(), 2000);
}

#[test]
fn invalid_cron_names_the_job_and_the_expression() {
    let json = r#"{"jobs": {"x": {"command": ["true"], "schedule": "61 * * * *"}}}"#;
    assert_eq!(
        error("cfg.json", json),
        "cfg.json: job \"x\": schedule: invalid cron \"61 * * * *\": minute: invalid \"61\" (number out of bounds; values are 0-59)"
    );
}

#[test]
fn invalid_rrule_names_the_job_and_the_rule() {
    let json = r#"{"jobs": {"x": {"command": ["true"], "schedule": "RRULE:FREQ=DAILY;COUNT=2"}}}"#;
    assert_eq!(
        error("cfg.json", json),
        "cfg.json: job \"x\": schedule: invalid RRULE \"RRULE:FREQ=DAILY;COUNT=2\": COUNT is not \
         supported (as in dsari): the rule restarts each time the next run is computed; use UNTIL"
    );
}

#[test]
fn invalid_names_are_refused_with_the_rule() {
    let rule =
        "invalid name (must match ^[- A-Za-z0-9_+.:@]+$, at most 64 characters, not . or ..)";
    assert_eq!(
        error(
            "cfg.json",
            r#"{"jobs": {"bad/name": {"command": ["true"]}}}"#
        ),
        format!("cfg.json: job \"bad/name\": {rule}")
    );
    assert_eq!(
        error("cfg.json", r#"{"jobs": {"..": {"command": ["true"]}}}"#),
        format!("cfg.json: job \"..\": {rule}")
    );
    assert_eq!(
        error(
            "cfg.json",
            r#"{"job_groups": {"g/1": {"job_names": ["a"], "command": ["x"]}}}"#
        ),
        format!("cfg.json: job group \"g/1\": {rule}")
    );
    assert_eq!(
        error(
            "cfg.json",
            r#"{"job_groups": {"g": {"job_names": ["a/b"], "command": ["x"]}}}"#
        ),
        format!("cfg.json: job \"a/b\": {rule}")
    );
    assert_eq!(
        error(
            "cfg.json",
            r#"{"concurrency_groups": {"host/a": {"max": 1}}}"#
        ),
        format!("cfg.json: concurrency group \"host/a\": {rule}")
    );
    let long = "x".repeat(65);
    assert_eq!(
        error(
            "cfg.json",
            &format!(r#"{{"jobs": {{"{long}": {{"command": ["true"]}}}}}}"#)
        ),
        format!("cfg.json: job \"{long}\": {rule}")
    );
    assert_eq!(
        error("cfg.json", r#"{"jobs": {"a": {"command": ["true"], "concurrency_groups": ["a/b"]}}}"#),
        "cfg.json: job \"a\": concurrency_groups: invalid name \"a/b\" (must match ^[- A-Za-z0-9_+.:@]+$, \
         at most 64 characters, not . or ..)"
    );
}

#[test]
fn unknown_timezone_is_refused() {
    let json = r#"{"jobs": {"x": {"command": ["true"], "schedule": "@daily", "schedule_timezone": "Mars/Base"}}}"#;
    assert_eq!(
        error("cfg.json", json),
        "cfg.json: job \"x\": schedule_timezone: unknown timezone \"Mars/Base\" (expected an IANA name such as \
         \"Europe/Berlin\")"
    );
}

#[test]
fn bad_durations_are_refused() {
    let json = r#"{"jobs": {"x": {"command": ["true"], "max_execution": "5x"}}}"#;
    assert!(error("cfg.json", json)
        .starts_with("cfg.json: job \"x\": max_execution: invalid duration \"5x\" (expected"));
    let json = r#"{"jobs": {"x": {"command": ["true"], "max_execution_grace": -1}}}"#;
    assert!(error("cfg.json", json)
        .starts_with("cfg.json: job \"x\": max_execution_grace: invalid duration -1"));
    let json = r#"{"jobs": {"x": {"command": ["true"], "max_execution": true}}}"#;
    assert_eq!(
        error("cfg.json", json),
        "cfg.json: job \"x\": max_execution: expected a number of seconds or a string such as \"90s\""
    );
}

#[test]
fn wrong_value_types_name_the_key() {
    let json = r#"{"jobs": {"x": {"command": ["true"], "retries": "three"}}}"#;
    assert_eq!(
        error("cfg.json", json),
        "cfg.json: job \"x\": retries: invalid type: string \"three\", expected u32"
    );
    let json = r#"{"jobs": {"x": {"command": 5}}}"#;
    assert_eq!(
        error("cfg.json", json),
        "cfg.json: job \"x\": command: expected a list of strings or a string"
    );
    assert_eq!(
        error("cfg.json", r#"{"parallel": -1}"#),
        "cfg.json: parallel: invalid value: integer `-1`, expected u32"
    );
    assert_eq!(
        error("cfg.json", r#"{"jobs": []}"#),
        "cfg.json: jobs: expected a mapping of names, got a list"
    );
}

#[test]
fn a_job_defined_twice_is_refused() {
    let both = r#"{"jobs": {"job1": {"command": ["x"]}}, "job_groups": {"g": {"job_names": ["job1"], "command": ["y"]}}}"#;
    assert_eq!(
        error("cfg.json", both),
        "cfg.json: job \"job1\": defined both in jobs and in job group \"g\""
    );
    let two_groups = r#"{"job_groups": {"g1": {"job_names": ["a"], "command": ["x"]}, "g2": {"job_names": ["a"], "command": ["x"]}}}"#;
    assert_eq!(
        error("cfg.json", two_groups),
        "cfg.json: job \"a\": defined in job groups \"g1\" and \"g2\""
    );
    let twice = r#"{"job_groups": {"g": {"job_names": ["a", "a"], "command": ["x"]}}}"#;
    assert_eq!(
        error("cfg.json", twice),
        "cfg.json: job \"a\": listed twice in job group \"g\""
    );
    let dup_key = "{\"jobs\": {\"a\": {\"command\": [\"x\"]},\n \"a\": {\"command\": [\"y\"]}}}";
    assert!(error("cfg.json", dup_key).starts_with("cfg.json: duplicate key \"a\" at line 2"));
}

#[test]
fn required_keys_are_named_when_missing() {
    assert_eq!(
        error("cfg.json", r#"{"jobs": {"a": {"schedule": "@daily"}}}"#),
        "cfg.json: job \"a\": missing key \"command\""
    );
    assert_eq!(
        error("cfg.json", r#"{"job_groups": {"g": {"command": ["x"]}}}"#),
        "cfg.json: job group \"g\": missing key \"job_names\""
    );
}

#[test]
fn syntax_errors_name_the_file_and_position() {
    let e = error("broken.json", "{\"jobs\": {\n  \"a\": }");
    assert!(
        e.starts_with("broken.json: ") && e.contains("line 2"),
        "{e}"
    );
    let e = error("broken.yaml", "jobs:\n  a: [\n");
    assert!(e.starts_with("broken.yaml: "), "{e}");
    let e = error("list.yaml", "- a\n- b\n");
    assert_eq!(
        e,
        "list.yaml: expected a mapping at the top level, got a list"
    );
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let e = load_file(Path::new("/nonexistent/rota.yaml"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/rota.yaml: "), "{e}");
}

#[test]
fn environment_values_must_fit_a_process_environment() {
    assert_eq!(
        error("e.yaml", "environment: {\"A=B\": x}\n"),
        "e.yaml: environment: invalid variable name \"A=B\""
    );
    assert_eq!(
        error(
            "e.yaml",
            "jobs:\n  a: {command: [x], environment: {K: [1]}}\n"
        ),
        "e.yaml: job \"a\": environment: expected a string, number or boolean"
    );
}

#[test]
fn jobset_names_are_checked() {
    assert!(error("j.yaml", "jobset: a/b\n").starts_with("j.yaml: jobset: invalid name \"a/b\""));
    assert!(
        error("j.yaml", "jobs:\n  a: {command: [x], jobset: '..'}\n")
            .starts_with("j.yaml: job \"a\": jobset: invalid name")
    );
}

#[test]
fn bad_retention_values_name_the_key() {
    let err = error("r.yaml", "retention: {keep_last: 0}\n");
    assert!(
        err.starts_with("r.yaml: ")
            && err.contains("retention.keep_last")
            && err.contains("at least 1"),
        "{err}"
    );
    let err = error(
        "r.yaml",
        "jobs:\n  a:\n    command: [x]\n    retention: {max_age: soon}\n",
    );
    assert!(
        err.contains("job \"a\"")
            && err.contains("retention.max_age")
            && err.contains("invalid duration"),
        "{err}"
    );
    let err = error("r.yaml", "retention: {keep: 3}\n");
    assert!(err.contains("retention") && err.contains("keep"), "{err}");
}
