//! Records as the store keeps them: plain data, converted to protocol messages at the edge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The immutable part of a run: what to execute and how it is scheduled. Stored as JSON in one
/// column, since it is written once and only read whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RunSpecData {
    pub command: Vec<String>,
    pub shell: bool,
    /// Submit-time environment, already merged over global and job environment.
    pub env: BTreeMap<String, String>,
    pub groups: Vec<String>,
    pub after: Vec<u64>,
    pub retries: u32,
    pub max_execution_ms: u64,
    pub kill_grace_ms: u64,
    /// `on_disconnect: stop`: its agent stops it when it loses contact, and a replacement
    /// never overlaps it (absent in older rows: keep running, the default).
    pub stop_on_disconnect: bool,
    /// The defined job this run belongs to (config file), if any.
    pub job: Option<String>,
    pub job_group: Option<String>,
    /// A defined job without `concurrent_runs`: never two runs at once.
    pub exclusive: bool,
    /// manual | schedule | trigger | retry
    pub trigger_type: String,
    pub schedule_time: Option<u64>,
    pub previous_run_id: Option<String>,
    pub previous_exit_code: Option<i32>,
    /// The job's log cap per stream; None: the coordinator's `--max-log-bytes`.
    pub max_log_bytes: Option<u64>,
    /// `same_agent_as`: the run (one of `after`) whose agent and RUN_DIR this run uses.
    pub same_agent_as: Option<u64>,
    /// Globs of files kept as artifacts when the run succeeds.
    pub artifacts: Vec<String>,
}

/// One run: its spec and its mutable state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRecord {
    pub number: u64,
    pub id: String,
    pub name: String,
    pub jobset: String,
    pub priority: i32,
    pub spec: RunSpecData,
    /// pending | assigned | running | success | errored | cancelled | skipped | retired
    pub state: String,
    pub attempt: u32,
    pub agent: String,
    pub group: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: String,
    /// For pending runs restored after a restart: a retry back-off end.
    pub not_before: u64,
    pub submitted_at: u64,
    pub started_at: u64,
    pub finished_at: u64,
    pub stdout_len: u64,
    pub stderr_len: u64,
}

impl RunRecord {
    pub fn is_final(&self) -> bool {
        is_final_state(&self.state)
    }
}

/// Every state a run record can be in (`Run.state`), in life order.
pub const RUN_STATES: &[&str] = &[
    "pending",
    "assigned",
    "running",
    "success",
    "errored",
    "cancelled",
    "skipped",
    "retired",
];

pub fn is_final_state(state: &str) -> bool {
    matches!(
        state,
        "success" | "errored" | "cancelled" | "skipped" | "retired"
    )
}

/// One attempt of a run: where it ran and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptRecord {
    pub run: u64,
    pub attempt: u32,
    pub agent: String,
    pub group: String,
    pub state: String,
    pub started_at: u64,
    pub finished_at: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsetRecord {
    pub name: String,
    pub parallel: u32,
    pub created_at: u64,
}

/// Filter for listing runs; every field optional.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub jobset: Option<String>,
    pub state: Option<String>,
    pub after_number: u64,
    /// 0 = no limit.
    pub limit: u32,
}
