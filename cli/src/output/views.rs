//! The JSON shapes of `-o json`. These are the CLI's public, stable output: field names follow
//! the proto, maps are sorted (`BTreeMap`) so output is deterministic, every time is given as
//! unix ms and as RFC 3339, and "not yet" times are `null` rather than 0.

use std::collections::BTreeMap;

use rota_proto::{Agent, Attempt, Group, Job, Jobset, Run, StateCount, StatusResponse};
use serde::Serialize;

use super::{rfc3339, span_ms, Ids};

/// A run with every field.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub id: String,
    pub number: u64,
    pub name: String,
    pub jobset: String,
    pub command: Vec<String>,
    pub shell: bool,
    pub state: String,
    pub waiting_reason: String,
    pub priority: i32,
    pub groups: Vec<String>,
    pub concurrency_group: String,
    pub agent: String,
    pub attempt: u32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: String,
    pub submitted_at_ms: Option<u64>,
    pub submitted_at: Option<String>,
    pub started_at_ms: Option<u64>,
    pub started_at: Option<String>,
    pub finished_at_ms: Option<u64>,
    pub finished_at: Option<String>,
    /// finished - started, once both are known.
    pub duration_ms: Option<u64>,
    pub after: Vec<String>,
    pub retries: u32,
    pub attempts: Vec<AttemptView>,
    pub stdout_len: u64,
    pub stderr_len: u64,
    pub env: BTreeMap<String, String>,
    pub trigger_type: String,
    /// What the run left in `RUN_DIR/return_data.{json,yaml}`; `null` when nothing (or
    /// when `return_data_problem` says why not).
    pub return_data: Option<serde_json::Value>,
    pub return_data_problem: String,
    pub artifacts: Vec<ArtifactView>,
}

/// One artifact of a run.
#[derive(Debug, Serialize)]
pub struct ArtifactView {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl From<&rota_proto::ArtifactFile> for ArtifactView {
    fn from(a: &rota_proto::ArtifactFile) -> Self {
        Self {
            path: a.path.clone(),
            sha256: a.sha256.clone(),
            size: a.size,
        }
    }
}

/// `-o id` of artifacts: their paths, as `--get` takes them.
impl Ids for ArtifactView {
    fn ids(&self) -> Vec<String> {
        vec![self.path.clone()]
    }
}

/// One attempt of a run.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    pub attempt: u32,
    pub state: String,
    pub agent: String,
    pub concurrency_group: String,
    pub started_at_ms: Option<u64>,
    pub started_at: Option<String>,
    pub finished_at_ms: Option<u64>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: String,
}

/// A jobset and how many of its runs are in each state.
#[derive(Debug, Serialize)]
pub struct JobsetView {
    pub name: String,
    /// 0 = unlimited.
    pub parallel: u32,
    pub state: String,
    pub total: u64,
    pub counts: BTreeMap<String, u64>,
    pub created_at_ms: Option<u64>,
    pub created_at: Option<String>,
}

/// An agent as the coordinator sees it.
#[derive(Debug, Serialize)]
pub struct AgentView {
    pub name: String,
    pub state: String,
    pub groups: Vec<String>,
    pub slots: u32,
    pub running: u32,
    pub running_runs: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub connected_at_ms: Option<u64>,
    pub connected_at: Option<String>,
    pub last_seen_ms: Option<u64>,
    pub last_seen: Option<String>,
    pub session_id: String,
}

/// `rota status`: what the coordinator is and holds. Counts are maps of state → count.
#[derive(Debug, Serialize)]
pub struct StatusView {
    pub version: String,
    pub protocol_version: u32,
    pub uptime_ms: u64,
    pub store_kind: String,
    pub store_bytes: u64,
    pub data_dir_free_bytes: u64,
    pub agents: BTreeMap<String, u64>,
    pub queue_depth: u64,
    pub runs: BTreeMap<String, u64>,
    pub oldest_run_submitted_ms: Option<u64>,
    pub oldest_run_submitted: Option<String>,
    /// Webhook POSTs answered 2xx since the coordinator started.
    pub notifications_delivered: u64,
    /// Webhook POSTs that failed (each try) since the coordinator started.
    pub notifications_attempts_failed: u64,
    /// Webhooks given up on since the coordinator started.
    pub notifications_given_up: u64,
    /// Webhooks in the outbox still to deliver.
    pub notifications_pending: u64,
    pub retention: String,
    pub log_bytes: u64,
    pub pruned_runs: u64,
    pub artifact_bytes: u64,
}

/// `rota prune`: the runs deleted (or, with `--dry-run`, that would be) and the policy.
#[derive(Debug, Serialize)]
pub struct PruneView {
    pub policy: String,
    pub runs: Vec<PrunedRunView>,
    /// More than listed (dry run), or more batches follow in the background (prune).
    pub more: bool,
}

/// One pruned run.
#[derive(Debug, Serialize)]
pub struct PrunedRunView {
    pub number: u64,
    pub id: String,
    pub name: String,
    pub jobset: String,
    pub job: String,
    pub state: String,
    pub finished_at_ms: u64,
    pub finished_at: Option<String>,
}

impl From<&rota_proto::PruneResponse> for PruneView {
    fn from(r: &rota_proto::PruneResponse) -> Self {
        Self {
            policy: r.policy.clone(),
            runs: r
                .runs
                .iter()
                .map(|p| PrunedRunView {
                    number: p.number,
                    id: p.id.clone(),
                    name: p.name.clone(),
                    jobset: p.jobset.clone(),
                    job: p.job.clone(),
                    state: p.state.clone(),
                    finished_at_ms: p.finished_at_ms,
                    finished_at: rfc3339(p.finished_at_ms),
                })
                .collect(),
            more: r.more,
        }
    }
}

/// `-o id` of a prune: the numbers of the runs listed.
impl Ids for PruneView {
    fn ids(&self) -> Vec<String> {
        self.runs.iter().map(|r| r.number.to_string()).collect()
    }
}

/// A concurrency group.
#[derive(Debug, Serialize)]
pub struct GroupView {
    pub name: String,
    pub max: u32,
    /// False when the group has no explicit max (implicit max 1).
    pub defined: bool,
    pub running: u32,
    pub waiting: u32,
    pub agents: Vec<String>,
}

/// A defined job.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub name: String,
    pub command: Vec<String>,
    pub schedule: String,
    pub schedule_timezone: String,
    pub concurrency_groups: Vec<String>,
    pub next_run_at_ms: Option<u64>,
    pub next_run_at: Option<String>,
    pub job_group: String,
    pub priority: i32,
    pub retries: u32,
}

fn nonzero(ms: u64) -> Option<u64> {
    (ms != 0).then_some(ms)
}

impl From<&Run> for RunView {
    fn from(r: &Run) -> Self {
        Self {
            id: r.id.clone(),
            number: r.number,
            name: r.name.clone(),
            jobset: r.jobset.clone(),
            command: r.command.clone(),
            shell: r.shell,
            state: r.state.clone(),
            waiting_reason: r.waiting_reason.clone(),
            priority: r.priority,
            groups: r.groups.clone(),
            concurrency_group: r.concurrency_group.clone(),
            agent: r.agent.clone(),
            attempt: r.attempt,
            exit_code: r.exit_code,
            signal: r.signal,
            error: r.error.clone(),
            submitted_at_ms: nonzero(r.submitted_at_ms),
            submitted_at: rfc3339(r.submitted_at_ms),
            started_at_ms: nonzero(r.started_at_ms),
            started_at: rfc3339(r.started_at_ms),
            finished_at_ms: nonzero(r.finished_at_ms),
            finished_at: rfc3339(r.finished_at_ms),
            duration_ms: span_ms(r.started_at_ms, r.finished_at_ms),
            after: r.after.clone(),
            retries: r.retries,
            attempts: r.attempts.iter().map(AttemptView::from).collect(),
            stdout_len: r.stdout_len,
            stderr_len: r.stderr_len,
            env: r.env.clone().into_iter().collect(),
            trigger_type: r.trigger_type.clone(),
            return_data: serde_json::from_str(&r.return_data).ok(),
            return_data_problem: r.return_data_problem.clone(),
            artifacts: r.artifacts.iter().map(ArtifactView::from).collect(),
        }
    }
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            attempt: a.attempt,
            state: a.state.clone(),
            agent: a.agent.clone(),
            concurrency_group: a.concurrency_group.clone(),
            started_at_ms: nonzero(a.started_at_ms),
            started_at: rfc3339(a.started_at_ms),
            finished_at_ms: nonzero(a.finished_at_ms),
            finished_at: rfc3339(a.finished_at_ms),
            duration_ms: span_ms(a.started_at_ms, a.finished_at_ms),
            exit_code: a.exit_code,
            signal: a.signal,
            error: a.error.clone(),
        }
    }
}

impl From<&Jobset> for JobsetView {
    fn from(j: &Jobset) -> Self {
        Self {
            name: j.name.clone(),
            parallel: j.parallel,
            state: j.state.clone(),
            total: j.counts.values().sum(),
            counts: j.counts.clone().into_iter().collect(),
            created_at_ms: nonzero(j.created_at_ms),
            created_at: rfc3339(j.created_at_ms),
        }
    }
}

impl From<&Agent> for AgentView {
    fn from(a: &Agent) -> Self {
        Self {
            name: a.name.clone(),
            state: a.state.clone(),
            groups: a.groups.clone(),
            slots: a.slots,
            running: a.running,
            running_runs: a.running_runs.clone(),
            labels: a.labels.clone().into_iter().collect(),
            connected_at_ms: nonzero(a.connected_at_ms),
            connected_at: rfc3339(a.connected_at_ms),
            last_seen_ms: nonzero(a.last_seen_ms),
            last_seen: rfc3339(a.last_seen_ms),
            session_id: a.session_id.clone(),
        }
    }
}

fn count_map(counts: &[StateCount]) -> BTreeMap<String, u64> {
    counts.iter().map(|c| (c.state.clone(), c.count)).collect()
}

impl From<&StatusResponse> for StatusView {
    fn from(s: &StatusResponse) -> Self {
        Self {
            version: s.version.clone(),
            protocol_version: s.protocol_version,
            uptime_ms: s.uptime_ms,
            store_kind: s.store_kind.clone(),
            store_bytes: s.store_bytes,
            data_dir_free_bytes: s.data_dir_free_bytes,
            agents: count_map(&s.agents),
            queue_depth: s.queue_depth,
            runs: count_map(&s.runs),
            oldest_run_submitted_ms: nonzero(s.oldest_run_submitted_ms),
            notifications_delivered: s.notifications_delivered,
            notifications_attempts_failed: s.notifications_attempts_failed,
            notifications_given_up: s.notifications_given_up,
            notifications_pending: s.notifications_pending,
            oldest_run_submitted: rfc3339(s.oldest_run_submitted_ms),
            retention: s.retention.clone(),
            log_bytes: s.log_bytes,
            pruned_runs: s.pruned_runs,
            artifact_bytes: s.artifact_bytes,
        }
    }
}

impl From<&Group> for GroupView {
    fn from(g: &Group) -> Self {
        Self {
            name: g.name.clone(),
            max: g.max,
            defined: g.defined,
            running: g.running,
            waiting: g.waiting,
            agents: g.agents.clone(),
        }
    }
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        Self {
            name: j.name.clone(),
            command: j.command.clone(),
            schedule: j.schedule.clone(),
            schedule_timezone: j.schedule_timezone.clone(),
            concurrency_groups: j.concurrency_groups.clone(),
            next_run_at_ms: nonzero(j.next_run_at_ms),
            next_run_at: rfc3339(j.next_run_at_ms),
            job_group: j.job_group.clone(),
            priority: j.priority,
            retries: j.retries,
        }
    }
}

/// `-o id` of a status: the coordinator's version, the one key a script compares
/// (`[ "$(rota -o id status)" = 0.1.0 ]`).
impl Ids for StatusView {
    fn ids(&self) -> Vec<String> {
        vec![self.version.clone()]
    }
}

impl Ids for RunView {
    fn ids(&self) -> Vec<String> {
        vec![self.number.to_string()]
    }
}

/// `-o id` of objects known by name.
macro_rules! ids_by_name {
    ($($view:ty),*) => {$(
        impl Ids for $view {
            fn ids(&self) -> Vec<String> {
                vec![self.name.clone()]
            }
        }
    )*};
}
ids_by_name!(JobsetView, AgentView, GroupView, JobView);

/// Views of a slice, for list outputs.
pub fn all<'a, M: 'a, V: From<&'a M>>(items: &'a [M]) -> Vec<V> {
    items.iter().map(V::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::render::tests::{sample_agent, sample_run};
    use crate::output::to_json;

    #[test]
    fn run_json_has_stable_names_rfc3339_times_and_sorted_env() {
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&RunView::from(&sample_run()))).unwrap();
        assert_eq!(json["id"], "3f2a9c1e-0000-4000-8000-000000000001");
        assert_eq!(json["number"], 12);
        assert_eq!(json["state"], "errored");
        assert_eq!(json["exit_code"], 3);
        assert_eq!(json["signal"], serde_json::Value::Null);
        assert_eq!(json["started_at_ms"], 1_700_000_000_000u64);
        assert_eq!(json["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["duration_ms"], 2_500);
        assert_eq!(json["submitted_at_ms"], serde_json::Value::Null);
        assert_eq!(json["attempts"][0]["exit_code"], 3);
        assert_eq!(json["attempts"][0]["duration_ms"], 2_500);
        let env: Vec<&String> = json["env"].as_object().unwrap().keys().collect();
        assert_eq!(env, ["A", "B"]);
    }

    #[test]
    fn json_output_is_pretty() {
        let text = to_json(&all::<_, AgentView>(&[sample_agent()]));
        assert!(text.starts_with("[\n  {\n"), "{text}");
        assert!(text.contains("\"running_runs\": ["), "{text}");
    }

    #[test]
    fn jobset_json_totals_its_counts() {
        let js = Jobset {
            name: "pipeline".into(),
            parallel: 4,
            state: "running".into(),
            counts: [("success".to_string(), 3), ("running".to_string(), 2)]
                .into_iter()
                .collect(),
            created_at_ms: 0,
        };
        let v = JobsetView::from(&js);
        assert_eq!(v.total, 5);
        assert_eq!(v.created_at, None);
    }
}
