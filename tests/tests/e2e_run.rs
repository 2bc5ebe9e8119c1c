//! README's first command, as a user runs it: `rota run FILE` in-process, live progress, a
//! summary, exit 0 only if every run succeeded.

use std::process::Command;

use rota_tests::bins;

fn rota_run(file: &std::path::Path, tmp: &std::path::Path) -> std::process::Output {
    Command::new(bins!().rota)
        .arg("run")
        .arg(file)
        .env("TMPDIR", tmp)
        .env_remove("ROTA_COORDINATOR")
        .output()
        .expect("run rota")
}

#[test]
fn rota_run_of_the_example_pipeline_succeeds_with_progress_and_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pipeline.yaml");
    let out = rota_run(&file, tmp.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in ["dump-db1", "compress-db2", "upload-db3", "restore-db4"] {
        assert!(
            stdout.contains(step),
            "{step} appears in the progress: {stdout}"
        );
    }
    assert!(
        stdout.contains("16 runs, 16 succeeded"),
        "summary line: {stdout}"
    );
    // The stand-in upload really happened.
    let uploaded = tmp.path().join("rota-pipeline/uploaded");
    assert_eq!(
        std::fs::read_dir(&uploaded).unwrap().count(),
        4,
        "four uploaded dumps"
    );
}

#[test]
fn rota_run_exits_1_when_a_run_fails_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("fails.yaml");
    std::fs::write(
        &file,
        "jobs:\n  ok:\n    command: [true]\n  broken:\n    command: 'sh -c \"echo oops >&2; exit 3\"'\n  after-broken:\n    command: [true]\n    after: [broken]\n",
    )
    .unwrap();
    let out = rota_run(&file, tmp.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("broken") && stdout.contains("errored"),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped"),
        "its dependent is skipped: {stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("oops")
            || String::from_utf8_lossy(&out.stderr).contains("oops"),
        "the failed run's stderr is shown"
    );
}
