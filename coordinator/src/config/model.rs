//! The validated config: what `rota apply`, `rota-coordinator --config` and `rota run` consume.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cron::Schedule;

/// The grace between SIGTERM and SIGKILL when a job sets `max_execution` but no grace: dsari's
/// fixed 60 seconds.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(60);

/// A validated config: every name, key, reference, schedule and duration in it has been checked.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// The file as given, for messages.
    pub path: String,
    /// Top-level `jobset`, or the file's stem: the jobset `rota run` creates.
    pub jobset: String,
    /// Top-level `parallel`: the jobset's limit for `rota run`; 0 = unlimited.
    pub parallel: u32,
    /// Top-level `environment`, for every run (a job's own environment wins).
    pub environment: BTreeMap<String, String>,
    /// Top-level `notify`: webhooks for every run the coordinator ends and every jobset's end.
    pub notify: Vec<crate::notify::Target>,
    /// `concurrency_groups` that the file defines, with their `max`. Groups only named by jobs
    /// are absent: an undefined group has max 1, which the coordinator applies.
    pub groups: BTreeMap<String, u32>,
    /// Top-level `retention`: for jobs that set none of a field, and for ad hoc runs.
    pub retention: crate::retention::Policy,
    /// Jobs in file order, `job_groups` expanded in place (one job per name).
    pub jobs: Vec<JobDef>,
    /// One line per accepted dsari key that has no effect in rota, naming it (shown by
    /// `rota apply`, logged by the coordinator).
    pub warnings: Vec<String>,
}

/// One job definition.
#[derive(Debug, Clone)]
pub struct JobDef {
    /// Unique in the file: `JOB_NAME`, the `after` key, and the seed of its `H` hashes.
    pub name: String,
    /// The job group this job was expanded from (or `job_group` written by hand): `JOB_GROUP`.
    pub job_group: Option<String>,
    /// argv; for shell jobs `["/bin/sh", "-c", CMD]`. Never empty.
    pub command: Vec<String>,
    /// The command was a string run by `/bin/sh -c` (already reflected in `command`).
    pub shell: bool,
    /// dsari's `command_append_run`: at run time the job name and the run id are appended as two
    /// more arguments. [`JobDef::to_run_spec`] does it with a small `sh` wrapper, since the run id
    /// is not known before the run exists.
    pub command_append_run: bool,
    /// dsari's `jenkins_environment`: the run also gets `BUILD_ID`, `BUILD_NUMBER`, `BUILD_TAG`,
    /// `BUILD_URL`, `EXECUTOR_NUMBER`, `JENKINS_URL`, `NODE_NAME` and `WORKSPACE` (see
    /// `JENKINS_SCRIPT`).
    pub jenkins_environment: bool,
    /// The job's own variables, not merged with the file's (see [`JobDef::to_run_spec`]).
    pub environment: BTreeMap<String, String>,
    /// Groups the run may count against; empty = any agent.
    pub concurrency_groups: Vec<String>,
    /// Parsed and hash-expanded for this job's name and zone.
    pub schedule: Option<Schedule>,
    /// The schedule as written, for display and round trips.
    pub schedule_text: Option<String>,
    /// IANA zone the schedule is read in; `None` = UTC.
    pub schedule_timezone: Option<String>,
    /// SIGTERM after this long (0 in the file means no limit, as in dsari).
    pub max_execution: Option<Duration>,
    /// SIGKILL this long after the SIGTERM; `None` = [`DEFAULT_KILL_GRACE`].
    pub max_execution_grace: Option<Duration>,
    /// Allow a run to start while another run of this job is still running.
    pub concurrent_runs: bool,
    /// Larger first: high = 10, normal = 0, low = -10.
    pub priority: i32,
    /// Names of jobs in the same file that must succeed first.
    pub after: Vec<String>,
    /// How often an errored run is tried again before it is errored for good.
    pub retries: u32,
    /// The jobset this job's runs go to, overriding the file's.
    pub jobset: Option<String>,
    /// Bytes each stream of a run keeps at most; None: the coordinator's `--max-log-bytes`.
    pub max_log_bytes: Option<u64>,
    /// `on_disconnect: stop`: the agent stops a run that lost contact with the coordinator, and
    /// its replacement never overlaps it. Default `keep`: the run goes on, a replacement may
    /// start elsewhere once the agent is declared lost.
    pub stop_on_disconnect: bool,
    /// `same_agent_as` (or `affinity: sticky`): the job of `after` whose agent and `RUN_DIR`
    /// this job's runs use.
    pub same_agent_as: Option<String>,
    /// Globs (relative to `RUN_DIR`) of the files kept as artifacts when a run succeeds.
    pub artifacts: Vec<String>,
    /// The job's own `notify`: webhooks for its runs, besides the top-level ones.
    pub notify: Vec<crate::notify::Target>,
    /// The job's own `retention`; unset fields come from the file's, then the coordinator's
    /// flags (see `retention::Policy::over`).
    pub retention: crate::retention::Policy,
}

/// The wrapper script for `command_append_run`: runs the argv with `$JOB_NAME` and `$RUN_ID`
/// (set by the agent) appended, replacing the shell so signals reach the command itself.
const APPEND_RUN_SCRIPT: &str = "exec \"$@\" \"$JOB_NAME\" \"$RUN_ID\"";

/// What `jenkins_environment` adds before the command, with dsari's values: the build id and
/// number are the run id, the tag `dsari-JOB-RUN`, the executor 0 on node `master`, and the
/// workspace (and the build URL) the run's working directory. A variable the run already has
/// (from `environment` or a trigger) wins, as in dsari. It runs on the agent because only there
/// the run id and working directory are known. `JENKINS_URL` is, as dsari's (`file://` of its
/// data dir, under which `runs/JOB/RUN` is each run's directory), a `file://` URL of the
/// directory the run directories are in: the agent's work dir, `RUN_DIR` without its
/// `/runs/RUN.ATTEMPT`.
const JENKINS_SCRIPT: &str = "export BUILD_ID=\"${BUILD_ID-$RUN_ID}\" \
BUILD_NUMBER=\"${BUILD_NUMBER-$RUN_ID}\" BUILD_TAG=\"${BUILD_TAG-dsari-$JOB_NAME-$RUN_ID}\" \
BUILD_URL=\"${BUILD_URL-file://$PWD/}\" EXECUTOR_NUMBER=\"${EXECUTOR_NUMBER-0}\" \
NODE_NAME=\"${NODE_NAME-master}\" WORKSPACE=\"${WORKSPACE-$PWD}\" \
JENKINS_URL=\"${JENKINS_URL-file://${RUN_DIR%/runs/*}/}\"; ";

impl JobDef {
    /// The RunSpec `rota run` submits for this job: name, command (argv, shell=false since the
    /// argv already carries /bin/sh -c), env = global + job (job wins), groups, priority, after
    /// (job names), retries, max_execution_ms, kill_grace_ms (default 60 s when max_execution set).
    ///
    /// `JOB_GROUP` is put into env (before the file's variables, so they may override it), since
    /// a RunSpec has no field for it. With `command_append_run`, argv becomes
    /// `["/bin/sh", "-c", <exec "$@" "$JOB_NAME" "$RUN_ID">, "sh", argv...]`: the run id only exists
    /// once the run does, and this needs no protocol field. A grace is sent without a limit too,
    /// because cancel uses it.
    pub fn to_run_spec(&self, global_env: &BTreeMap<String, String>) -> rota_proto::RunSpec {
        let mut env = std::collections::HashMap::new();
        if let Some(group) = &self.job_group {
            env.insert("JOB_GROUP".to_string(), group.clone());
        }
        env.extend(global_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(self.environment.iter().map(|(k, v)| (k.clone(), v.clone())));

        let command = if self.command_append_run || self.jenkins_environment {
            let script = match (self.jenkins_environment, self.command_append_run) {
                (true, true) => format!("{JENKINS_SCRIPT}{APPEND_RUN_SCRIPT}"),
                (true, false) => format!("{JENKINS_SCRIPT}exec \"$@\""),
                _ => APPEND_RUN_SCRIPT.to_string(),
            };
            let mut argv = vec!["/bin/sh".into(), "-c".into(), script, "sh".into()];
            argv.extend(self.command.iter().cloned());
            argv
        } else {
            self.command.clone()
        };
        let grace = match (self.max_execution, self.max_execution_grace) {
            (_, Some(grace)) => grace,
            (Some(_), None) => DEFAULT_KILL_GRACE,
            (None, None) => Duration::ZERO,
        };
        rota_proto::RunSpec {
            name: self.name.clone(),
            command,
            shell: false,
            env,
            groups: self.concurrency_groups.clone(),
            priority: self.priority,
            after: self.after.clone(),
            retries: self.retries,
            max_execution_ms: self.max_execution.map_or(0, millis),
            kill_grace_ms: millis(grace),
            on_disconnect: if self.stop_on_disconnect {
                rota_proto::OnDisconnect::Stop
            } else {
                rota_proto::OnDisconnect::Keep
            } as i32,
            same_agent_as: self.same_agent_as.clone().unwrap_or_default(),
            artifacts: self.artifacts.clone(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
