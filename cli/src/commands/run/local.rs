//! The in-process cluster of `rota run FILE` without `--coordinator`: a coordinator on an
//! embedded store plus one agent named "local", both as tasks of this process, talking over
//! a loopback port like any other client would. The smallest user needs nothing else running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
    coordinator: Option<JoinHandle<anyhow::Result<()>>>,
    agent: Option<JoinHandle<anyhow::Result<()>>>,
    stop_coordinator: Option<oneshot::Sender<()>>,
    stop_agent: Option<oneshot::Sender<()>>,
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
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port for the in-process coordinator")?;
        let url = format!("http://{}", listener.local_addr()?);

        let (stop_coordinator, coordinator_stopped) = oneshot::channel::<()>();
        let coordinator = tokio::spawn(rota_coordinator::serve(
            rota_coordinator::CoordinatorConfig::new(data_dir.clone()),
            listener,
            async move {
                // A dropped sender stops it too.
                let _ = coordinator_stopped.await;
            },
        ));

        let (stop_agent, agent_stopped) = oneshot::channel::<()>();
        let agent_config = rota_agent::AgentConfig {
            coordinator: url.clone(),
            name: AGENT_NAME.to_string(),
            groups: opts.groups,
            slots: opts.slots,
            labels: BTreeMap::new(),
            spool_dir: data_dir.join("spool"),
            work_dir: data_dir.join("work"),
            keep_run_dirs: KEEP_RUN_DIRS,
            drain_timeout: DRAIN_TIMEOUT,
            access: Default::default(),
            run_as: None,
        };
        let agent = tokio::spawn(rota_agent::run(agent_config, async move {
            let _ = agent_stopped.await;
        }));

        Ok(Self {
            url,
            data_dir,
            coordinator: Some(coordinator),
            agent: Some(agent),
            stop_coordinator: Some(stop_coordinator),
            stop_agent: Some(stop_agent),
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
        let (Some(coordinator), Some(agent)) = (self.coordinator.as_mut(), self.agent.as_mut())
        else {
            return std::future::pending().await;
        };
        let (which, result) = tokio::select! {
            r = coordinator => ("coordinator", r),
            r = agent => ("agent", r),
        };
        if which == "coordinator" {
            self.coordinator = None;
        } else {
            self.agent = None;
        }
        match result {
            Ok(Ok(())) => anyhow::anyhow!("the in-process {which} stopped unexpectedly"),
            Ok(Err(e)) => e.context(format!("in-process {which}")),
            Err(join) => anyhow::anyhow!("the in-process {which} failed: {join}"),
        }
    }

    /// Stops the agent (it drains and flushes its logs), then the coordinator. Problems are
    /// logged, not returned: the outcome of the runs is already decided and printed.
    pub async fn shutdown(mut self) {
        self.stop_agent.take();
        if let Some(agent) = self.agent.take() {
            stop("agent", agent, STOP_AGENT_TIMEOUT).await;
        }
        self.stop_coordinator.take();
        if let Some(coordinator) = self.coordinator.take() {
            stop("coordinator", coordinator, STOP_COORDINATOR_TIMEOUT).await;
        }
    }
}

async fn stop(which: &str, mut task: JoinHandle<anyhow::Result<()>>, limit: Duration) {
    match tokio::time::timeout(limit, &mut task).await {
        Ok(Ok(Ok(()))) => tracing::debug!("in-process {which} stopped"),
        Ok(Ok(Err(e))) => tracing::warn!("in-process {which}: {e:#}"),
        Ok(Err(join)) => tracing::warn!("in-process {which} failed: {join}"),
        Err(_) => {
            tracing::warn!("in-process {which} did not stop within {limit:?}; abandoning it");
            task.abort();
        }
    }
}
