//! The runs this agent process holds, and the agent-wide signals (drain requested, drain done,
//! link up or down).
//!
//! The table is shared by the connection (assign, cancel, ack, resume) and the drain, which
//! run as separate tasks; it sits behind a `std::sync::Mutex` that is never held across an
//! `.await` (every method here is synchronous), which is simpler than an owner task for a
//! table this small. A run stays held from its `Assign` until the coordinator acknowledges its
//! `RunFinished` (`LogAck.finished`), across any number of reconnects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rota_proto as pb;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::runner::{Run, RunSpec};
use crate::spool::{Spool, SpoolError};
use crate::workdir::{WorkDir, WorkDirError};
use crate::{AgentConfig, RunKey};

/// Whether the agent currently has a welcomed connection; while down, since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Up,
    Down(Instant),
}

/// A held run and what the coordinator knows of it.
#[derive(Debug)]
struct Held {
    run: Run,
    /// Offsets the coordinator last confirmed it has stored. Resume offsets come from the
    /// `Welcome` (the coordinator may have lost what it acked); this is for the logs.
    acked: [u64; 2],
    /// `on_disconnect: stop`: stopped when the coordinator is out of contact for the lease.
    stop_on_disconnect: bool,
}

/// The latest proof that the coordinator heard this agent: it answered a message sent at
/// `at` (a Hello with its Welcome, a heartbeat with its ack), so it cannot have judged the agent
/// silent before `at + lease`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Contact {
    pub at: Instant,
    pub lease: Duration,
}

#[derive(Debug, Default)]
struct Table {
    runs: HashMap<RunKey, Held>,
    draining: bool,
}

/// A run whose log a connection must send, and from where.
#[derive(Debug)]
pub(crate) struct SendJob {
    pub run: Run,
    /// Offsets to start at, stdout then stderr.
    pub from: [u64; 2],
    /// Send `RunStarted` first: only on the connection that delivered the `Assign`; later
    /// connections report the run in `Hello.held` instead.
    pub announce: bool,
}

/// The agent process: its configuration, identity, spool and held runs.
#[derive(Debug)]
pub(crate) struct Agent {
    pub config: AgentConfig,
    /// `config.coordinator` split: the coordinators this agent tries in turn.
    coordinators: Vec<String>,
    /// Which of them the next connection tries first: the one that last answered, or the
    /// next after one that did not.
    current: std::sync::atomic::AtomicUsize,
    /// Made once per process: a restarted agent with the same name is a new session.
    pub session_id: String,
    spool: Arc<Spool>,
    work: Arc<WorkDir>,
    /// The CA the agent trusts the coordinator with, as a file a run's `rota artifact upload`
    /// can read (`ROTA_ARTIFACT_CA`); a certificate, nothing secret.
    upload_ca: Option<std::path::PathBuf>,
    table: Mutex<Table>,
    held_count: watch::Sender<usize>,
    drain_request: watch::Sender<Option<Duration>>,
    draining: watch::Sender<bool>,
    drain_done: watch::Sender<bool>,
    link: watch::Sender<Link>,
    contact: watch::Sender<Option<Contact>>,
}

impl Agent {
    /// Opens (and cleans) the spool and the work directory; fails when another agent process
    /// holds the spool.
    pub fn new(config: AgentConfig) -> Result<Agent, StartError> {
        let spool = Arc::new(Spool::open(&config.spool_dir)?);
        let work = WorkDir::open(
            &config.work_dir,
            config.keep_run_dirs,
            config.run_as.clone(),
        )?;
        let upload_ca = config.access.ca_pem.as_ref().and_then(|pem| {
            let path = work.root().join("coordinator-ca.pem");
            match std::fs::write(&path, pem) {
                Ok(()) => Some(path),
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "cannot write the CA for runs' artifact uploads");
                    None
                }
            }
        });
        let coordinators = rota_proto::access::coordinator_urls(&config.coordinator)
            .map_err(StartError::Coordinator)?;
        Ok(Agent {
            config,
            coordinators,
            current: Default::default(),
            session_id: uuid::Uuid::new_v4().to_string(),
            spool,
            work,
            upload_ca,
            table: Mutex::default(),
            held_count: watch::Sender::new(0),
            drain_request: watch::Sender::new(None),
            draining: watch::Sender::new(false),
            drain_done: watch::Sender::new(false),
            link: watch::Sender::new(Link::Down(Instant::now())),
            contact: watch::Sender::new(None),
        })
    }

    /// The coordinator the next connection tries.
    pub fn coordinator(&self) -> &str {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed);
        &self.coordinators[i % self.coordinators.len()]
    }

    /// How many coordinator addresses this agent was given.
    pub fn coordinator_count(&self) -> usize {
        self.coordinators.len()
    }

    /// The coordinator tried did not answer: the next connection tries the next one (with a
    /// single coordinator, the same one again).
    pub fn next_coordinator(&self) {
        self.current
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The spool directory, for the log senders.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every method mutates it
        // in one step), so a poisoned lock is still usable.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The `Hello` of a new connection, listing every held run with its spooled lengths.
    pub fn hello(&self) -> pb::Hello {
        let table = self.table();
        let mut held: Vec<pb::HeldRun> = table
            .runs
            .iter()
            .map(|(key, held)| {
                let progress = held.run.progress().borrow().clone();
                pb::HeldRun {
                    run_id: key.run_id.clone(),
                    attempt: key.attempt,
                    stdout_len: progress.stdout_len,
                    stderr_len: progress.stderr_len,
                    exited: progress.outcome.is_some(),
                }
            })
            .collect();
        held.sort_by(|a, b| (&a.run_id, a.attempt).cmp(&(&b.run_id, b.attempt)));
        pb::Hello {
            name: self.config.name.clone(),
            groups: self.config.groups.clone(),
            slots: self.config.slots,
            labels: self.config.labels.clone().into_iter().collect(),
            protocol_version: pb::PROTOCOL_VERSION,
            held,
            session_id: self.session_id.clone(),
        }
    }

    /// Applies a `Welcome`: runs it says to drop are killed and forgotten, the others are
    /// resent from the acknowledged offsets (from 0 when it does not mention them).
    pub fn resume(&self, welcome: &pb::Welcome) -> Vec<SendJob> {
        let resume: HashMap<RunKey, &pb::ResumeRun> = welcome
            .resume
            .iter()
            .map(|resume| (RunKey::new(resume.run_id.clone(), resume.attempt), resume))
            .collect();
        let mut dropped = Vec::new();
        let mut jobs = Vec::new();
        {
            let mut table = self.table();
            let keys: Vec<RunKey> = table.runs.keys().cloned().collect();
            for key in keys {
                match resume.get(&key) {
                    Some(resume) if !resume.keep => {
                        if let Some(held) = table.runs.remove(&key) {
                            dropped.push(held.run);
                        }
                    }
                    found => {
                        let from = found
                            .map_or([0, 0], |resume| [resume.stdout_acked, resume.stderr_acked]);
                        if let Some(held) = table.runs.get(&key) {
                            if found.is_none() {
                                tracing::debug!(run = %key, acked = ?held.acked, "held run not in Welcome: resending from 0");
                            }
                            jobs.push(SendJob {
                                run: held.run.clone(),
                                from,
                                announce: false,
                            });
                        }
                    }
                }
            }
            self.held_count.send_replace(table.runs.len());
        }
        for run in dropped {
            tracing::warn!(run = %run.key(), "coordinator no longer wants this run: killing it");
            self.discard(run);
        }
        jobs
    }

    /// Where a run's inputs are fetched to before it starts.
    pub fn staging(&self, assign: &pb::Assign) -> std::path::PathBuf {
        self.work
            .staging(&RunKey::new(assign.run_id.clone(), assign.attempt))
    }

    /// Starts an assigned run (or, while draining, reports it refused) and returns its send
    /// job; `None` for a duplicate `Assign` of a run already held. `inputs`: where its
    /// dependencies' artifacts were fetched to (moved into its RUN_DIR), or why they could not
    /// be (the run fails with that reason).
    pub fn assign(
        &self,
        assign: pb::Assign,
        inputs: Result<Option<std::path::PathBuf>, String>,
    ) -> Option<SendJob> {
        let key = RunKey::new(assign.run_id, assign.attempt);
        let mut table = self.table();
        if table.runs.contains_key(&key) {
            tracing::warn!(run = %key, "duplicate assign ignored");
            return None;
        }
        let run = if table.draining {
            tracing::info!(run = %key, "refusing an assign: agent draining");
            Run::refused(key.clone(), "agent draining")
        } else {
            let running = table
                .runs
                .values()
                .filter(|held| !held.run.has_ended())
                .count();
            if running >= usize::try_from(self.config.slots).unwrap_or(usize::MAX) {
                tracing::warn!(run = %key, running, slots = self.config.slots, "assigned more runs than slots");
            }
            let dirs = if assign.run_dir_run_id.is_empty() {
                self.work.prepare(&key, &assign.job_name)
            } else {
                let pinned = RunKey::new(assign.run_dir_run_id.clone(), assign.run_dir_attempt);
                self.work.reuse(&pinned, &assign.job_name)
            };
            let dirs = match (dirs, inputs) {
                (Ok(dirs), Ok(Some(staged))) => self
                    .work
                    .place(&staged, &dirs)
                    .map(|()| dirs)
                    .map_err(|e| e.to_string()),
                (Ok(dirs), Ok(None)) => Ok(dirs),
                (Ok(dirs), Err(reason)) => {
                    dirs.finish();
                    Err(reason)
                }
                (Err(e), _) => Err(e.to_string()),
            };
            let spec = RunSpec {
                key: key.clone(),
                argv: assign.argv,
                env: self.upload_env(assign.env, assign.artifact_token),
                agent_name: self.config.name.clone(),
                max_execution: (assign.max_execution_ms > 0)
                    .then(|| Duration::from_millis(assign.max_execution_ms)),
                kill_grace: Duration::from_millis(assign.kill_grace_ms),
                run_as: self.config.run_as.clone(),
                dirs: dirs.as_ref().ok().cloned(),
                artifacts: assign.artifacts,
            };
            let run = match dirs {
                Ok(_) => Run::start(spec, &self.spool),
                Err(err) => Run::failed(key.clone(), err),
            };
            tracing::info!(run = %key, pid = run.pid(), job = %assign.job_name, "run started");
            run
        };
        let stop_on_disconnect = assign.on_disconnect == pb::OnDisconnect::Stop as i32;
        Some(self.hold(&mut table, run, stop_on_disconnect))
    }

    /// A run cancelled while its inputs were being fetched: held (so its result is resent
    /// until acknowledged) as cancelled, its command never started. `None` for a run already
    /// held.
    pub fn cancelled_before_start(&self, key: RunKey) -> Option<SendJob> {
        let mut table = self.table();
        if table.runs.contains_key(&key) {
            return None;
        }
        tracing::info!(run = %key, "run cancelled while fetching its inputs: not started");
        Some(self.hold(&mut table, Run::cancelled_before_start(key), false))
    }

    fn hold(&self, table: &mut Table, run: Run, stop_on_disconnect: bool) -> SendJob {
        table.runs.insert(
            run.key().clone(),
            Held {
                run: run.clone(),
                acked: [0, 0],
                stop_on_disconnect,
            },
        );
        self.held_count.send_replace(table.runs.len());
        SendJob {
            run,
            from: [0, 0],
            announce: true,
        }
    }

    /// A run's environment with what `rota artifact upload` needs: the coordinator's URL and
    /// the attempt's own capability (never the agent's token, which no run sees), and the CA
    /// when the agent has one. Set after the job's environment, as `RUN_DIR` is.
    fn upload_env(
        &self,
        mut env: std::collections::HashMap<String, String>,
        token: String,
    ) -> std::collections::HashMap<String, String> {
        if token.is_empty() {
            return env;
        }
        env.insert("ROTA_ARTIFACT_URL".into(), self.config.coordinator.clone());
        env.insert("ROTA_ARTIFACT_TOKEN".into(), token);
        if let Some(ca) = &self.upload_ca {
            env.insert("ROTA_ARTIFACT_CA".into(), ca.display().to_string());
        }
        env
    }

    /// Cancels a held run; a cancel for a run or attempt not held is ignored.
    pub fn cancel(&self, key: &RunKey, grace: Duration) {
        match self.table().runs.get(key) {
            Some(held) => {
                tracing::info!(run = %key, ?grace, "cancelling run");
                held.run.cancel(grace);
            }
            None => tracing::debug!(run = %key, "cancel for a run not held: ignored"),
        }
    }

    /// Records a `LogAck`; when it says finished, forgets the run and deletes its spool files.
    /// Returns whether the run was forgotten.
    pub fn ack(&self, ack: &pb::LogAck) -> bool {
        let key = RunKey::new(ack.run_id.clone(), ack.attempt);
        let forgotten = {
            let mut table = self.table();
            if !ack.finished {
                if let Some(held) = table.runs.get_mut(&key) {
                    held.acked = [ack.stdout_offset, ack.stderr_offset];
                }
                return false;
            }
            let forgotten = table.runs.remove(&key);
            self.held_count.send_replace(table.runs.len());
            forgotten
        };
        match forgotten {
            Some(held) => {
                tracing::debug!(run = %key, "run acknowledged finished: forgotten");
                self.discard(held.run);
                true
            }
            None => false,
        }
    }

    /// Kills a run that is no longer held (if it still runs) and deletes its files once its
    /// process and pipes are gone.
    fn discard(&self, run: Run) {
        if run.has_ended() {
            self.spool.remove_run(run.key());
            return;
        }
        run.kill();
        let spool = self.spool.clone();
        tokio::spawn(async move {
            run.ended().await;
            spool.remove_run(run.key());
        });
    }

    /// Every held run whose process has not ended yet.
    pub fn running(&self) -> Vec<Run> {
        self.table()
            .runs
            .values()
            .filter(|held| !held.run.has_ended())
            .map(|held| held.run.clone())
            .collect()
    }

    /// Records a proof of contact (see [`Contact`]); a later one replaces an earlier one.
    pub fn contact(&self, at: Instant, lease: Duration) {
        self.contact.send_if_modified(|contact| {
            if contact.is_some_and(|c| c.at >= at && c.lease == lease) {
                return false;
            }
            *contact = Some(Contact { at, lease });
            true
        });
    }

    /// Receives each new proof of contact.
    pub fn contacts(&self) -> watch::Receiver<Option<Contact>> {
        self.contact.subscribe()
    }

    /// Stops (SIGTERM, kill grace, SIGKILL) every running `on_disconnect: stop` run: the
    /// coordinator has not heard from this agent for a lease and may start them elsewhere.
    pub fn stop_disconnected_runs(&self) {
        let table = self.table();
        for held in table.runs.values() {
            if held.stop_on_disconnect && !held.run.has_ended() {
                held.run.stop_disconnected(held.run.kill_grace());
            }
        }
    }

    /// Kills every running run: the agent is giving up (fatal error).
    pub fn kill_all(&self) {
        for run in self.running() {
            run.kill();
        }
    }

    /// Asks for a drain with the given deadline for running runs (`None`: the configured
    /// `drain_timeout`). Only the first request counts.
    pub fn request_drain(&self, timeout: Option<Duration>) {
        let timeout = timeout.unwrap_or(self.config.drain_timeout);
        self.drain_request.send_if_modified(|request| {
            if request.is_some() {
                return false;
            }
            *request = Some(timeout);
            true
        });
    }

    /// Receives drain requests.
    pub fn drain_requests(&self) -> watch::Receiver<Option<Duration>> {
        self.drain_request.subscribe()
    }

    /// From now on an `Assign` is answered with a refusal instead of a process.
    pub fn stop_accepting(&self) {
        self.table().draining = true;
        self.draining.send_replace(true);
    }

    /// Becomes true when the agent stops accepting runs, so the connection can tell the
    /// coordinator at once (`Heartbeat.draining`) instead of having assigns refused.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Becomes true when the drain is complete: the connection says goodbye and `run` returns.
    pub fn drain_done(&self) -> watch::Receiver<bool> {
        self.drain_done.subscribe()
    }

    /// Marks the drain complete.
    pub fn finish_drain(&self) {
        self.drain_done.send_replace(true);
    }

    /// Receives the number of held runs whenever it changes.
    pub fn held_count(&self) -> watch::Receiver<usize> {
        self.held_count.subscribe()
    }

    /// Receives the link state whenever it changes.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.link.subscribe()
    }

    /// A connection was welcomed.
    pub fn set_connected(&self) {
        self.link.send_replace(Link::Up);
    }

    /// The connection ended (or never came up); keeps the earliest time it went down.
    pub fn set_disconnected(&self) {
        self.link.send_if_modified(|link| match link {
            Link::Up => {
                *link = Link::Down(Instant::now());
                true
            }
            Link::Down(_) => false,
        });
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("{0}")]
    Coordinator(String),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    WorkDir(#[from] WorkDirError),
}

/// Waits until the flag is true (or its sender is gone, which means it never will be; then
/// waits forever, as the caller has other ways to stop).
pub(crate) async fn wait_true(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|&done| done).await.is_err() {
        std::future::pending::<()>().await;
    }
}
