//! dsari's trigger files: `DATA_DIR/trigger/JOB/trigger.{json,yaml}` starts a run of JOB at
//! once (inotify, no polling) and is removed; a bad one is renamed aside with its reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rota_proto as pb;
use rota_tests::{client, eventually, stdout_of, Agent, Client, Coordinator};

const CONFIG: &str = "jobs:\n  greet:\n    command: 'sh -c \"echo $GREETING $TRIGGER_TYPE\"'\n";

struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    coordinator: Coordinator,
    agent: Agent,
    c: Client,
}

/// A coordinator with the `greet` job applied from `--config` and one agent; `before` runs on
/// the data dir before the coordinator starts.
async fn start(before: impl FnOnce(&Path)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("rota.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    before(&data);
    let coordinator = Coordinator::start(&data, |c| c.config_file = Some(config)).await;
    let agent = Agent::start(&coordinator.url, "a", 2, &[], &dir.path().join("spool"));
    let c = client(&coordinator.url).await;
    Setup {
        _dir: dir,
        data,
        coordinator,
        agent,
        c,
    }
}

fn write_trigger(data: &Path, job: &str, name: &str, text: &str) -> PathBuf {
    let dir = data.join("trigger").join(job);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The reason written beside a refused trigger file, once it is there whole.
async fn reason_beside(why: &Path) -> String {
    eventually(
        Duration::from_secs(10),
        "a bad trigger file to go aside",
        || {
            let why = why.to_path_buf();
            async move {
                std::fs::read_to_string(&why)
                    .ok()
                    .filter(|t| t.ends_with('\n'))
            }
        },
    )
    .await
}

/// The finished run of trigger type "file", once there is one.
async fn file_run(c: &Client, deadline: Duration) -> pb::Run {
    rota_tests::eventually_run(
        c,
        deadline,
        "a run started by a trigger file to finish",
        |r| r.trigger_type == "file" && r.state == "success",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trigger_file_starts_a_run_with_its_environment_and_is_removed() {
    let mut s = start(|_| {}).await;
    // Whether the watch is up yet or not, the file is seen: by inotify, or by the scan at start.
    let path = write_trigger(
        &s.data,
        "greet",
        "trigger.json",
        r#"{"type": "git", "environment": {"GREETING": "hello"}}"#,
    );
    let run = file_run(&s.c, Duration::from_secs(10)).await;
    assert_eq!(stdout_of(&mut s.c, &run.id).await.trim(), "hello file");
    assert!(
        !path.exists(),
        "the trigger file is removed once its run is accepted"
    );
    s.agent.stop().await;
    s.coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trigger_file_present_at_start_runs_and_yaml_works_too() {
    let mut s = start(|data| {
        write_trigger(
            data,
            "greet",
            "trigger.yaml",
            "environment:\n  GREETING: 42\n",
        );
    })
    .await;
    let run = file_run(&s.c, Duration::from_secs(10)).await;
    assert_eq!(stdout_of(&mut s.c, &run.id).await.trim(), "42 file");
    s.agent.stop().await;
    s.coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trigger_for_a_later_schedule_time_waits_for_it() {
    let mut s = start(|_| {}).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at_ms = now_ms + 1500;
    let text = format!(r#"{{"schedule_time": {}}}"#, at_ms as f64 / 1000.0);
    let path = write_trigger(&s.data, "greet", "trigger.json", &text);
    let run = file_run(&s.c, Duration::from_secs(10)).await;
    assert!(
        run.submitted_at_ms >= at_ms,
        "started at its schedule_time, not before: {} < {at_ms}",
        run.submitted_at_ms
    );
    assert!(!path.exists());
    s.agent.stop().await;
    s.coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_trigger_files_are_renamed_aside_with_the_reason() {
    let mut s = start(|_| {}).await;
    let cases = [
        ("greet", "trigger.json", "{not json", "not valid JSON"),
        ("nosuch", "trigger.json", "{}", "no job \"nosuch\""),
        (
            "greet",
            "trigger.yaml",
            "environment: [1, 2]\n",
            "environment must be a map",
        ),
    ];
    for (job, name, text, reason) in cases {
        let path = write_trigger(&s.data, job, name, text);
        let bad = path.with_file_name(format!("{name}.bad"));
        let why = path.with_file_name(format!("{name}.bad.reason"));
        let written = reason_beside(&why).await;
        assert!(written.contains(reason), "{job}/{name}: {written}");
        assert!(
            bad.exists() && !path.exists(),
            "{job}/{name} is renamed to .bad"
        );
    }
    let runs =
        s.c.list_runs(pb::ListRunsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .runs;
    assert!(runs.is_empty(), "no bad trigger started a run: {runs:?}");
    s.agent.stop().await;
    s.coordinator.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trigger_that_is_a_symlink_is_not_followed() {
    let mut s = start(|_| {}).await;
    let outside = s.data.parent().unwrap().join("outside.json");
    std::fs::write(&outside, r#"{"environment": {"GREETING": "leak"}}"#).unwrap();
    let dir = s.data.join("trigger").join("greet");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("trigger.json");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    // A symlink is created, not written: a later write in the dir makes the watcher look.
    std::fs::write(dir.join("note"), "").unwrap();
    let why = dir.join("trigger.json.bad.reason");
    let written = reason_beside(&why).await;
    assert!(written.contains("symlinks are not followed"), "{written}");
    assert!(outside.exists(), "the link's target is left alone");
    s.agent.stop().await;
    s.coordinator.stop().await;
}
