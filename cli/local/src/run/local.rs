//! The in-process cluster of `rota run FILE` without `--coordinator`: a coordinator on an
//! embedded store plus one agent named "local", both as tasks of this process (started by
//! [`crate::cluster`]), talking over a loopback port like any other client would. The smallest
//! user needs nothing else running.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::cluster::{self, Task};

/// The in-process agent's name, shown in progress lines and `AGENT_NAME`.
pub const AGENT_NAME: &str = "local";

/// How long the agent drains before its remaining runs are cancelled; every run has finished
/// (or was cancelled by Ctrl-C) by the time we shut down, so this is a safety net.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// RUN_DIRs of `rota run` stay for the session: its data dir goes (or stays) as a whole.
const KEEP_RUN_DIRS: Duration = Duration::from_secs(24 * 3600);

/// How long shutdown waits for each task before abandoning it.
const STOP_AGENT_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_COORDINATOR_TIMEOUT: Duration = Duration::from_secs(10);

/// What the in-process cluster is built from.
#[derive(Debug)]
pub struct LocalOptions {
    /// `--data-dir`; `None` = a temporary directory removed at exit.
    pub data_dir: Option<PathBuf>,
    /// Slots of the agent.
    pub slots: u32,
    /// Every group the file's jobs name or defines: the one agent must serve them all, or
    /// those runs would wait forever.
    pub groups: Vec<String>,
}

/// A running coordinator + agent pair. Stop it with [`LocalCluster::shutdown`]: the agent
/// first (it needs the coordinator to acknowledge its last logs), then the coordinator.
#[derive(Debug)]
pub struct LocalCluster {
    url: String,
    data_dir: PathBuf,
    coordinator: Task,
    agent: Task,
    /// Kept alive until shutdown; dropping it deletes the directory.
    _tempdir: Option<tempfile::TempDir>,
}

impl LocalCluster {
    /// Binds a loopback port, starts the coordinator on it and the agent against it.
    pub async fn start(opts: LocalOptions) -> anyhow::Result<Self> {
        let (tempdir, data_dir) = match opts.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("data dir {}", dir.display()))?;
                (None, dir)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("rota-run-")
                    .tempdir()
                    .context("creating a temporary data dir")?;
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        let config = rota_coordinator::CoordinatorConfig::new(data_dir.clone());
        let (addr, coordinator) = cluster::start_coordinator(config).await?;
        let url = format!("http://{addr}");
        let mut agent_config = cluster::agent_config(
            &url,
            AGENT_NAME,
            opts.slots,
            opts.groups,
            &data_dir.join("spool"),
            &data_dir.join("work"),
        );
        agent_config.keep_run_dirs = KEEP_RUN_DIRS;
        agent_config.drain_timeout = DRAIN_TIMEOUT;
        let agent = cluster::start_agent(agent_config);
        Ok(Self {
            url,
            data_dir,
            coordinator,
            agent,
            _tempdir: tempdir,
        })
    }

    /// The loopback URL of the coordinator.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the coordinator keeps its store and the agent its spool.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Resolves only if the coordinator or the agent stops on its own (a store that cannot be
    /// opened, a refused agent): then runs would wait forever, so `rota run` must stop.
    pub async fn unexpected_exit(&mut self) -> anyhow::Error {
        tokio::select! {
            e = self.coordinator.exited() => e,
            e = self.agent.exited() => e,
        }
    }

    /// Stops the agent (it drains and flushes its logs), then the coordinator. Problems are
    /// logged, not returned: the outcome of the runs is already decided and printed.
    pub async fn shutdown(mut self) {
        self.agent.stop_within(STOP_AGENT_TIMEOUT).await;
        self.coordinator.stop_within(STOP_COORDINATOR_TIMEOUT).await;
    }
}
