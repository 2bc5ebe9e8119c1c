//! Job definitions (`rota apply`, `--config`): what is defined, when each scheduled job fires
//! next, and starting runs of a job (by schedule or `rota trigger`).
//!
//! Schedules fire from the engine's own wake-up deadline (the earliest next fire time), not
//! from a polling loop. A job has at most one pending scheduled run; a job without
//! `concurrent_runs` never runs twice at once (the core treats it as an exclusive job).

use std::collections::{BTreeMap, BTreeSet};

use rota_proto as pb;

use super::submit::Origin;
use super::State;
use crate::config::{self, Definitions, JobDef};
use crate::error::{Error, Result};
use crate::retention::Policy;
use crate::store::Batch;

/// The files of an apply request in merge order: the file, then its `config_d` files.
fn request_sources(req: &pb::ApplyRequest) -> Vec<config::SourceFile> {
    let mut sources = vec![config::SourceFile {
        path: req.path.clone(),
        content: req.content.clone(),
    }];
    sources.extend(req.config_d.iter().map(|f| config::SourceFile {
        path: f.path.clone(),
        content: f.content.clone(),
    }));
    sources
}

/// The job's own jobset, else the definitions' default.
fn job_jobset(defs: &Definitions, job: &JobDef) -> String {
    job.jobset.clone().unwrap_or_else(|| defs.jobset.clone())
}

/// Store key of the applied config (path and text, and its `config_d` files), re-read at start.
const DEFINITIONS_KEY: &str = "definitions";

#[derive(Debug, Default)]
pub struct Jobs {
    defs: Option<Definitions>,
    /// Next fire time (ms) per scheduled job.
    next: BTreeMap<String, u64>,
    fires: BTreeSet<(u64, String)>,
    /// The pending run a schedule created, per job: no second one while it waits.
    scheduled_pending: BTreeMap<String, u64>,
}

impl Jobs {
    /// When the next schedule fires.
    pub fn next_deadline(&self) -> Option<u64> {
        self.fires.first().map(|(t, _)| *t)
    }

    /// The config's top-level webhooks.
    pub(super) fn global_notify(&self) -> &[crate::notify::Target] {
        self.defs.as_ref().map_or(&[], |d| &d.notify)
    }

    /// A defined job's own webhooks (none for a job no longer defined).
    pub(super) fn job_notify(&self, name: &str) -> &[crate::notify::Target] {
        self.job(name).map_or(&[], |j| &j.notify)
    }

    /// The retention of a defined job's runs (`None`: an ad hoc run, or a job no longer
    /// defined): the job's fields over the file's over `base` (the coordinator's flags).
    pub(super) fn retention_of(&self, job: Option<&str>, base: Policy) -> Policy {
        let file = self
            .defs
            .as_ref()
            .map_or_else(Policy::default, |d| d.retention);
        let own = job
            .and_then(|j| self.job(j))
            .map_or_else(Policy::default, |j| j.retention);
        own.over(file).over(base)
    }

    /// Every policy in force: the file's (for ad hoc runs and jobs without one) and each
    /// job's.
    pub(super) fn retention_policies(&self, base: Policy) -> Vec<Policy> {
        let mut all = vec![self.retention_of(None, base)];
        if let Some(d) = &self.defs {
            all.extend(
                d.jobs
                    .iter()
                    .map(|j| j.retention.over(d.retention).over(base)),
            );
        }
        all
    }

    /// Names of the defined jobs.
    pub(super) fn names(&self) -> Vec<String> {
        self.defs
            .as_ref()
            .map(|d| d.jobs.iter().map(|j| j.name.clone()).collect())
            .unwrap_or_default()
    }

    fn job(&self, name: &str) -> Option<&JobDef> {
        self.defs.as_ref()?.jobs.iter().find(|j| j.name == name)
    }

    fn set_next(&mut self, job: &JobDef, after_ms: u64) {
        if let Some(old) = self.next.remove(&job.name) {
            self.fires.remove(&(old, job.name.clone()));
        }
        let Some(schedule) = &job.schedule else {
            return;
        };
        let after = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms as i64)
            .unwrap_or_default();
        if let Some(t) = schedule.next_after(after) {
            let t = t.timestamp_millis().max(0) as u64;
            self.next.insert(job.name.clone(), t);
            self.fires.insert((t, job.name.clone()));
        }
    }
}

impl State {
    /// Validates and installs a config (a file and its `config_d` files). On any error nothing
    /// of it is applied; with `check_only` nothing is applied either way.
    pub(super) fn apply_config(
        &mut self,
        b: &Batch<'_>,
        req: &pb::ApplyRequest,
    ) -> Result<pb::ApplyResponse> {
        let sources = request_sources(req);
        let defs =
            config::load_sources(&sources).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let warnings = defs.warnings.clone();
        if req.check_only {
            let jobs = defs.jobs.iter().map(|j| j.name.clone()).collect();
            return Ok(pb::ApplyResponse {
                jobs,
                removed: Vec::new(),
                warnings,
            });
        }
        let stored: Vec<serde_json::Value> = sources
            .iter()
            .map(|f| serde_json::json!({ "path": f.path, "content": f.content }))
            .collect();
        let doc = serde_json::json!({
            "path": req.path,
            "content": req.content,
            "config_d": stored[1..],
        })
        .to_string();
        b.set_config(DEFINITIONS_KEY, &doc)?;
        for (g, max) in &defs.groups {
            b.set_group_max(g, Some(*max))?;
        }
        let removed = self.install(defs);
        let jobs: Vec<String> = self
            .jobs
            .defs
            .as_ref()
            .map(|d| d.jobs.iter().map(|j| j.name.clone()).collect())
            .unwrap_or_default();
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        tracing::info!(
            path = req.path,
            config_d = sources.len() - 1,
            jobs = jobs.len(),
            removed = removed.len(),
            "definitions applied"
        );
        Ok(pb::ApplyResponse {
            jobs,
            removed,
            warnings,
        })
    }

    /// Re-installs the stored config after a restart.
    pub(super) fn load_stored_config(&mut self, b: &Batch<'_>) -> Result<()> {
        let Some(doc) = b.read().config(DEFINITIONS_KEY)? else {
            return Ok(());
        };
        let v: serde_json::Value = serde_json::from_str(&doc)
            .map_err(|e| Error::InvalidArgument(format!("stored definitions: {e}")))?;
        let file = |v: &serde_json::Value| config::SourceFile {
            path: v["path"].as_str().unwrap_or("stored config").into(),
            content: v["content"].as_str().unwrap_or("").into(),
        };
        let mut sources = vec![file(&v)];
        if let Some(parts) = v["config_d"].as_array() {
            sources.extend(parts.iter().map(file));
        }
        match config::load_sources(&sources) {
            Ok(defs) => {
                self.install(defs);
            }
            Err(e) => tracing::error!("stored definitions no longer load: {e}"),
        }
        Ok(())
    }

    /// Replaces the definitions; returns the names of jobs that are gone. Pending and running
    /// runs of removed jobs are left alone; removed jobs just stop being scheduled.
    fn install(&mut self, defs: Definitions) -> Vec<String> {
        let removed: Vec<String> = self
            .jobs
            .defs
            .as_ref()
            .map(|old| {
                old.jobs
                    .iter()
                    .filter(|j| !defs.jobs.iter().any(|n| n.name == j.name))
                    .map(|j| j.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        for (g, max) in &defs.groups {
            self.core.set_group_max(g, Some(*max));
        }
        self.jobs.next.clear();
        self.jobs.fires.clear();
        for job in &defs.jobs {
            self.jobs.set_next(job, self.now);
        }
        self.jobs.defs = Some(defs);
        removed
    }

    /// Starts runs for every schedule due at `now`.
    pub(super) fn fire_schedules(&mut self, b: &Batch<'_>) -> Result<()> {
        while let Some((t, name)) = self.jobs.fires.first().cloned() {
            if t > self.now {
                break;
            }
            let Some(job) = self.jobs.job(&name).cloned() else {
                self.jobs.fires.pop_first();
                continue;
            };
            let waiting = self
                .jobs
                .scheduled_pending
                .get(&name)
                .is_some_and(|n| self.live.get(n).is_some_and(|r| r.state == "pending"));
            if waiting {
                tracing::debug!(job = %name, "schedule fired while its previous scheduled run still waits: skipped");
            } else if let Err(e) = self.check_space() {
                tracing::warn!(job = %name, "schedule fired: no run started: {e}");
            } else {
                let n = self.start_job(b, &job, "schedule", BTreeMap::new(), Some(t))?;
                self.jobs.scheduled_pending.insert(name.clone(), n);
            }
            self.jobs.set_next(&job, t.max(self.now));
        }
        Ok(())
    }

    pub(super) fn trigger(&mut self, b: &Batch<'_>, req: super::JobTrigger) -> Result<u64> {
        let job = self.jobs.job(&req.job).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "no job {:?} (rota jobs lists the defined ones)",
                req.job
            ))
        })?;
        self.start_job(b, &job, req.trigger_type, req.env, req.schedule_time)
    }

    /// One run of a defined job. Environment: global < job < trigger.
    fn start_job(
        &mut self,
        b: &Batch<'_>,
        job: &JobDef,
        trigger: &str,
        env: BTreeMap<String, String>,
        schedule_time: Option<u64>,
    ) -> Result<u64> {
        let defs = self.jobs.defs.as_ref().expect("a job implies definitions");
        let mut spec = job.to_run_spec(&defs.environment);
        // `after` names other jobs of a `rota run` batch; a single triggered run has none.
        spec.after.clear();
        spec.env.extend(env);
        let jobset = job_jobset(defs, job);
        let previous = b.read().last_finished_of_job(&job.name)?;
        let origin = Origin {
            trigger_type: trigger.into(),
            job: Some(job.name.clone()),
            job_group: job.job_group.clone(),
            exclusive: !job.concurrent_runs,
            schedule_time,
            previous,
            max_log_bytes: job.max_log_bytes,
        };
        let numbers = self.submit(b, &jobset, 0, vec![spec], &origin)?;
        Ok(numbers[0])
    }

    /// The jobset a defined job's runs go to; `None` for a job not defined.
    pub(super) fn jobs_jobset(&self, name: &str) -> Option<String> {
        let defs = self.jobs.defs.as_ref()?;
        Some(job_jobset(defs, self.jobs.job(name)?))
    }

    pub(super) fn job_views(&self) -> Vec<pb::Job> {
        let Some(defs) = &self.jobs.defs else {
            return vec![];
        };
        defs.jobs
            .iter()
            .map(|j| pb::Job {
                name: j.name.clone(),
                command: j.command.clone(),
                schedule: j.schedule_text.clone().unwrap_or_default(),
                schedule_timezone: j.schedule_timezone.clone().unwrap_or_default(),
                concurrency_groups: j.concurrency_groups.clone(),
                next_run_at_ms: self.jobs.next.get(&j.name).copied().unwrap_or(0),
                job_group: j.job_group.clone().unwrap_or_default(),
                priority: j.priority,
                retries: j.retries,
            })
            .collect()
    }
}
