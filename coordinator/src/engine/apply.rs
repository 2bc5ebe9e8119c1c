//! Turning the core's decisions into store writes and (after commit) agent messages.

use std::collections::HashMap;

use rota_proto as pb;

use super::State;
use crate::error::Result;
use crate::sched::Decision;
use crate::store::{Batch, RunRecord};

impl State {
    /// Applies the core's decisions to the store and queues their messages; returns whether
    /// there were any.
    pub(super) fn apply_decisions(&mut self, b: &Batch<'_>) -> Result<bool> {
        let mut finished = Vec::new();
        let decisions = self.core.take_decisions();
        let decided = !decisions.is_empty();
        for d in decisions {
            match d {
                Decision::Assign {
                    run,
                    attempt,
                    agent,
                    group,
                } => {
                    let now = self.now;
                    let agent_name = self.agents.name(agent).unwrap_or_default();
                    let group = group.map(|g| g.to_string()).unwrap_or_default();
                    let rec = self.update(b, run, |r| {
                        r.state = "assigned".into();
                        r.attempt = attempt;
                        r.agent = agent_name.clone();
                        r.group = group.clone();
                        r.started_at = now;
                        r.not_before = 0;
                    })?;
                    self.update_attempt(b, &rec, attempt, |a| {
                        a.agent = agent_name;
                        a.group = group;
                        a.state = "assigned".into();
                        a.started_at = now;
                    })?;
                    if attempt == 1 {
                        self.metrics
                            .dispatched(millis(now.saturating_sub(rec.submitted_at)));
                    }
                    if attempt > 1 {
                        let old: Vec<String> = b
                            .read()
                            .artifacts(run)?
                            .into_iter()
                            .map(|a| a.sha256)
                            .collect();
                        if !old.is_empty() {
                            b.clear_artifacts(run)?;
                            self.remove_artifact_contents(b, &old);
                        }
                    }
                    let mut msg = assign_message(&rec, &self.previous(b, &rec)?);
                    msg.artifacts = rec.spec.artifacts.clone();
                    msg.artifact_token = self.upload_key.mint(&rec.id, attempt);
                    // The pinned run's files are in the RUN_DIR this run starts in: no copy.
                    let inputs_of = rec
                        .spec
                        .after
                        .iter()
                        .filter(|dep| Some(**dep) != rec.spec.same_agent_as);
                    for &dep in inputs_of {
                        for a in b.read().artifacts(dep)? {
                            msg.inputs.push(pb::InputArtifact {
                                file: Some(super::records::artifact_to_proto(a)),
                                from_run: dep,
                            });
                        }
                    }
                    if let Some(pin) = rec.spec.same_agent_as {
                        // The agent starts this run in the pinned run's RUN_DIR.
                        let target = self.record(b, pin)?;
                        msg.run_dir_run_id = target.id;
                        msg.run_dir_attempt = target.attempt;
                    }
                    self.agents.send_later(
                        &mut self.effects,
                        agent,
                        pb::coordinator_message::Msg::Assign(msg),
                    );
                }
                Decision::Kill {
                    run,
                    attempt,
                    agent,
                } => {
                    let grace = self
                        .live
                        .get(&run)
                        .map(|r| r.spec.kill_grace_ms)
                        .filter(|g| *g > 0)
                        .unwrap_or(self.config.cancel_grace.as_millis() as u64);
                    let msg = pb::Cancel {
                        run_id: self
                            .live
                            .get(&run)
                            .map(|r| r.id.clone())
                            .unwrap_or_default(),
                        attempt,
                        grace_ms: grace,
                        reason: "cancelled".into(),
                    };
                    self.agents.send_later(
                        &mut self.effects,
                        agent,
                        pb::coordinator_message::Msg::Cancel(msg),
                    );
                }
                Decision::Requeue {
                    run,
                    attempt,
                    not_before,
                    reason,
                } => {
                    let now = self.now;
                    let rec = self.record(b, run)?;
                    self.metrics.retried();
                    if !reason.is_empty() {
                        // The agent never reported: record why the attempt ended.
                        self.update_attempt(b, &rec, attempt - 1, |a| {
                            a.state = "errored".into();
                            a.finished_at = now;
                            a.error = reason.clone();
                        })?;
                    }
                    self.update(b, run, |r| {
                        r.state = "pending".into();
                        r.attempt = attempt;
                        r.not_before = not_before;
                        if !reason.is_empty() {
                            r.error = reason;
                        }
                    })?;
                }
                Decision::Finish { run, state, reason } => {
                    let now = self.now;
                    let rec = self.record(b, run)?;
                    finished.push((run, rec.spec.after.clone()));
                    let was_active = matches!(rec.state.as_str(), "assigned" | "running");
                    let ran = was_active.then(|| millis(now.saturating_sub(rec.started_at)));
                    self.metrics.finished(state.as_str(), ran);
                    if was_active && !reason.is_empty() {
                        self.update_attempt(b, &rec, rec.attempt, |a| {
                            a.state = state.as_str().into();
                            a.finished_at = now;
                            a.error = reason.clone();
                        })?;
                    }
                    self.update(b, run, |r| {
                        r.state = state.as_str().into();
                        r.finished_at = now;
                        if !reason.is_empty() && r.error.is_empty() {
                            r.error = reason;
                        }
                    })?;
                }
                Decision::Reopen { run, attempt } => {
                    self.update(b, run, |r| {
                        r.state = "pending".into();
                        r.attempt = attempt;
                        r.exit_code = None;
                        r.signal = None;
                        r.error.clear();
                        r.finished_at = 0;
                        r.not_before = 0;
                    })?;
                }
            }
        }
        self.forget_finished(finished);
        Ok(decided)
    }

    /// A coordinator runs for months: finished runs leave the core once nothing unfinished
    /// depends on them, so its memory holds the queue, not the history. A run is also retried
    /// for a dependency that was the last to hold it. Everything forgotten is still in the store
    /// and is loaded again when a retry, cancel, retire or new `after` names it.
    fn forget_finished(&mut self, finished: Vec<(u64, Vec<u64>)>) {
        for (run, after) in finished {
            self.core.forget(run);
            for dep in after {
                self.core.forget(dep);
            }
        }
    }

    /// PREVIOUS_RUN_ID / PREVIOUS_EXIT_CODE: the last finished run of the same job (when this
    /// run was started); PREVIOUS_GOOD_* / PREVIOUS_BAD_* (`_RUN_ID`, `_RUN_NUMBER`,
    /// `_EXIT_CODE`, as dsari): its last earlier run that succeeded, and that did not.
    fn previous(&self, b: &Batch<'_>, rec: &RunRecord) -> Result<HashMap<&'static str, String>> {
        let mut env = HashMap::new();
        if let Some(id) = &rec.spec.previous_run_id {
            env.insert("PREVIOUS_RUN_ID", id.clone());
        }
        if let Some(code) = rec.spec.previous_exit_code {
            env.insert("PREVIOUS_EXIT_CODE", code.to_string());
        }
        let Some(job) = &rec.spec.job else {
            return Ok(env);
        };
        let read = b.read();
        let outcomes = [
            (
                true,
                [
                    "PREVIOUS_GOOD_RUN_ID",
                    "PREVIOUS_GOOD_RUN_NUMBER",
                    "PREVIOUS_GOOD_EXIT_CODE",
                ],
            ),
            (
                false,
                [
                    "PREVIOUS_BAD_RUN_ID",
                    "PREVIOUS_BAD_RUN_NUMBER",
                    "PREVIOUS_BAD_EXIT_CODE",
                ],
            ),
        ];
        for (good, [id_key, number_key, code_key]) in outcomes {
            if let Some((id, number, code)) = read.last_of_job(job, rec.number, good)? {
                env.insert(id_key, id);
                env.insert(number_key, number.to_string());
                if let Some(code) = code {
                    env.insert(code_key, code.to_string());
                }
            }
        }
        Ok(env)
    }
}

/// The Assign message: exact argv and the run's whole environment (docs/architecture.md "Run
/// environment"), later sources winning: rota's variables, then the run's own environment.
fn assign_message(r: &RunRecord, previous: &HashMap<&'static str, String>) -> pb::Assign {
    let argv = if r.spec.shell {
        vec!["/bin/sh".into(), "-c".into(), r.spec.command.join(" ")]
    } else {
        r.spec.command.clone()
    };
    let mut env: HashMap<String, String> = HashMap::new();
    // dsari's marker that a script runs under CI.
    env.insert("CI".into(), "true".into());
    env.insert("JOB_NAME".into(), r.name.clone());
    env.insert("RUN_ID".into(), r.id.clone());
    env.insert("RUN_NUMBER".into(), r.number.to_string());
    env.insert("ATTEMPT".into(), r.attempt.to_string());
    env.insert("JOBSET".into(), r.jobset.clone());
    if !r.group.is_empty() {
        env.insert("CONCURRENCY_GROUP".into(), r.group.clone());
    }
    if let Some(g) = &r.spec.job_group {
        env.insert("JOB_GROUP".into(), g.clone());
    }
    if let Some(t) = r.spec.schedule_time {
        env.insert("SCHEDULE_TIME".into(), (t / 1000).to_string());
    }
    // When this attempt was handed to its agent (unix seconds, as SCHEDULE_TIME).
    env.insert("START_TIME".into(), (r.started_at / 1000).to_string());
    let trigger = if r.attempt > 1 {
        "retry"
    } else {
        r.spec.trigger_type.as_str()
    };
    env.insert("TRIGGER_TYPE".into(), trigger.into());
    for (k, v) in previous {
        env.insert((*k).into(), v.clone());
    }
    for (k, v) in &r.spec.env {
        env.insert(k.clone(), v.clone());
    }
    pb::Assign {
        run_id: r.id.clone(),
        attempt: r.attempt,
        number: r.number,
        argv,
        env,
        max_execution_ms: r.spec.max_execution_ms,
        kill_grace_ms: kill_grace_ms(&r.spec),
        job_name: r.name.clone(),
        jobset: r.jobset.clone(),
        on_disconnect: if r.spec.stop_on_disconnect {
            pb::OnDisconnect::Stop
        } else {
            pb::OnDisconnect::Keep
        } as i32,
        // Set by the caller for a `same_agent_as` run.
        run_dir_run_id: String::new(),
        run_dir_attempt: 0,
        artifacts: vec![],
        inputs: vec![],
        // Minted by the caller, which holds the key.
        artifact_token: String::new(),
    }
}

/// The SIGTERM → SIGKILL grace an agent applies to the run (timeout, drain, disconnect stop).
pub(super) fn kill_grace_ms(spec: &crate::store::RunSpecData) -> u64 {
    if spec.kill_grace_ms > 0 {
        spec.kill_grace_ms
    } else {
        60_000
    }
}

fn millis(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}
