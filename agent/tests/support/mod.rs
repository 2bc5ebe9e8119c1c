//! Shared fixtures for the agent's tests: a spool in a temp dir, run specs, reading spooled
//! logs, process liveness, waiting on conditions with a deadline, and (in `coordinator`) a
//! minimal fake coordinator.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

pub mod coordinator;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rota_agent::runner::{Outcome, Run, RunSpec};
use rota_agent::spool::{Spool, Stream};
use rota_agent::RunKey;
use tempfile::TempDir;

/// Long enough for a loaded 2-core CI machine, short enough to fail a hung test quickly.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A locked spool in a fresh temp dir (dropped with the dir).
pub fn spool() -> (TempDir, Arc<Spool>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = Arc::new(Spool::open(&dir.path().join("spool")).expect("open spool"));
    (dir, spool)
}

/// A spec for `argv` with no limits, as agent "test-agent".
pub fn spec(run_id: &str, argv: &[&str]) -> RunSpec {
    RunSpec {
        key: RunKey::new(run_id, 1),
        argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
        env: HashMap::new(),
        agent_name: "test-agent".to_owned(),
        max_execution: None,
        kill_grace: Duration::from_secs(5),
        run_as: None,
        dirs: None,
        artifacts: vec![],
    }
}

/// Starts `spec` and waits (with the deadline) for it to end.
pub async fn run_to_end(spec: RunSpec, spool: &Arc<Spool>) -> (Run, Outcome) {
    let run = Run::start(spec, spool);
    let outcome = within(run.ended()).await;
    (run, outcome)
}

/// The spooled bytes of one stream.
pub fn spooled(spool: &Spool, key: &RunKey, stream: Stream) -> Vec<u8> {
    std::fs::read(spool.log_path(key, stream)).unwrap_or_default()
}

/// Runs `future` to completion or panics at the deadline.
pub async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .expect("deadline passed")
}

/// Polls `condition` until it holds or the deadline passes; for things with no event to
/// wait on (another process dying).
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deadline passed waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process exists and is not a zombie (an orphan whose reaper is slow still counts
/// as gone: it runs nothing).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}
