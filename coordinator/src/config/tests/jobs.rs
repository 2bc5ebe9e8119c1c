//! What a valid file becomes: examples, expansion, defaults, values and RunSpecs.

use std::time::Duration;

use super::super::*;
use super::*;

#[test]
fn every_example_file_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).expect("examples/ exists") {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ["json", "yaml", "yml"].contains(&ext) {
            let defs = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!defs.jobs.is_empty(), "{} has no jobs", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 7, "only {seen} example files");
}

#[test]
fn pipeline_example_chains_each_database() {
    let defs = load_file(&examples_dir().join("pipeline.yaml")).unwrap();
    assert_eq!(defs.jobset, "pipeline");
    assert_eq!(defs.parallel, 4);
    assert_eq!(defs.jobs.len(), 16);
    for db in ["db1", "db2", "db3", "db4"] {
        let dump = format!("dump-{db}");
        let compress = format!("compress-{db}");
        assert!(job(&defs, &dump).after.is_empty());
        assert_eq!(job(&defs, &compress).after, [dump.as_str()]);
        assert_eq!(
            job(&defs, &format!("upload-{db}")).after,
            [compress.as_str()]
        );
        assert_eq!(job(&defs, &format!("restore-{db}")).after, [dump.as_str()]);
        assert!(job(&defs, &format!("upload-{db}")).shell);
    }
}

#[test]
fn dsari_job_groups_example_expands_to_one_job_per_name() {
    let defs = load_file(&examples_dir().join("dsari-concurrency-3.json")).unwrap();
    let names: Vec<&str> = defs.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["job1", "job2", "job3", "job4", "job5"]);
    for j in &defs.jobs {
        assert_eq!(j.job_group.as_deref(), Some("build-jobs"));
        assert_eq!(j.command, ["build_job_wrapper"]);
        assert_eq!(j.concurrency_groups, ["host-a_group", "host-b_group"]);
        assert_eq!(j.schedule_text.as_deref(), Some("* * * * *"));
    }
    assert_eq!(defs.groups.get("host-a_group"), Some(&2));
    assert_eq!(defs.groups.get("host-b_group"), Some(&1));
    assert_eq!(defs.jobset, "dsari-concurrency-3");
}

#[test]
fn hashed_schedules_differ_between_jobs_of_one_group() {
    let defs = load(
        "g.yaml",
        "job_groups:\n  g:\n    job_names: [a, b]\n    command: [true]\n    schedule: H H * * *\n",
    );
    let expanded: Vec<&str> = defs
        .jobs
        .iter()
        .map(|j| j.schedule.as_ref().unwrap().expanded())
        .collect();
    assert_ne!(expanded[0], expanded[1]);
}

#[test]
fn rrule_schedules_hash_by_job_and_take_the_jobs_zone() {
    // "backup" hashes to 01:15:24 UTC (see cron/rrule_tests.rs), "report" to 10:18:44.
    let defs = load(
        "r.yaml",
        "job_groups:\n  g:\n    job_names: [backup, report]\n    command: [true]\n    \
         schedule: 'RRULE:FREQ=DAILY'\n    schedule_timezone: Europe/Berlin\n",
    );
    let expanded: Vec<&str> = defs
        .jobs
        .iter()
        .map(|j| j.schedule.as_ref().unwrap().expanded())
        .collect();
    // In Berlin's winter time (+1): 02:15:24 and 11:18:44.
    assert_eq!(
        expanded,
        [
            "RRULE:FREQ=DAILY;BYHOUR=2;BYMINUTE=15;BYSECOND=24",
            "RRULE:FREQ=DAILY;BYHOUR=11;BYMINUTE=18;BYSECOND=44"
        ]
    );
    let tz = defs.jobs[0].schedule.as_ref().unwrap().timezone();
    assert_eq!(tz, chrono_tz::Europe::Berlin);
}

#[test]
fn priority_words_and_integers_are_accepted() {
    let yaml = "jobs:\n  h: {command: [x], priority: high}\n  l: {command: [x], priority: low}\n  \
                n: {command: [x]}\n  i: {command: [x], priority: 7}\n  s: {command: [x], priority: '-3'}\n";
    let defs = load("p.yaml", yaml);
    let p: Vec<i32> = ["h", "l", "n", "i", "s"]
        .iter()
        .map(|n| job(&defs, n).priority)
        .collect();
    assert_eq!(p, [10, -10, 0, 7, -3]);
    assert_eq!(
        error("p.yaml", "jobs:\n  a: {command: [x], priority: urgent}\n"),
        "p.yaml: job \"a\": priority: invalid priority \"urgent\" (expected high, normal, low or an integer)"
    );
}

#[test]
fn command_strings_are_split_like_a_shell() {
    let yaml = "jobs:\n  a:\n    command: ssh host-a 'build job1' \"x y\"\n";
    assert_eq!(
        job(&load("c.yaml", yaml), "a").command,
        ["ssh", "host-a", "build job1", "x y"]
    );
    // YAML reads unquoted numbers as numbers; in argv they are their text.
    let yaml = "jobs:\n  a: {command: [/bin/sleep, 90]}\n";
    assert_eq!(
        job(&load("c.yaml", yaml), "a").command,
        ["/bin/sleep", "90"]
    );
    let yaml = "jobs:\n  a:\n    command: echo 'unterminated\n";
    assert_eq!(
        error("c.yaml", yaml),
        "c.yaml: job \"a\": command: unterminated single quote"
    );
}

#[test]
fn shell_commands_run_under_bin_sh() {
    let yaml = "jobs:\n  a:\n    shell: true\n    command: 'echo $HOME | wc -c'\n";
    let a = job(&load("s.yaml", yaml), "a").clone();
    assert!(a.shell);
    assert_eq!(a.command, ["/bin/sh", "-c", "echo $HOME | wc -c"]);
    let spec = a.to_run_spec(&Default::default());
    assert!(!spec.shell);
    assert_eq!(spec.command, ["/bin/sh", "-c", "echo $HOME | wc -c"]);
    assert_eq!(
        error("s.yaml", "jobs:\n  a: {shell: true, command: [echo, hi]}\n"),
        "s.yaml: job \"a\": command: with shell: true, command must be a string"
    );
    assert_eq!(
        error("s.yaml", "jobs:\n  a: {command: []}\n"),
        "s.yaml: job \"a\": command: must name a program"
    );
}

#[test]
fn durations_accept_dsari_seconds_and_unit_strings() {
    let yaml = "jobs:\n  a: {command: [x], max_execution: 300, max_execution_grace: 2.5}\n  \
                b: {command: [x], max_execution: 5m, max_execution_grace: 500ms}\n  \
                c: {command: [x], max_execution: 0}\n";
    let defs = load("d.yaml", yaml);
    assert_eq!(
        job(&defs, "a").max_execution,
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        job(&defs, "a").max_execution_grace,
        Some(Duration::from_millis(2500))
    );
    assert_eq!(
        job(&defs, "b").max_execution,
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        job(&defs, "b").max_execution_grace,
        Some(Duration::from_millis(500))
    );
    // dsari: 0 means no limit.
    assert_eq!(job(&defs, "c").max_execution, None);
}

#[test]
fn defaults_come_from_the_file_name_and_dsari() {
    let defs = load("some/dir/nightly.yaml", "jobs:\n  a: {command: [x]}\n");
    assert_eq!(defs.jobset, "nightly");
    assert_eq!(defs.parallel, 0);
    assert_eq!(defs.path, "some/dir/nightly.yaml");
    let a = job(&defs, "a");
    assert_eq!(
        (a.priority, a.retries, a.concurrent_runs, a.shell),
        (0, 0, false, false)
    );
    assert!(a.schedule.is_none() && a.job_group.is_none() && a.jobset.is_none());
    let defs = load("x.yaml", "jobset: nightly-2\nparallel: 3\njobs: {}\n");
    assert_eq!((defs.jobset.as_str(), defs.parallel), ("nightly-2", 3));
    assert!(defs.jobs.is_empty());
}

#[test]
fn empty_file_is_an_empty_config() {
    let defs = load("empty.yaml", "");
    assert!(defs.jobs.is_empty() && defs.groups.is_empty());
}

#[test]
fn jobs_keep_file_order() {
    let json = r#"{"jobs": {"zeta": {"command": ["x"]}, "alpha": {"command": ["x"]}},
                   "job_groups": {"g": {"job_names": ["mid2", "mid1"], "command": ["x"]}}}"#;
    let names: Vec<String> = load("o.json", json)
        .jobs
        .into_iter()
        .map(|j| j.name)
        .collect();
    assert_eq!(names, ["zeta", "alpha", "mid2", "mid1"]);
}

#[test]
fn dsari_only_keys_are_accepted() {
    let json = r#"{
        "data_dir": "/var/lib/dsari", "template_dir": "/t", "report_html_gz": true,
        "report_output_limit": 100, "shutdown_kill_runs": true, "shutdown_kill_grace": 5.0,
        "database": {"type": "sqlite3"}, "config_d": "/etc/dsari/config.d",
        "jobs": {"a": {"command": ["/usr/bin/env"], "render_reports": false,
                       "jenkins_environment": true, "job_group": "hand", "concurrent_runs": true}}
    }"#;
    let defs = load("dsari.json", json);
    let a = job(&defs, "a");
    assert_eq!(a.job_group.as_deref(), Some("hand"));
    assert!(a.concurrent_runs);
}

#[test]
fn run_spec_merges_environments_and_carries_limits() {
    let yaml = "environment: {A: global, B: global, PORT: 5432}\n\
                job_groups:\n  grp:\n    job_names: [j]\n    command: [run, it]\n    \
                environment: {B: job}\n    concurrency_groups: [g1, g2]\n    priority: high\n    \
                retries: 2\n    max_execution: 90s\n";
    let defs = load("r.yaml", yaml);
    let spec = defs.jobs[0].to_run_spec(&defs.environment);
    assert_eq!(spec.name, "j");
    assert_eq!(spec.command, ["run", "it"]);
    assert_eq!(spec.env["A"], "global");
    assert_eq!(spec.env["B"], "job");
    assert_eq!(spec.env["PORT"], "5432");
    assert_eq!(spec.env["JOB_GROUP"], "grp");
    assert_eq!(spec.groups, ["g1", "g2"]);
    assert_eq!((spec.priority, spec.retries), (10, 2));
    assert_eq!(spec.max_execution_ms, 90_000);
    assert_eq!(spec.kill_grace_ms, 60_000);
}

#[test]
fn run_spec_without_limit_has_no_kill_grace_unless_set() {
    let defs = load(
        "r.yaml",
        "jobs:\n  a: {command: [x]}\n  b: {command: [x], max_execution_grace: 5}\n",
    );
    let a = job(&defs, "a").to_run_spec(&Default::default());
    assert_eq!((a.max_execution_ms, a.kill_grace_ms), (0, 0));
    let b = job(&defs, "b").to_run_spec(&Default::default());
    assert_eq!(b.kill_grace_ms, 5000);
}

#[test]
fn on_disconnect_is_keep_by_default_stop_when_set_and_nothing_else() {
    let defs = load(
        "r.yaml",
        "jobs:\n  a: {command: [x]}\n  b: {command: [x], on_disconnect: stop}\n  \
         c: {command: [x], on_disconnect: keep}\n",
    );
    let spec = |name| job(&defs, name).to_run_spec(&Default::default());
    assert_eq!(
        spec("a").on_disconnect,
        rota_proto::OnDisconnect::Keep as i32
    );
    assert_eq!(
        spec("b").on_disconnect,
        rota_proto::OnDisconnect::Stop as i32
    );
    assert_eq!(
        spec("c").on_disconnect,
        rota_proto::OnDisconnect::Keep as i32
    );
    let err = error(
        "r.yaml",
        "jobs:\n  a: {command: [x], on_disconnect: kill}\n",
    );
    assert!(
        err.contains("on_disconnect") && err.contains("keep or stop"),
        "{err}"
    );
}

#[test]
fn run_spec_after_names_jobs() {
    let defs = load(
        "r.yaml",
        "jobs:\n  a: {command: [x]}\n  b: {command: [x], after: [a, a]}\n",
    );
    assert_eq!(
        job(&defs, "b").to_run_spec(&Default::default()).after,
        ["a"]
    );
}

#[test]
fn command_append_run_appends_job_name_and_run_id_at_run_time() {
    let defs = load(
        "r.yaml",
        "jobs:\n  a: {command: [build, x], command_append_run: true}\n",
    );
    let a = job(&defs, "a");
    assert!(a.command_append_run);
    assert_eq!(a.command, ["build", "x"]);
    let spec = a.to_run_spec(&Default::default());
    assert_eq!(spec.command[..2], ["/bin/sh", "-c"]);
    assert_eq!(spec.command[3..], ["sh", "build", "x"]);
    // The wrapper really appends the two variables the agent sets.
    let out = std::process::Command::new(&spec.command[0])
        .args(&spec.command[1..3])
        .args(["sh", "echo"])
        .env("JOB_NAME", "a")
        .env("RUN_ID", "1234")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a 1234\n");
}

#[test]
fn farm_example_keeps_dumps_as_artifacts_and_restores_sticky() {
    let defs = load_file(&examples_dir().join("farm.yaml")).unwrap();
    assert_eq!(defs.jobs.len(), 16);
    assert_eq!(defs.groups["host-a_group"], 2);
    for db in ["db1", "db2", "db3", "db4"] {
        let dump = job(&defs, &format!("dump-{db}"));
        assert_eq!(dump.artifacts, [format!("{db}.sql")]);
        assert_eq!(dump.concurrency_groups, ["host-a_group"]);
        let compress = job(&defs, &format!("compress-{db}"));
        assert_eq!(compress.concurrency_groups, ["host-b_group"]);
        let restore = job(&defs, &format!("restore-{db}"));
        assert_eq!(restore.same_agent_as.as_deref(), Some(dump.name.as_str()));
        let spec = restore.to_run_spec(&defs.environment);
        assert_eq!(spec.same_agent_as, dump.name);
    }
}

#[test]
fn same_agent_as_joins_after_and_sticky_takes_the_first_after() {
    let defs = load(
        "farm.yaml",
        "jobs:\n  a: {command: [true]}\n  b: {command: [true]}\n  \
         c: {command: [true], same_agent_as: a, after: [b]}\n  \
         d: {command: [true], after: [b, a], affinity: sticky}\n",
    );
    assert_eq!(job(&defs, "c").after, ["b", "a"]);
    assert_eq!(job(&defs, "c").same_agent_as.as_deref(), Some("a"));
    assert_eq!(job(&defs, "d").same_agent_as.as_deref(), Some("b"));
}

#[test]
fn affinity_and_artifact_mistakes_are_refused_naming_the_key() {
    for (yaml, key, says) in [
        ("affinity: sticky", "affinity", "sticky needs an after"),
        ("affinity: loose", "affinity", "expected sticky or none"),
        (
            "after: [a]\n    same_agent_as: a\n    affinity: sticky",
            "affinity",
            "use one",
        ),
        ("artifacts: [../x]", "artifacts", "inside RUN_DIR"),
        ("artifacts: [/etc/passwd]", "artifacts", "inside RUN_DIR"),
    ] {
        let text =
            format!("jobs:\n  a: {{command: [true]}}\n  b:\n    command: [true]\n    {yaml}\n");
        let err = error("f.yaml", &text);
        assert!(
            err.contains(&format!("job \"b\": {key}: ")) && err.contains(says),
            "{yaml}: {err}"
        );
    }
}

#[test]
fn retention_at_the_top_and_per_job_becomes_policies() {
    let defs = load(
        "r.yaml",
        "retention: {max_age: 30d, keep_last: 1000, keep_failed_for: 90}\n\
         jobs:\n  a:\n    command: [x]\n    retention: {keep_last: 5}\n  b:\n    command: [y]\n",
    );
    let day = Duration::from_secs(86_400);
    assert_eq!(defs.retention.max_age, Some(day * 30));
    assert_eq!(defs.retention.keep_last, Some(1000));
    assert_eq!(
        defs.retention.keep_failed_for,
        Some(Duration::from_secs(90))
    );
    assert_eq!(job(&defs, "a").retention.keep_last, Some(5));
    assert_eq!(
        job(&defs, "a").retention.max_age,
        None,
        "filled in by the engine"
    );
    assert_eq!(job(&defs, "b").retention, Default::default());
}
