//! The engine: the one owner of the scheduler core and the store, on its own thread.
//!
//! gRPC handlers send [`Command`]s and await replies. The engine takes every command that is
//! waiting, applies them, runs one dispatch cycle, and commits all of it in ONE transaction
//! (group commit); only then are replies and agent messages sent. So a submit is answered only
//! once it is durable, an assignment is persisted before it is sent, and a burst of events
//! costs one fsync. A single owner also means the core and the store need no locks.

mod agents;
mod apply;
mod audit;
mod commands;
mod import;
mod jobs;
mod metrics;
mod notify;
mod prune;
mod records;
mod return_data;
mod status;
mod submit;
mod upload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rota_proto as pb;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{broadcast, oneshot};

use crate::artifacts::capability::UploadKey;
use crate::artifacts::ArtifactStore;
use crate::error::{Error, Result};
use crate::logs::LogHub;
use crate::metrics::{counts::RunCounts, Metrics, Snapshot};
use crate::sched::{AgentId, SchedConfig, Scheduler};
use crate::store::{RunRecord, Store, StoreLocation};

pub use agents::{AgentHello, Assigned, Assignment, HelloReply};
pub use audit::Actor;
pub use notify::NotifyStats;

/// Outbound queue of one agent stream.
pub type AgentTx =
    tokio::sync::mpsc::UnboundedSender<std::result::Result<pb::CoordinatorMessage, tonic::Status>>;

type Reply<T> = oneshot::Sender<Result<T>>;

/// Everything the engine can be asked. Each carries its reply channel.
pub enum Command {
    Submit(pb::SubmitRequest, Actor, Reply<Vec<pb::Run>>),
    CreateJobset(pb::CreateJobsetRequest, Actor, Reply<pb::Jobset>),
    SetParallel(pb::SetParallelRequest, Actor, Reply<pb::Jobset>),
    GetJobset(String, Reply<pb::Jobset>),
    ListJobsets(Reply<Vec<pb::Jobset>>),
    ListRuns(pb::ListRunsRequest, Reply<Vec<pb::Run>>),
    GetRun(String, Reply<pb::Run>),
    Cancel(String, Actor, Reply<pb::Run>),
    Retry(pb::RetryRequest, Actor, Reply<Vec<pb::Run>>),
    Retire(String, Actor, Reply<pb::Run>),
    ListAgents(Reply<Vec<pb::Agent>>),
    Drain(pb::DrainRequest, Actor, Reply<pb::Agent>),
    ListGroups(Reply<Vec<pb::Group>>),
    SetGroupMax(pb::SetGroupMaxRequest, Actor, Reply<pb::Group>),
    Apply(pb::ApplyRequest, Actor, Reply<pb::ApplyResponse>),
    ListJobs(Reply<Vec<pb::Job>>),
    Trigger(JobTrigger, Actor, Reply<pb::Run>),
    /// Finished runs of another system, their logs already stored; reply: (imported, skipped).
    ImportRuns(Vec<pb::ImportedRun>, Reply<(u32, u32)>),
    Status(Reply<pb::StatusResponse>),
    /// The state numbers of `/metrics`.
    Metrics(Reply<Snapshot>),
    ListNotifications(pb::ListNotificationsRequest, Reply<Vec<pb::Notification>>),
    ListAudit(pb::ListAuditRequest, Reply<Vec<pb::AuditEntry>>),
    /// How a webhook POST ended (from the sender task); no reply.
    NotifyOutcome(crate::notify::Outcome),
    /// `rota prune --dry-run`: what the policy would delete now (at most this many listed).
    PrunePreview(u32, Reply<pb::PruneResponse>),
    /// `rota prune`: apply the policy now.
    Prune(Reply<pb::PruneResponse>),
    /// From the prune thread: these runs' files are gone, their rows may go.
    PruneFilesGone(crate::retention::files::Removed),
    AgentHello(AgentHello, Reply<HelloReply>),
    AgentHeartbeat {
        agent: AgentId,
        draining: bool,
    },
    AgentStarted {
        agent: AgentId,
        msg: pb::RunStarted,
    },
    /// Reply: whether the result was recorded (false: refused, stale attempt).
    AgentFinished {
        agent: AgentId,
        msg: pb::RunFinished,
        reply: Reply<bool>,
    },
    AgentGone {
        agent: AgentId,
        lost: bool,
    },
    /// `rota artifact upload` from inside a run (its capability checked, its content stored
    /// whole): the file joins the run's artifacts if that attempt still runs. Reply: the
    /// run's number.
    AddArtifact {
        run: crate::logs::RunId,
        attempt: u32,
        file: crate::store::ArtifactRecord,
        reply: Reply<u64>,
    },
}

impl Command {
    /// Commands whose writes, if lost in a crash, change nothing anyone relied on: a run shown
    /// `running` comes back `assigned` and its agent's reclaim goes on as before; reads write
    /// nothing. Every other command's batch is fsynced before its replies and messages go out.
    fn needs_no_fsync(&self) -> bool {
        matches!(
            self,
            Command::AgentStarted { .. }
                | Command::AgentHeartbeat { .. }
                | Command::GetJobset(..)
                | Command::ListJobsets(..)
                | Command::ListRuns(..)
                | Command::GetRun(..)
                | Command::ListAgents(..)
                | Command::ListGroups(..)
                | Command::ListJobs(..)
                | Command::Status(..)
                | Command::Metrics(..)
                | Command::ListNotifications(..)
                | Command::ListAudit(..)
                // Lost only with the machine (a relaxed commit is in the WAL, which a kill -9
                // keeps): then the POST is sent again, which at-least-once delivery allows.
                | Command::NotifyOutcome(..)
                | Command::PrunePreview(..)
                // Lost in a crash, the rows are still queued and the next start deletes them.
                | Command::PruneFilesGone(..)
        )
    }
}

/// A request for one run of a defined job from outside its schedule: `rota trigger` or a
/// trigger file (`triggers`). The two differ only in what the run records.
#[derive(Debug, Clone)]
pub struct JobTrigger {
    pub job: String,
    /// Added over the job's and the global environment.
    pub env: std::collections::BTreeMap<String, String>,
    /// The run's trigger type (TRIGGER_TYPE): "trigger" for the RPC, "file" for a trigger file.
    pub trigger_type: &'static str,
    /// When it was meant to run (ms), recorded as the run's schedule time; `None` is "now".
    pub schedule_time: Option<u64>,
}

impl From<pb::TriggerRequest> for JobTrigger {
    fn from(req: pb::TriggerRequest) -> Self {
        JobTrigger {
            job: req.job,
            env: req.env.into_iter().collect(),
            trigger_type: "trigger",
            schedule_time: None,
        }
    }
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// The store's PostgreSQL URL; None: SQLite at `data_dir/rota.db`.
    pub postgres: Option<String>,
    /// Free bytes the data dir keeps for what was already accepted (see `datadir`).
    pub reserve_bytes: u64,
    /// Per-stream log cap of runs whose job sets none (see `logs::cap`).
    pub max_log_bytes: u64,
    pub lease: Duration,
    pub heartbeat_interval: Duration,
    pub sched: SchedConfig,
    /// Grace between SIGTERM and SIGKILL on cancel, when the run sets none.
    pub cancel_grace: Duration,
    /// Retention from the coordinator's flags, under the config file's and each job's.
    pub retention: crate::retention::Policy,
    /// Where the engine reads the time (the wall clock, or a test's adjustable one).
    pub clock: crate::time::Clock,
    /// Where clients reach this coordinator (a URL; empty when not known): kept in a
    /// PostgreSQL store's lease, so standbys can tell their callers where the active one is.
    pub address: String,
    /// What this coordinator saw of the active one while it waited as a standby.
    pub seen: crate::store::lease::Seen,
}

/// Handle to a running engine; cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    /// Outbox rows for the webhook sender, taken once by whoever starts it (`server.rs`);
    /// rows wait here until then.
    pub deliveries: Arc<Mutex<Option<UnboundedReceiver<crate::notify::Delivery>>>>,
    pub events: broadcast::Sender<pb::Run>,
    /// How many batches have changed runs, counted whether or not anyone listens to `events`:
    /// a page shows it at render time and its event stream at opening, so the page knows
    /// whether it missed a change in between (see `service::web::events`).
    pub published: Arc<AtomicU64>,
    pub logs: LogHub,
    /// Artifact bytes: written by the agent-stream tasks as log bytes are, read by the
    /// artifact streams; which run has which is the engine's (the store).
    pub artifacts: ArtifactStore,
    /// Checks the capabilities runs upload their own artifacts with (minted in `Assign`).
    pub upload_key: UploadKey,
    pub config: EngineConfig,
    /// The registry `/metrics` encodes; events update it as they happen.
    pub metrics: Arc<Metrics>,
    _link: Arc<LinkGuard>,
}

/// The engine's own threads' way to send it commands (the prune thread's reports). It must
/// not keep the engine alive: the engine stops when every handle is gone (its channel
/// disconnects), so the last handle's [`LinkGuard`] cuts it.
type EngineLink = Arc<Mutex<Option<mpsc::Sender<Command>>>>;

struct LinkGuard(EngineLink);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let Ok(mut link) = self.0.lock() {
            link.take();
        }
    }
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineHandle")
    }
}

impl EngineHandle {
    /// Sends a command built around a fresh reply channel and awaits the reply.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Sends a command that needs no reply.
    pub fn tell(&self, cmd: Command) {
        let _ = self.tx.send(cmd);
    }
}

/// Messages to agents and replies, released only after the batch committed.
type Effect = Box<dyn FnOnce() + Send>;

struct Engine {
    store: Store,
    state: State,
}

/// Everything but the store, so a batch closure can borrow both at once.
struct State {
    core: Scheduler,
    config: EngineConfig,
    /// Unfinished runs, whole records (Assign needs command and env).
    live: HashMap<u64, RunRecord>,
    /// Run id → number for unfinished runs.
    ids: HashMap<String, u64>,
    next_number: u64,
    agents: agents::Agents,
    jobs: jobs::Jobs,
    notify: notify::Notify,
    events: broadcast::Sender<pb::Run>,
    published: Arc<AtomicU64>,
    logs: LogHub,
    artifacts: ArtifactStore,
    upload_key: UploadKey,
    effects: Vec<Effect>,
    /// Runs changed in this batch, broadcast after commit.
    changed: Vec<u64>,
    /// Runs that finished in this batch (evicted from `live`), for the broadcast.
    recently_finished: HashMap<u64, RunRecord>,
    /// Replies waiting for the batch's dispatch, answered with fresh run views.
    pending_views: Vec<(Vec<u64>, commands::ViewReply)>,
    now: u64,
    /// Whether the last batch found the data dir below its reserve (logged on each change).
    space_low: bool,
    /// When this engine started (unix ms), for the uptime in `Status`.
    started_at: u64,
    metrics: Arc<Metrics>,
    /// Runs by state, kept as they change (for `/metrics`).
    counts: RunCounts,
    retention: prune::Retention,
}

/// Starts the engine thread on its store: SQLite in `config.data_dir`, or PostgreSQL.
///
/// The engine is made off the caller's async runtime too ([`crate::store::off_runtime`]):
/// opening the store, recovering runs and resuming the outbox all use the store.
pub fn start(config: EngineConfig) -> anyhow::Result<EngineHandle> {
    crate::store::off_runtime(|| start_here(config))
}

fn start_here(config: EngineConfig) -> anyhow::Result<EngineHandle> {
    std::fs::create_dir_all(&config.data_dir)?;
    // Made now so the free space of its filesystem can be asked before the first chunk.
    // Best effort: on a full disk the start must not need space.
    let _ = std::fs::create_dir_all(config.data_dir.join("logs"));
    // A coordinator is named by its machine and data dir: restarted on the same data dir
    // (whose lock proves its predecessor gone) it takes its PostgreSQL lease back at once.
    let holder = format!(
        "{}:{}",
        crate::store::host_name(),
        std::fs::canonicalize(&config.data_dir)
            .unwrap_or_else(|_| config.data_dir.clone())
            .display()
    );
    let store = Store::open_as(
        &match &config.postgres {
            Some(url) => StoreLocation::Postgres(url.clone()),
            None => StoreLocation::Sqlite(config.data_dir.join("rota.db")),
        },
        &crate::store::lease::Claim {
            holder,
            address: config.address.clone(),
            on_lost: crate::store::lease::exit_on_lost(),
            seen: config.seen.clone(),
        },
    )?;
    let (tx, rx) = mpsc::channel();
    let (events, _) = broadcast::channel(4096);
    let published = Arc::new(AtomicU64::new(0));
    let (deliveries_tx, deliveries) = tokio::sync::mpsc::unbounded_channel();
    // Logs of accepted runs may use half the reserve; the other half is for their results.
    // With PostgreSQL, finished logs and artifact contents go into the database too.
    let archive = store
        .shared()
        .map(|db| Arc::new(crate::logs::archive::Archive::new(db)));
    let logs = LogHub::new(config.data_dir.join("logs"), config.reserve_bytes / 2)
        .with_archive(archive.clone());
    // Artifacts likewise: an upload that does not fit above half the reserve is refused.
    let artifacts = ArtifactStore::new(config.data_dir.join("artifacts"), config.reserve_bytes / 2)
        .with_archive(archive);
    let upload_key = UploadKey::load_or_create(&config.data_dir);
    let metrics = Arc::new(Metrics::new(logs.stored_bytes()));
    let now = config.clock.now_millis();
    let mut engine = Engine {
        store,
        state: State {
            core: Scheduler::new(config.sched.clone()),
            config: config.clone(),
            live: HashMap::new(),
            ids: HashMap::new(),
            next_number: 1,
            agents: Default::default(),
            jobs: Default::default(),
            notify: notify::Notify::new(deliveries_tx),
            events: events.clone(),
            published: published.clone(),
            logs: logs.clone(),
            artifacts: artifacts.clone(),
            upload_key: upload_key.clone(),
            effects: Vec::new(),
            changed: Vec::new(),
            recently_finished: HashMap::new(),
            pending_views: Vec::new(),
            now,
            space_low: false,
            started_at: now,
            metrics: metrics.clone(),
            counts: RunCounts::default(),
            retention: prune::Retention::new(config.retention),
        },
    };
    engine.recover()?;
    engine.resume_outbox()?;
    let link: EngineLink = Arc::new(Mutex::new(Some(tx.clone())));
    engine
        .state
        .start_retention(engine.store.read(), link.clone())?;
    std::thread::Builder::new()
        .name("rota-engine".into())
        .spawn(move || engine.run(rx))?;
    Ok(EngineHandle {
        tx,
        deliveries: Arc::new(Mutex::new(Some(deliveries))),
        events,
        published,
        logs,
        artifacts,
        upload_key,
        config,
        metrics,
        _link: Arc::new(LinkGuard(link)),
    })
}

/// How many rows a listing (audit, notifications) reads: the request's limit, `default` for
/// 0, never more than 10,000, so no request makes the engine read a whole table.
fn listing_limit(requested: u32, default: u32) -> u32 {
    match requested {
        0 => default,
        n => n.min(10_000),
    }
}

/// At most this many commands share one transaction.
const MAX_BATCH: usize = 1024;

impl Engine {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        loop {
            // Sleep until a command arrives or the core's next deadline (back-off end, orphan
            // lease); there is no polling interval.
            let deadline = [
                self.state.core.next_deadline(),
                self.state.jobs.next_deadline(),
                self.state.retention_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let first = match deadline {
                None => match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                },
                Some(deadline) => {
                    let wait = deadline.saturating_sub(self.state.config.clock.now_millis());
                    match rx.recv_timeout(Duration::from_millis(wait)) {
                        Ok(c) => Some(c),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            let mut batch: Vec<Command> = first.into_iter().collect();
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            let state = &mut self.state;
            state.now = state.config.clock.now_millis();
            state.wait_out_stalls();
            let only_reports = batch.iter().all(Command::needs_no_fsync);
            let commands = batch.len();
            let next_number = state.next_number;
            let res: Result<()> = self.store.batch_then(only_reports, |b| {
                for cmd in batch {
                    state.handle(b, cmd)?;
                }
                state.fire_schedules(b)?;
                state.core.tick(state.now);
                // Below the reserve no new attempt starts either (its rows take space); what
                // runs goes on and is recorded. Space returning lifts it at the next batch.
                match state.check_space() {
                    Ok(()) => {
                        if std::mem::take(&mut state.space_low) {
                            tracing::warn!(
                                "free space is back above the reserve: dispatching again"
                            );
                        }
                        state.core.dispatch();
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut state.space_low, true) {
                            tracing::error!("no new runs start: {e}");
                        }
                    }
                }
                let decided = state.apply_decisions(b)?;
                state.jobsets_ended(b)?;
                state.answer_views(b)?;
                // After dispatch, so what this batch started never waits behind a prune.
                let pruning = state.prune_step(b)?;
                // A batch of "run started" reports and reads that decided nothing and created
                // no run promised nothing to anyone: it need not wait for the disk.
                // A prune step's queue must be on disk before its files are removed.
                let durable =
                    !only_reports || decided || pruning || state.next_number != next_number;
                Ok(((), durable))
            });
            if let Err(e) = res {
                // The core has moved on but the store has not: the only safe way forward is a
                // restart from the store (crash-only). Nothing committed is lost.
                tracing::error!("store write failed, stopping the coordinator: {e}");
                eprintln!("rota-coordinator: store write failed: {e}");
                crate::restart::after_store_failure(self.store.shared());
            }
            self.state
                .metrics
                .committed(self.store.last_commit(), commands);
            self.state.publish();
        }
    }
}

impl State {
    /// After commit: send replies and agent messages, broadcast changed runs.
    fn publish(&mut self) {
        for effect in self.effects.drain(..) {
            effect();
        }
        if !self.changed.is_empty() {
            // Before the events: a stream that reads the count after subscribing either
            // receives this batch's events or sees the count moved.
            self.published.fetch_add(1, Ordering::SeqCst);
        }
        if self.events.receiver_count() > 0 {
            let changed = std::mem::take(&mut self.changed);
            for number in changed {
                if let Some(run) = self.live.get(&number) {
                    let _ = self
                        .events
                        .send(records::to_proto(run, self.core.waiting_reason(number)));
                } else if let Some(run) = self.recently_finished.remove(&number) {
                    let _ = self.events.send(records::to_proto(&run, None));
                }
            }
        }
        self.changed.clear();
        self.recently_finished.clear();
    }

    fn reply<T: Send + 'static>(&mut self, reply: Reply<T>, value: Result<T>) {
        self.effects.push(Box::new(move || {
            let _ = reply.send(value);
        }));
    }
}
