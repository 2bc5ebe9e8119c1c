//! A coordinator and agents as tasks of this process, talking over a loopback port like any
//! other client would. The one place they are wired together: `rota run FILE` (through
//! [`crate::run`]'s local cluster) and the in-process tests (`rota_tests::Cluster`) both start
//! them here, so the two cannot drift apart.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A coordinator or agent running as a task, with the sender that asks it to stop (the
/// coordinator stops serving, the agent drains). Dropping it asks too.
#[derive(Debug)]
pub struct Task {
    what: &'static str,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Task {
    fn spawn<F, S>(what: &'static str, start: S) -> Task
    where
        S: FnOnce(oneshot::Receiver<()>) -> F,
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        Task {
            what,
            stop: Some(stop),
            handle: Some(tokio::spawn(start(stopped))),
        }
    }

    /// Asks it to stop and waits until it has: its own result, or why the task failed.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.stop.take();
        match self.handle.take() {
            Some(handle) => handle
                .await
                .with_context(|| format!("the in-process {} failed", self.what))?,
            None => Ok(()),
        }
    }

    /// [`Task::stop`] within `limit`, else the task is abandoned (aborted). Problems are
    /// logged, not returned: for shutdowns whose outcome is already decided.
    pub async fn stop_within(&mut self, limit: Duration) {
        self.stop.take();
        let Some(mut handle) = self.handle.take() else {
            return;
        };
        let what = self.what;
        match tokio::time::timeout(limit, &mut handle).await {
            Ok(Ok(Ok(()))) => tracing::debug!("in-process {what} stopped"),
            Ok(Ok(Err(e))) => tracing::warn!("in-process {what}: {e:#}"),
            Ok(Err(join)) => tracing::warn!("in-process {what} failed: {join}"),
            Err(_) => {
                tracing::warn!("in-process {what} did not stop within {limit:?}; abandoning it");
                handle.abort();
            }
        }
    }

    /// Resolves only when the task ends without being asked (a store that cannot be opened, a
    /// refused agent), with why; pending forever once stopped.
    pub async fn exited(&mut self) -> anyhow::Error {
        let Some(handle) = self.handle.as_mut() else {
            return std::future::pending().await;
        };
        let result = handle.await;
        self.handle = None;
        let what = self.what;
        match result {
            Ok(Ok(())) => anyhow::anyhow!("the in-process {what} stopped unexpectedly"),
            Ok(Err(e)) => e.context(format!("in-process {what}")),
            Err(join) => anyhow::anyhow!("the in-process {what} failed: {join}"),
        }
    }
}

/// Binds a loopback port (`127.0.0.1:0`) and serves `config` on it; its address and task.
pub async fn start_coordinator(
    config: rota_coordinator::CoordinatorConfig,
) -> anyhow::Result<(SocketAddr, Task)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port for the in-process coordinator")?;
    let addr = listener.local_addr()?;
    let task = Task::spawn("coordinator", move |stopped| {
        rota_coordinator::serve(config, listener, async move {
            // A dropped sender stops it too.
            let _ = stopped.await;
        })
    });
    Ok((addr, task))
}

/// Starts an agent with `config` against its coordinator.
pub fn start_agent(config: rota_agent::AgentConfig) -> Task {
    Task::spawn("agent", move |stopped| {
        rota_agent::run(config, async move {
            let _ = stopped.await;
        })
    })
}

/// An in-process agent's config: named `name`, serving `groups` with `slots`, its spool and
/// RUN_DIRs in `spool_dir` and `work_dir`, no token (the coordinator is ours), RUN_DIRs kept an
/// hour and a 30 s drain; callers change the public fields they need otherwise.
pub fn agent_config(
    url: &str,
    name: &str,
    slots: u32,
    groups: Vec<String>,
    spool_dir: &Path,
    work_dir: &Path,
) -> rota_agent::AgentConfig {
    rota_agent::AgentConfig {
        coordinator: url.to_string(),
        name: name.to_string(),
        groups,
        slots,
        labels: Default::default(),
        spool_dir: spool_dir.to_path_buf(),
        work_dir: work_dir.to_path_buf(),
        keep_run_dirs: Duration::from_secs(3600),
        drain_timeout: Duration::from_secs(30),
        access: Default::default(),
        run_as: None,
    }
}
