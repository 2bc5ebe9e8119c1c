//! Real coordinator and agent processes: this binary re-executed in its hidden `serve-*`
//! subcommands, each with its stderr in a log file under the workload's directory, killed by
//! pid when dropped so a failed workload leaves nothing behind.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::client::{self, Control};
use crate::serve::LISTENING;

/// A child process of the bench.
pub struct Proc {
    child: Child,
    what: String,
    log: PathBuf,
    /// Kept open: the coordinator must never write into a closed pipe.
    _stdout: Option<ChildStdout>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its stderr, to explain a failure.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Fails (with its stderr) when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its stderr ends with:\n{}",
                self.what,
                self.log_tail()
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A coordinator process and where it listens.
pub struct Coordinator {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Coordinator {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A control client, once the coordinator answers (its store may still be loading).
    pub async fn control(&mut self, within: Duration) -> anyhow::Result<Control> {
        let deadline = Instant::now() + within;
        loop {
            self.proc.check_alive()?;
            match client::control(&self.url()).await {
                Ok(mut c) => match c.list_agents(rota_proto::ListAgentsRequest {}).await {
                    Ok(_) => return Ok(c),
                    Err(e) if Instant::now() > deadline => {
                        bail!("coordinator at {} does not answer: {e}", self.addr)
                    }
                    Err(_) => {}
                },
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Where the processes of one workload live: a directory and the binary to re-execute.
#[derive(Debug, Clone)]
pub struct Site {
    pub exe: PathBuf,
    pub dir: PathBuf,
}

impl Site {
    /// Starts a coordinator on `listen` (port 0: any) with its store in `data_dir`, and returns
    /// once it printed its address. `extra` are more `serve-coordinator` flags.
    pub fn coordinator(
        &self,
        data_dir: &Path,
        listen: &str,
        log_name: &str,
        extra: &[&str],
    ) -> anyhow::Result<Coordinator> {
        let log = self.dir.join(format!("{log_name}.log"));
        let mut child = Command::new(&self.exe)
            .args(["serve-coordinator", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?)
            .spawn()
            .context("cannot start the coordinator process")?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let mut proc = Proc {
            child,
            what: "the coordinator".into(),
            log: log.clone(),
            _stdout: Some(stdout.into_inner()),
        };
        let addr = read
            .ok()
            .and_then(|_| line.trim().strip_prefix(LISTENING)?.parse().ok());
        match addr {
            Some(addr) => {
                tracing::info!(pid = proc.pid(), %addr, log = %log.display(), "coordinator started");
                Ok(Coordinator { proc, addr })
            }
            None => {
                proc.kill9();
                bail!(
                    "the coordinator printed {line:?} instead of its address; stderr:\n{}",
                    log_tail(&log)
                )
            }
        }
    }

    /// Starts an agent process with `slots` slots serving `groups`.
    pub fn agent(
        &self,
        url: &str,
        name: &str,
        slots: u32,
        groups: &[&str],
    ) -> anyhow::Result<Proc> {
        let log = self.dir.join(format!("agent-{name}.log"));
        let spool = self.dir.join(format!("spool-{name}"));
        let mut command = Command::new(&self.exe);
        command
            .args(["serve-agent", "--coordinator", url, "--name", name])
            .args(["--slots", &slots.to_string(), "--spool-dir"])
            .arg(&spool);
        for g in groups {
            command.args(["--group", g]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .context("cannot start an agent process")?;
        tracing::info!(pid = child.id(), name, "agent started");
        Ok(Proc {
            child,
            what: format!("agent {name}"),
            log,
            _stdout: None,
        })
    }
}

/// Waits until `n` agents are connected (not draining, lost or gone).
pub async fn wait_agents(control: &mut Control, n: usize, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let agents = control
            .list_agents(rota_proto::ListAgentsRequest {})
            .await?
            .into_inner()
            .agents;
        let connected = agents.iter().filter(|a| a.state == "connected").count();
        if connected >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{connected} of {n} agents connected after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
