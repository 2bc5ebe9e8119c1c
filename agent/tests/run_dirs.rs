//! RUN_DIR and JOB_DIR: each run starts in its own empty directory, a job's directory lasts
//! from run to run, the run's return data is read when it ends, and a run directory goes
//! `--keep-run-dirs` after its run.

mod support;

use std::time::Duration;

use rota_agent::spool::Stream;
use rota_agent::workdir::WorkDir;
use rota_agent::RunKey;
use support::{eventually, run_to_end, spec, spool, spooled};

fn stdout(spool: &rota_agent::spool::Spool, key: &RunKey) -> String {
    String::from_utf8(spooled(spool, key, Stream::Stdout)).unwrap()
}

#[tokio::test]
async fn each_run_starts_in_its_own_empty_run_dir_and_the_job_dir_persists() {
    let (dir, spool) = spool();
    let work = WorkDir::open(&dir.path().join("work"), Duration::from_secs(3600), None).unwrap();
    let script = r#"test "$PWD" = "$RUN_DIR" || exit 10
        test -z "$(ls -A)" || exit 11
        test -d "$JOB_DIR" || exit 12
        echo left > here
        n=$(cat "$JOB_DIR/count" 2>/dev/null || echo 0)
        echo $((n + 1)) > "$JOB_DIR/count"
        printf '%s %s' "$RUN_DIR" "$(cat "$JOB_DIR/count")""#;
    let mut seen = Vec::new();
    for run in ["r-1", "r-2"] {
        let mut spec = spec(run, &["sh", "-c", script]);
        spec.dirs = Some(work.prepare(&spec.key, "nightly backup").unwrap());
        let key = spec.key.clone();
        let (_, outcome) = run_to_end(spec, &spool).await;
        assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
        seen.push(stdout(&spool, &key));
    }
    let root = dir.path().join("work");
    assert_eq!(
        seen,
        [
            format!("{}/runs/r-1.1 1", root.display()),
            format!("{}/runs/r-2.1 2", root.display()),
        ]
    );
    assert!(root.join("runs/r-1.1/here").is_file());
    assert_eq!(
        std::fs::read_to_string(root.join("jobs/nightly%20backup/count")).unwrap(),
        "2\n"
    );
}

#[tokio::test]
async fn the_run_dir_is_removed_after_the_keep_time_and_the_job_dir_stays() {
    let (dir, spool) = spool();
    let work = WorkDir::open(&dir.path().join("work"), Duration::from_millis(200), None).unwrap();
    let mut spec = spec(
        "gone",
        &[
            "sh",
            "-c",
            "echo x > \"$RUN_DIR/f\"; echo x > \"$JOB_DIR/g\"",
        ],
    );
    let dirs = work.prepare(&spec.key, "job").unwrap();
    spec.dirs = Some(dirs.clone());
    run_to_end(spec, &spool).await;
    eventually("the run dir is removed", || !dirs.run_dir.exists()).await;
    assert!(dirs.job_dir.join("g").is_file());
}

#[tokio::test]
async fn run_dirs_a_previous_agent_left_are_removed_on_a_timer_from_their_age() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("work");
    std::fs::create_dir_all(root.join("runs/old.1")).unwrap();
    WorkDir::open(&root, Duration::ZERO, None).unwrap();
    eventually("the leftover is removed", || {
        !root.join("runs/old.1").exists()
    })
    .await;
}

#[tokio::test]
async fn return_data_is_read_when_the_run_ends() {
    let (dir, spool) = spool();
    let work = WorkDir::open(&dir.path().join("work"), Duration::from_secs(3600), None).unwrap();
    let mut spec = spec(
        "rd",
        &["sh", "-c", "printf 'rows: 3\\n' > return_data.yaml; exit 1"],
    );
    spec.dirs = Some(work.prepare(&spec.key, "job").unwrap());
    let (_, outcome) = run_to_end(spec, &spool).await;
    assert_eq!(outcome.exit_code, Some(1));
    let data = outcome.return_data.expect("return data");
    assert_eq!(data.file, "return_data.yaml");
    assert_eq!(data.data, b"rows: 3\n");
    assert_eq!(data.problem, "");
}

#[tokio::test]
async fn a_reused_run_dir_stays_while_a_pinned_run_uses_it_and_goes_after() {
    let (dir, spool) = spool();
    let keep = Duration::from_millis(100);
    let work = WorkDir::open(&dir.path().join("work"), keep, None).unwrap();
    let mut first = spec("target", &["sh", "-c", "echo dumped > db.sql"]);
    let target = first.key.clone();
    first.dirs = Some(work.prepare(&target, "dump").unwrap());
    run_to_end(first, &spool).await;
    // Pinned to it before its timer fires; runs past the keep time in the same directory.
    let mut pinned = spec("pinned", &["sh", "-c", "sleep 0.4; cat db.sql"]);
    let dirs = work.reuse(&target, "restore").unwrap();
    pinned.dirs = Some(dirs.clone());
    let key = pinned.key.clone();
    let (_, outcome) = run_to_end(pinned, &spool).await;
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    assert_eq!(stdout(&spool, &key), "dumped\n");
    eventually("the reused dir is removed after the pinned run", || {
        !dirs.run_dir.exists()
    })
    .await;
    let err = work.reuse(&target, "restore").unwrap_err().to_string();
    assert!(err.contains("is gone from this agent"), "{err}");
}
