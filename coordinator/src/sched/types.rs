//! Plain data the scheduler core takes in and gives out. No I/O, no clocks: times are
//! milliseconds passed in by the caller.

use std::sync::Arc;

/// A run's number: global, gap-free, increasing. The core keys everything by it.
pub type RunNo = u64;

/// An agent connection (a session). A reconnect is a new id; the shell maps ids to names.
pub type AgentId = u64;

/// Milliseconds since the Unix epoch, always passed in (time is injected).
pub type Millis = u64;

/// What the core needs to know about a run to schedule it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub number: RunNo,
    pub jobset: Arc<str>,
    /// Concurrency groups the run may count against; empty = any agent.
    pub groups: Vec<Arc<str>>,
    /// Larger first.
    pub priority: i32,
    /// Runs that must succeed first.
    pub after: Vec<RunNo>,
    /// Set for runs of a defined job without `concurrent_runs`: at most one such run at a time.
    pub exclusive_job: Option<Arc<str>>,
    /// Failed attempts are retried while `attempt <= retries`.
    pub retries: u32,
    /// `on_disconnect: stop`, with the run's kill grace: its agent stops it after a lease
    /// without contact, so once the agent is lost the run keeps its place (and no replacement
    /// starts) for a further lease plus this grace. None: the default, replaced at once.
    pub stop_on_disconnect: Option<Millis>,
    /// `same_agent_as`: a run in `after` whose agent this run must start on (where that run's
    /// `RUN_DIR` is). None: any agent its groups allow.
    pub same_agent_as: Option<RunNo>,
}

/// How an attempt ended, as reported by its agent (or decided by the core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Non-zero exit, signal, spawn error, timeout: retried while retries remain.
    Failed,
    /// Ended because someone cancelled it: never retried.
    Cancelled,
}

/// A run's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Final {
    Success,
    Errored,
    Cancelled,
    Skipped,
    Retired,
}

impl Final {
    pub fn as_str(self) -> &'static str {
        match self {
            Final::Success => "success",
            Final::Errored => "errored",
            Final::Cancelled => "cancelled",
            Final::Skipped => "skipped",
            Final::Retired => "retired",
        }
    }
}

/// What the shell must do (persist, then send) as a result of events. Decisions are emitted in
/// the order they were taken; persisting them in one transaction keeps the store consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start `attempt` of `run` on `agent`, counted against `group` (None: an ungrouped run).
    Assign {
        run: RunNo,
        attempt: u32,
        agent: AgentId,
        group: Option<Arc<str>>,
    },
    /// Stop a running attempt (cancel). Its agent reports how it ended.
    Kill {
        run: RunNo,
        attempt: u32,
        agent: AgentId,
    },
    /// The current attempt failed (or its agent was lost) and retries remain: `attempt` is the
    /// next attempt, which may not start before `not_before`.
    Requeue {
        run: RunNo,
        attempt: u32,
        not_before: Millis,
        reason: String,
    },
    /// The run reached a final state. `reason` explains states no agent reported (skipped,
    /// agent lost, cancelled while pending), empty otherwise.
    Finish {
        run: RunNo,
        state: Final,
        reason: String,
    },
    /// A finished run is pending again (retry, or a skipped dependent of a retried run).
    Reopen { run: RunNo, attempt: u32 },
}

/// Why an event was refused. The shell turns these into user-facing errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    #[error("run {0} is not known to the scheduler")]
    UnknownRun(RunNo),
    #[error("report for run {run} attempt {attempt} refused: the current attempt is {current}")]
    StaleAttempt {
        run: RunNo,
        attempt: u32,
        current: u32,
    },
    #[error("run {run} is {state}; only {expected} runs can be {verb}")]
    WrongState {
        run: RunNo,
        state: &'static str,
        expected: &'static str,
        verb: &'static str,
    },
    #[error("run {0} already exists")]
    Duplicate(RunNo),
}
