//! Reading and changing run records inside a batch, and converting them to protocol messages.

use rota_proto as pb;

use super::State;
use crate::error::{Error, Result};
use crate::store::{is_final_state, AttemptRecord, Batch, RunRecord};

pub fn to_proto(r: &RunRecord, waiting_reason: Option<String>) -> pb::Run {
    pb::Run {
        id: r.id.clone(),
        number: r.number,
        name: r.name.clone(),
        jobset: r.jobset.clone(),
        command: r.spec.command.clone(),
        shell: r.spec.shell,
        state: r.state.clone(),
        waiting_reason: waiting_reason.unwrap_or_default(),
        priority: r.priority,
        groups: r.spec.groups.clone(),
        concurrency_group: r.group.clone(),
        agent: r.agent.clone(),
        attempt: r.attempt,
        exit_code: r.exit_code,
        signal: r.signal,
        error: r.error.clone(),
        submitted_at_ms: r.submitted_at,
        started_at_ms: r.started_at,
        finished_at_ms: r.finished_at,
        after: r.spec.after.iter().map(|n| n.to_string()).collect(),
        retries: r.spec.retries,
        attempts: vec![],
        stdout_len: r.stdout_len,
        stderr_len: r.stderr_len,
        env: r.spec.env.clone().into_iter().collect(),
        trigger_type: r.spec.trigger_type.clone(),
        // Filled by `run_view` (GetRun) alone: a list does not read the return data table.
        return_data: String::new(),
        return_data_problem: String::new(),
        artifacts: vec![],
    }
}

pub fn artifact_to_proto(a: crate::store::ArtifactRecord) -> pb::ArtifactFile {
    pb::ArtifactFile {
        path: a.path,
        sha256: a.sha256,
        size: a.size,
    }
}

pub fn attempt_to_proto(a: &AttemptRecord) -> pb::Attempt {
    pb::Attempt {
        attempt: a.attempt,
        agent: a.agent.clone(),
        concurrency_group: a.group.clone(),
        started_at_ms: a.started_at,
        finished_at_ms: a.finished_at,
        exit_code: a.exit_code,
        signal: a.signal,
        error: a.error.clone(),
        state: a.state.clone(),
    }
}

impl State {
    /// Resolves a user's run reference: a number, or a run id (UUID).
    pub(super) fn resolve(&self, b: &Batch<'_>, reference: &str) -> Result<u64> {
        let n = self.resolve_stored(b, reference)?;
        if self.retention.is_deleting(n) {
            return Err(Error::NotFound(format!(
                "run {reference:?} is being deleted by the retention policy"
            )));
        }
        Ok(n)
    }

    fn resolve_stored(&self, b: &Batch<'_>, reference: &str) -> Result<u64> {
        let reference = reference.trim().trim_start_matches('#');
        if let Ok(n) = reference.parse::<u64>() {
            if self.live.contains_key(&n) || b.read().run_by_number(n)?.is_some() {
                return Ok(n);
            }
        } else if let Some(n) = self.ids.get(reference) {
            return Ok(*n);
        } else if let Some(r) = b.read().run_by_id(reference)? {
            return Ok(r.number);
        }
        Err(Error::NotFound(format!("no run {reference:?}")))
    }

    /// The current record of a run: from memory when unfinished, else from the store.
    pub(super) fn record(&self, b: &Batch<'_>, number: u64) -> Result<RunRecord> {
        if let Some(r) = self.live.get(&number) {
            return Ok(r.clone());
        }
        if self.retention.is_deleting(number) {
            return Err(Error::NotFound(format!(
                "run {number} is being deleted by the retention policy"
            )));
        }
        b.read()
            .run_by_number(number)?
            .ok_or_else(|| Error::NotFound(format!("no run {number}")))
    }

    /// A run as the API shows it, with its waiting reason and attempts.
    pub(super) fn run_view(&self, b: &Batch<'_>, number: u64) -> Result<pb::Run> {
        let rec = self.record(b, number)?;
        let mut run = to_proto(&rec, self.core.waiting_reason(number));
        run.attempts = b
            .read()
            .attempts(number)?
            .iter()
            .map(attempt_to_proto)
            .collect();
        run.artifacts = b
            .read()
            .artifacts(number)?
            .into_iter()
            .map(artifact_to_proto)
            .collect();
        if let Some(data) = b.read().return_data(number)? {
            run.return_data = data.data;
            run.return_data_problem = data.problem;
        }
        Ok(run)
    }

    /// Changes a run, writes it through to the store (inside the batch) and notes it for the
    /// broadcast. Final runs leave the in-memory set.
    pub(super) fn update(
        &mut self,
        b: &Batch<'_>,
        number: u64,
        f: impl FnOnce(&mut RunRecord),
    ) -> Result<RunRecord> {
        let mut rec = match self.live.remove(&number) {
            Some(r) => r,
            None => self.record(b, number)?,
        };
        let before = rec.state.clone();
        f(&mut rec);
        b.update_run(&rec)?;
        self.counts.moved(&rec.jobset, &before, &rec.state);
        if is_final_state(&rec.state) && rec.state != before {
            self.run_ended(b, &rec)?;
        }
        self.track_holder(&rec);
        self.changed.push(number);
        if is_final_state(&rec.state) {
            self.ids.remove(&rec.id);
            self.recently_finished.insert(number, rec.clone());
            self.logs.finished(&rec.id);
        } else {
            self.ids.insert(rec.id.clone(), number);
            self.live.insert(number, rec.clone());
        }
        Ok(rec)
    }

    /// Updates one attempt row with `f` (creating it when missing).
    pub(super) fn update_attempt(
        &self,
        b: &Batch<'_>,
        run: &RunRecord,
        attempt: u32,
        f: impl FnOnce(&mut AttemptRecord),
    ) -> Result<()> {
        let mut a = b
            .read()
            .attempts(run.number)?
            .into_iter()
            .find(|a| a.attempt == attempt)
            .unwrap_or(AttemptRecord {
                run: run.number,
                attempt,
                ..Default::default()
            });
        f(&mut a);
        b.put_attempt(&a)?;
        Ok(())
    }
}
