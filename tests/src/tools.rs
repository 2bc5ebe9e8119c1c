//! External programs some tests drive for real (Chromium's WebDriver, Prometheus, promtool,
//! Docker, task-spooler). Where one is missing a test skips with a printed reason, so
//! `cargo test` works on a bare machine; `.ci/run` installs them (`.ci/packages`) and sets
//! `ROTA_REQUIRE_TOOLS=1`, under which a missing tool fails the test instead: CI never goes
//! green by skipping.

use std::path::PathBuf;

/// The path of `program` on `PATH`, or None after printing why the calling test skips (and
/// panics instead under `ROTA_REQUIRE_TOOLS=1`).
pub fn tool(program: &str, package: &str) -> Option<PathBuf> {
    let found = on_path(program);
    if found.is_none() {
        missing(program, package);
    }
    found
}

/// Where `program` is on `PATH`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// Prints why the calling test skips without `program` (or panics under
/// `ROTA_REQUIRE_TOOLS=1`).
pub fn missing(program: &str, package: &str) {
    let reason =
        format!("{program} not found (Debian package {package}; .ci/packages installs it)");
    if std::env::var_os("ROTA_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
        panic!("{reason}, and ROTA_REQUIRE_TOOLS=1");
    }
    eprintln!("SKIPPED: {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_on_path() {
        assert!(tool("sh", "dash").is_some());
    }
}
