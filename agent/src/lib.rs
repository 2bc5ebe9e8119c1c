//! rota's agent: one process per machine that holds a gRPC stream open to the coordinator,
//! runs the commands assigned to it as real processes, spools their output to local files and
//! streams it back with byte offsets, so a reconnect resumes where the coordinator stopped.
//!
//! The pieces, one per file:
//! - [`runner`]: one run as a real process in its own process group, cancel and timeout.
//! - [`run_as`]: `--run-as USER`, the user runs become.
//! - [`spool`]: the spool directory: log files, recorded process groups, orphan cleanup.
//! - [`artifacts`]: a successful run's files sent to the coordinator, a run's inputs fetched.
//! - [`workdir`]: each run's empty `RUN_DIR`, each job's `JOB_DIR`, return data.
//! - [`backoff`]: the reconnect delays.
//! - `connection`: one `Connect` stream: handshake, heartbeats, lease, messages in and out.
//! - `sender`: the per-run log sender of one connection (first send and resend are one path).
//! - `state`: the runs this process holds, shared by the connection and the drain.
//! - `disconnect`: stop `on_disconnect: stop` runs once the coordinator is out of contact.
//! - `drain`: stop taking work, finish or cancel what runs, wait for the acknowledgements.
//! - `watchdog`: a forked process that kills every run's group when the agent dies.

pub mod artifacts;
pub mod backoff;
mod connection;
mod disconnect;
mod drain;
pub mod run_as;
pub mod runner;
pub mod sender;
pub mod spool;
mod state;
mod watchdog;
pub mod workdir;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::backoff::Backoff;
use crate::connection::Ended;
use crate::state::Agent;

/// Everything an agent needs to know to serve a coordinator. `main.rs` fills the defaults
/// (hostname, CPU count, state dir); tests build it directly.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Coordinator URL, e.g. `http://127.0.0.1:7878`.
    pub coordinator: String,
    /// Agent name, unique per machine; the coordinator shows runs by it and sets `AGENT_NAME`.
    pub name: String,
    /// Concurrency groups this agent serves: the coordinator maps groups to hosts with them.
    pub groups: Vec<String>,
    /// How many runs at once the coordinator may assign here (it enforces this, not us).
    pub slots: u32,
    /// Free-form labels shown by `rota agents`.
    pub labels: BTreeMap<String, String>,
    /// Where run output is spooled before it is sent; one directory per agent process, locked.
    pub spool_dir: PathBuf,
    /// Where runs get their `RUN_DIR` (`runs/`) and jobs their `JOB_DIR` (`jobs/`).
    pub work_dir: PathBuf,
    /// How long a run's `RUN_DIR` is kept after the run ended, for a look at what it left.
    pub keep_run_dirs: Duration,
    /// How long a drain waits for running runs before cancelling them.
    pub drain_timeout: Duration,
    /// The coordinator's token and an extra CA for `https://`.
    pub access: rota_proto::access::Access,
    /// Runs start as this user (`--run-as`), so they cannot read the agent's token file or
    /// memory; `None`: as the agent's own user.
    pub run_as: Option<Arc<run_as::RunAs>>,
}

/// Identifies one attempt of one run: every report about a run carries both, so the
/// coordinator can ignore reports for an attempt that is no longer current.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunKey {
    /// The run's UUID (`RUN_ID`).
    pub run_id: String,
    /// The attempt number; a retried run gets a new one.
    pub attempt: u32,
}

impl RunKey {
    /// Builds a key from the `(run_id, attempt)` pair every protocol message carries.
    pub fn new(run_id: impl Into<String>, attempt: u32) -> Self {
        Self {
            run_id: run_id.into(),
            attempt,
        }
    }
}

impl fmt::Display for RunKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.run_id, self.attempt)
    }
}

/// Runs the agent until `shutdown` resolves (then drains) or the coordinator tells it to drain.
/// Returns Ok after a clean drain; Err on a refusal retrying cannot change (a token the
/// coordinator does not accept, another protocol version, a bad name or zero slots).
///
/// Connection failures are not errors: the agent reconnects with jittered backoff while its
/// runs keep running, because a coordinator restart must not cost any work.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let agent = Arc::new(Agent::new(config).context("cannot start the agent")?);
    let drainer = tokio::spawn(drain::drain_when_requested(agent.clone()));
    let guard = tokio::spawn(disconnect::stop_runs_out_of_contact(agent.clone()));
    let on_shutdown = {
        let agent = agent.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested: draining");
            agent.request_drain(None);
        })
    };
    let result = serve_until_drained(&agent).await;
    on_shutdown.abort();
    drainer.abort();
    guard.abort();
    if result.is_err() {
        // Nothing would supervise them any more; with the process gone PDEATHSIG kills them
        // anyway, this makes the library behave the same when the process lives on.
        agent.kill_all();
    }
    result
}

/// Connects, serves, and reconnects after every lost connection until the drain is done.
async fn serve_until_drained(agent: &Arc<Agent>) -> anyhow::Result<()> {
    let mut backoff = Backoff::default();
    // Connections lost since the last Welcome: a round is one per coordinator address.
    let mut tried = 0usize;
    let mut drained = agent.drain_done();
    loop {
        let ended = connection::serve(agent).await;
        agent.set_disconnected();
        match ended {
            Ended::Drained => return Ok(()),
            Ended::Fatal(message) => anyhow::bail!(message),
            Ended::Lost { reason, welcomed } => {
                if welcomed {
                    backoff.reset();
                    tried = 0;
                }
                // With several coordinators, the one that stopped answering may have been
                // replaced: the next try goes to the next one, at once while some of this
                // round are untried; the backoff grows once per round, not per address.
                agent.next_coordinator();
                tried += 1;
                let delay = if !tried.is_multiple_of(agent.coordinator_count()) {
                    Duration::ZERO
                } else {
                    backoff.next_delay()
                };
                tracing::warn!(%reason, ?delay, "connection to the coordinator lost; reconnecting");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = state::wait_true(&mut drained) => return Ok(()),
                }
            }
        }
    }
}
