//! The thin `rota` (issue 14): the binary a script calls once per submit carries no coordinator
//! or agent code; `rota run` and `rota apply` go to `rota-local` beside it, which does.

use std::path::Path;
use std::process::Command;

use rota_tests::bins;

/// How many times `needle` occurs in the file at `path` (symbol names and panic locations
/// name their crate, so a crate's code leaves its name in a binary).
fn occurrences(path: &str, needle: &str) -> usize {
    let bytes = std::fs::read(path).expect("read binary");
    bytes
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

#[test]
fn rota_links_no_coordinator_or_agent_code_and_rota_local_does() {
    let local = env!("CARGO_BIN_EXE_e2e-rota-local");
    for krate in ["rota_coordinator", "rota_agent"] {
        assert_eq!(
            occurrences(bins!().rota, krate),
            0,
            "{krate} is linked into the thin rota ({})",
            bins!().rota
        );
        // The same check finds them where they are: it would see them in rota too.
        assert!(
            occurrences(local, krate) > 0,
            "{krate} missing from {local}"
        );
    }
}

#[test]
fn rota_run_without_its_companion_says_what_is_missing() {
    // A copy of rota alone in a directory: rota-local is not beside it.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("rota");
    if std::fs::hard_link(bins!().rota, &lone).is_err() {
        std::fs::copy(bins!().rota, &lone).expect("copy rota");
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pipeline.yaml");
    let out = Command::new(&lone)
        .arg("run")
        .arg(&file)
        .env_remove("ROTA_COORDINATOR")
        .output()
        .expect("run rota");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let expected = dir.path().join("rota-local");
    assert!(
        stderr.contains(&format!("{}", expected.display())) && stderr.contains("rota-local"),
        "names the missing companion: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}
