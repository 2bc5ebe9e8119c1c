//! Real binaries: SIGHUP makes the coordinator re-read `--config` and its `config_d` as
//! `rota apply` does (all or nothing; a bad file is logged and changes nothing; running runs go
//! on), and `rota apply --check` validates without applying.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use rota_tests::bins;
use rota_tests::procs::{until, System, STEADY};

const DEADLINE: Duration = Duration::from_secs(30);

fn job_names(sys: &System) -> Vec<String> {
    let mut names: Vec<String> = sys
        .json(&["jobs"])
        .as_array()
        .expect("jobs is a list")
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn wait_jobs(sys: &System, want: &[&str]) {
    until(DEADLINE, &format!("jobs {want:?}"), || {
        (job_names(sys) == want).then_some(())
    });
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn sighup_reloads_the_config_and_its_config_d_and_a_bad_file_changes_nothing() {
    let cfg = tempfile::tempdir().unwrap();
    let main = cfg.path().join("dsari.yaml");
    write(
        &main,
        "jobs:\n  slow: {command: [sleep, \"8\"]}\n  first: {command: [\"true\"]}\n",
    );
    let mut flags: Vec<&str> = STEADY.to_vec();
    let main_arg = main.to_str().unwrap();
    flags.extend(["--config", main_arg]);
    let mut sys = System::start_with(bins!(), &flags);
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    wait_jobs(&sys, &["first", "slow"]);
    let run = sys.json(&["trigger", "slow"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    sys.wait_state(&run, "running", DEADLINE);

    // The file drops `slow` and adds `second`; the default config.d adds `third`.
    write(
        &main,
        "jobs:\n  first: {command: [\"true\"]}\n  second: {command: [\"true\"]}\n",
    );
    std::fs::create_dir(cfg.path().join("config.d")).unwrap();
    write(
        &cfg.path().join("config.d/more.yaml"),
        "jobs:\n  third: {command: [\"true\"]}\n",
    );
    sys.signal_coordinator(Signal::SIGHUP);
    wait_jobs(&sys, &["first", "second", "third"]);
    // The run of the job that is gone goes on to its end.
    assert_eq!(
        sys.show(&run)["state"],
        "running",
        "the reload came too late to test this"
    );
    let done = sys.wait_state(&run, "success", DEADLINE);
    assert_eq!(done["name"], "slow");

    // A file that does not validate is logged and nothing changes.
    write(
        &main,
        "jobs:\n  fourth: {command: [\"true\"], comand: typo}\n",
    );
    sys.signal_coordinator(Signal::SIGHUP);
    until(DEADLINE, "the refused reload in the log", || {
        let log = sys.coordinator_log();
        (log.contains("config not reloaded") && log.contains("unknown key \"comand\""))
            .then_some(())
    });
    assert_eq!(job_names(&sys), ["first", "second", "third"]);

    // Fixed, it applies on the next SIGHUP.
    write(&main, "jobs:\n  fourth: {command: [\"true\"]}\n");
    sys.signal_coordinator(Signal::SIGHUP);
    wait_jobs(&sys, &["fourth", "third"]);
}

#[test]
fn apply_check_validates_without_applying() {
    let sys = System::start(bins!());
    let good = sys.path("good.yaml");
    write(
        &good,
        "data_dir: /var/lib/dsari\njobs:\n  a: {command: [\"true\"]}\n",
    );
    let out = sys.rota(&["apply", "--check", good.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "valid, would apply 1 jobs: a\n"
    );
    // The warning names the key that has no effect.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: ") && stderr.contains("key \"data_dir\" has no effect in rota"),
        "{stderr}"
    );
    assert!(job_names(&sys).is_empty(), "--check applied something");

    let bad = sys.path("bad.yaml");
    write(
        &bad,
        "jobs:\n  a: {command: [\"true\"], schedule: \"61 * * * *\"}\n",
    );
    let out = sys.rota(&["apply", "--check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml: job \"a\""), "{stderr}");
    assert!(stderr.contains("minute"), "{stderr}");

    // The same good file applies for real.
    let out = sys.rota(&["apply", good.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(job_names(&sys), ["a"]);
}

#[test]
fn rota_apply_sends_the_config_d_files_of_a_dsari_config() {
    let sys = System::start(bins!());
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dsari-every-key/dsari.yaml");
    let applied = sys.json(&["apply", example.to_str().unwrap()]);
    let mut jobs: Vec<&str> = applied["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["dump-db", "rotate-logs", "web1", "web2"]);
    assert_eq!(applied["warnings"].as_array().unwrap().len(), 9);
}

#[test]
fn sighup_without_a_config_is_logged_and_the_coordinator_goes_on() {
    let sys = System::start(bins!());
    sys.signal_coordinator(Signal::SIGHUP);
    until(DEADLINE, "the ignored SIGHUP in the log", || {
        sys.coordinator_log()
            .contains("SIGHUP ignored: no --config to reload")
            .then_some(())
    });
    assert!(job_names(&sys).is_empty());
}
