//! A dsari config moves over unchanged: every key dsari reads is accepted, `config_d` files
//! merge as in dsari, keys without effect warn once each, and `jenkins_environment` sets
//! dsari's variables.

use super::*;

fn every_key() -> Definitions {
    load_file(&examples_dir().join("dsari-every-key/dsari.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_dsari_config_using_every_key_applies() {
    let defs = every_key();
    let names: Vec<&str> = defs.jobs.iter().map(|j| j.name.as_str()).collect();
    // `jobs` (with the job config.d/10-more.yaml adds to it), then the job group expanded.
    assert_eq!(names, ["dump-db", "rotate-logs", "web1", "web2"]);
    let dump = job(&defs, "dump-db");
    assert!(dump.command_append_run && dump.jenkins_environment && !dump.concurrent_runs);
    assert_eq!(dump.job_group.as_deref(), Some("databases"));
    assert_eq!(dump.schedule_timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(dump.concurrency_groups, ["backups"]);
    assert_eq!(dump.environment["RETENTION"], "7");
    assert_eq!(defs.groups["backups"], 2);
    assert_eq!(job(&defs, "web2").job_group.as_deref(), Some("hosts"));
    // The top-level environment goes under every job's own.
    let spec = dump.to_run_spec(&defs.environment);
    assert_eq!(spec.env["SITE"], "dc-east");
    assert_eq!(spec.env["PATH"], "/usr/local/bin:/usr/bin:/bin");
}

#[test]
fn config_d_merges_yaml_then_json_files_in_name_order() {
    let defs = every_key();
    // 10-more.yaml raised dump-db's limit; 20-more.json (JSON after all YAML) replaced
    // rotate-logs' @daily; ignored.txt was not read.
    let dump = job(&defs, "dump-db");
    assert_eq!(
        dump.max_execution,
        Some(std::time::Duration::from_secs(7200))
    );
    assert_eq!(
        dump.max_execution_grace,
        Some(std::time::Duration::from_secs(30))
    );
    let rotate = job(&defs, "rotate-logs");
    assert_eq!(rotate.schedule_text.as_deref(), Some("H 3 * * * H"));
    assert_eq!(defs.environment["TEAM"], "ops");
    assert_eq!(defs.environment["SITE"], "dc-west");
}

#[test]
fn config_d_defaults_to_config_d_beside_the_file_and_may_be_absent() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("dsari.json");
    std::fs::write(&main, r#"{"jobs": {"a": {"command": ["true"]}}}"#).unwrap();
    assert_eq!(load_file(&main).unwrap().jobs.len(), 1);
    std::fs::create_dir(dir.path().join("config.d")).unwrap();
    std::fs::write(
        dir.path().join("config.d/b.yaml"),
        "jobs:\n  b: {command: [\"true\"]}\n",
    )
    .unwrap();
    let names: Vec<String> = load_file(&main)
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn a_syntax_error_in_a_config_d_file_names_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("dsari.yaml");
    std::fs::write(&main, "config_d: more\njobs: {}\n").unwrap();
    std::fs::create_dir(dir.path().join("more")).unwrap();
    std::fs::write(dir.path().join("more/bad.json"), "{\"jobs\": ").unwrap();
    let err = load_file(&main).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: ", dir.path().join("more/bad.json").display())),
        "{err}"
    );
}

#[test]
fn keys_without_effect_are_accepted_with_one_warning_each() {
    let defs = every_key();
    let path = examples_dir().join("dsari-every-key/dsari.yaml");
    let shown = path.display().to_string();
    let warning = |key: &str, at: &str| {
        format!(
            "{shown}: key \"{key}\"{at} has no effect in rota (accepted for dsari compatibility)"
        )
    };
    let mut want: Vec<String> = [
        "data_dir",
        "database",
        "template_dir",
        "report_html_gz",
        "report_run_output_start",
        "report_run_output_end",
        "shutdown_kill_runs",
        "shutdown_kill_grace",
    ]
    .iter()
    .map(|k| warning(k, ""))
    .collect();
    want.push(warning(
        "render_reports",
        " (in job \"dump-db\", job group \"hosts\")",
    ));
    assert_eq!(defs.warnings, want);
    // A config without them has none, and an unknown key is still an error.
    assert!(load("a.yaml", "jobs:\n  a: {command: [x]}\n")
        .warnings
        .is_empty());
    assert_eq!(
        error("a.yaml", "report_run_output_middle: 1\n"),
        "a.yaml: unknown key \"report_run_output_middle\""
    );
}

#[test]
fn jenkins_environment_sets_dsaris_variables_unless_the_run_has_them() {
    let defs = load(
        "r.yaml",
        "jobs:\n  a: {command: [sh, -c, 'echo $BUILD_ID $BUILD_NUMBER $BUILD_TAG $BUILD_URL \
         $EXECUTOR_NUMBER $NODE_NAME $WORKSPACE $JENKINS_URL'], jenkins_environment: true}\n",
    );
    let spec = job(&defs, "a").to_run_spec(&Default::default());
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let run = |extra: &[(&str, &str)]| {
        let out = std::process::Command::new(&spec.command[0])
            .args(&spec.command[1..])
            .current_dir(&cwd)
            .env("PWD", &cwd)
            .env("JOB_NAME", "a")
            .env("RUN_ID", "r-7")
            .env("RUN_DIR", cwd.join("runs/r-7.1"))
            .envs(extra.iter().copied())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ws = cwd.display();
    assert_eq!(
        run(&[]),
        format!("r-7 r-7 dsari-a-r-7 file://{ws}/ 0 master {ws} file://{ws}/\n")
    );
    // An explicit variable wins, as in dsari.
    let tail = format!(" master /src file://{ws}/\n");
    assert!(run(&[("WORKSPACE", "/src")]).ends_with(&tail));
    // With command_append_run too, the job name and run id still come last.
    let both = load(
        "r.yaml",
        "jobs:\n  a: {command: [echo], jenkins_environment: true, command_append_run: true}\n",
    );
    let spec = job(&both, "a").to_run_spec(&Default::default());
    let out = std::process::Command::new(&spec.command[0])
        .args(&spec.command[1..])
        .env("JOB_NAME", "a")
        .env("RUN_ID", "r-7")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a r-7\n");
}
