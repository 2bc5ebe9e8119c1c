//! One match arm per command: convert, call the state method, queue the reply.

use rota_proto as pb;

use super::audit::runs_text;
use super::submit::Origin;
use super::{Command, State};
use crate::error::{Error, Result};
use crate::store::{Batch, RunFilter};

impl State {
    /// Handles one command inside the batch's transaction. Only a store error after the
    /// command may have changed something aborts the batch (and stops the coordinator); a
    /// refused request, or one whose reads failed before it changed anything, is answered with
    /// its error and changes nothing.
    pub(super) fn handle(&mut self, b: &Batch<'_>, cmd: Command) -> Result<()> {
        macro_rules! answer {
            ($reply:expr, $value:expr) => {{
                let v = $value;
                if let Err(Error::Store(e)) = v {
                    return Err(e.into());
                }
                self.reply($reply, v);
            }};
        }
        // A command that only reads: whatever failed, nothing changed.
        macro_rules! answer_read {
            ($reply:expr, $value:expr) => {{
                let v = $value;
                if let Err(Error::Store(e)) = &v {
                    tracing::error!("store read failed: {e}");
                }
                self.reply($reply, v);
            }};
        }
        // The run a command names, resolved before the command changes anything: a failed
        // read answers the command alone.
        macro_rules! resolved {
            ($reply:expr, $reference:expr) => {
                match self.resolve(b, $reference) {
                    Ok(n) => n,
                    Err(e) => {
                        answer_read!($reply, Err(e));
                        return Ok(());
                    }
                }
            };
        }
        match cmd {
            Command::Submit(req, actor, reply) => {
                let jobset = if req.jobset.is_empty() {
                    "default".to_string()
                } else {
                    req.jobset.clone()
                };
                let submitted = self.check_space().and_then(|()| {
                    self.submit(b, &req.jobset, req.parallel, req.runs, &Origin::default())
                });
                match submitted {
                    Ok(numbers) => {
                        let target = format!("jobset {jobset}, {}", runs_text(&numbers));
                        self.audit(b, &actor, "Submit", target, &numbers)?;
                        self.pending_views.push((numbers, ViewReply::Many(reply)))
                    }
                    Err(e) => answer!(reply, Err(e)),
                }
            }
            Command::CreateJobset(req, actor, reply) => {
                let target = format!("jobset {}", req.name);
                let v = self.check_space().and_then(|()| self.create_jobset(b, req));
                if v.is_ok() {
                    self.audit(b, &actor, "CreateJobset", target, &[])?;
                }
                answer!(reply, v)
            }
            Command::SetParallel(req, actor, reply) => {
                let target = format!("jobset {} parallel {}", req.name, req.parallel);
                let v = self.set_parallel(b, req);
                if v.is_ok() {
                    self.audit(b, &actor, "SetParallel", target, &[])?;
                }
                answer!(reply, v)
            }
            Command::GetJobset(name, reply) => answer_read!(reply, self.jobset_view(b, &name)),
            Command::ListJobsets(reply) => {
                let v = (|| {
                    let names: Vec<String> =
                        b.read().jobsets()?.into_iter().map(|j| j.name).collect();
                    names
                        .iter()
                        .map(|n| self.jobset_view(b, n))
                        .collect::<Result<Vec<_>>>()
                })();
                answer_read!(reply, v)
            }
            Command::ListRuns(req, reply) => answer_read!(reply, self.list_runs(b, req)),
            Command::GetRun(r, reply) => {
                answer_read!(reply, self.resolve(b, &r).and_then(|n| self.run_view(b, n)))
            }
            Command::Cancel(r, actor, reply) => {
                let n = resolved!(reply, &r);
                let v = (|| {
                    // A finished run may have left the core: load it so the refusal names its
                    // state.
                    self.ensure_known(b, n)?;
                    self.core.cancel(n)?;
                    // A running run ends only when its agent reports; until then the request
                    // must survive a restart, committed with this batch before the reply.
                    // (`live` holds only unfinished runs; the cancel's own decisions are not
                    // applied yet, so a pending run still reads `pending` here.)
                    if let Some(rec) = self.live.get(&n).filter(|rec| rec.state != "pending") {
                        b.request_cancel(n, rec.attempt)?;
                    }
                    Ok(n)
                })();
                match v {
                    Ok(n) => {
                        self.audit(b, &actor, "Cancel", runs_text(&[n]), &[n])?;
                        self.pending_views.push((vec![n], ViewReply::One(reply)))
                    }
                    Err(e) => answer!(reply, Err(e)),
                }
            }
            Command::Retry(req, actor, reply) => match self.retry_targets(b, &req) {
                // Only reads so far: a failure answers the command alone.
                Err(e) => answer_read!(reply, Err(e)),
                Ok(targets) => match self.check_space().and_then(|()| self.retry(b, targets)) {
                    Ok(numbers) => {
                        self.audit(b, &actor, "Retry", runs_text(&numbers), &numbers)?;
                        self.pending_views.push((numbers, ViewReply::Many(reply)))
                    }
                    Err(e) => answer!(reply, Err(e)),
                },
            },
            Command::Retire(r, actor, reply) => {
                let n = resolved!(reply, &r);
                let v = (|| {
                    self.ensure_known(b, n)?;
                    self.core.retire(n)?;
                    Ok(n)
                })();
                match v {
                    Ok(n) => {
                        self.audit(b, &actor, "Retire", runs_text(&[n]), &[n])?;
                        self.pending_views.push((vec![n], ViewReply::One(reply)))
                    }
                    Err(e) => answer!(reply, Err(e)),
                }
            }
            Command::ListAgents(reply) => {
                let v = Ok(self.agent_views());
                answer!(reply, v)
            }
            Command::Drain(req, actor, reply) => {
                let target = format!("agent {}", req.agent);
                let v = self.drain_agent(req);
                if v.is_ok() {
                    self.audit(b, &actor, "Drain", target, &[])?;
                }
                answer!(reply, v)
            }
            Command::ListGroups(reply) => answer!(reply, self.group_views(b)),
            Command::SetGroupMax(req, actor, reply) => {
                let target = format!("group {} max {}", req.name, req.max);
                let v = self.set_group_max(b, req);
                if v.is_ok() {
                    self.audit(b, &actor, "SetGroupMax", target, &[])?;
                }
                answer!(reply, v)
            }
            Command::Apply(req, actor, reply) => {
                let v = self.check_space().and_then(|()| self.apply_config(b, &req));
                if let (Ok(resp), false) = (&v, req.check_only) {
                    let target = format!("config {} ({} jobs)", req.path, resp.jobs.len());
                    self.audit(b, &actor, "Apply", target, &[])?;
                    // The policy may have changed: check every key again.
                    self.rescan_retention(b.read())?;
                }
                answer!(reply, v)
            }
            Command::ListJobs(reply) => {
                let v = Ok(self.job_views());
                answer!(reply, v)
            }
            Command::Trigger(req, actor, reply) => {
                let job = req.job.clone();
                match self.check_space().and_then(|()| self.trigger(b, req)) {
                    Ok(n) => {
                        let target = format!("job {job}, {}", runs_text(&[n]));
                        self.audit(b, &actor, "Trigger", target, &[n])?;
                        self.pending_views.push((vec![n], ViewReply::One(reply)))
                    }
                    Err(e) => answer!(reply, Err(e)),
                }
            }
            Command::ImportRuns(runs, reply) => {
                let v = self.check_space().and_then(|()| self.import_runs(b, runs));
                answer!(reply, v)
            }
            Command::Status(reply) => answer_read!(reply, self.status(b)),
            Command::Metrics(reply) => answer_read!(reply, self.metrics_snapshot(b)),
            Command::ListNotifications(req, reply) => {
                answer_read!(reply, self.list_notifications(b, &req))
            }
            Command::ListAudit(req, reply) => answer_read!(reply, self.list_audit(b, &req)),
            Command::NotifyOutcome(o) => self.notify_outcome(b, o)?,
            Command::PrunePreview(limit, reply) => {
                answer_read!(reply, self.prune_preview(b, limit))
            }
            Command::Prune(reply) => match self.rescan_retention(b.read()) {
                // Answered by this batch's prune step, with the batch it queued.
                Ok(()) => self.retention.waiting.push(reply),
                Err(e) => answer_read!(reply, Err(e)),
            },
            Command::PruneFilesGone(removed) => self.prune_files_gone(b, removed)?,
            Command::AgentHello(h, reply) => answer!(reply, self.agent_hello(b, h)),
            Command::AgentHeartbeat { agent, draining } => self.agent_heartbeat(agent, draining),
            Command::AgentStarted { agent, msg } => {
                if let Err(Error::Store(e)) = self.agent_started(b, agent, msg) {
                    return Err(e.into());
                }
            }
            Command::AgentFinished { agent, msg, reply } => {
                answer!(reply, self.agent_finished(b, agent, msg))
            }
            Command::AgentGone { agent, lost } => self.agent_gone(agent, lost),
            Command::AddArtifact {
                run,
                attempt,
                file,
                reply,
            } => answer!(reply, self.add_artifact(b, &run, attempt, file)),
        }
        Ok(())
    }

    /// Work that takes space (new runs, jobsets, definitions) is refused while the data dir's
    /// free space is below the reserve, checked before anything is applied: the core never
    /// moves on to something the store cannot then record, and the reserve stays for results,
    /// acknowledgements and cancels of what was accepted. Space returning lifts it at once.
    pub(super) fn check_space(&self) -> Result<()> {
        let dir = &self.config.data_dir;
        let Ok(free) = crate::datadir::free_bytes(dir) else {
            return Ok(());
        };
        if free >= self.config.reserve_bytes {
            return Ok(());
        }
        Err(Error::ResourceExhausted(format!(
            "the data dir {} has {} KiB free, below the reserve of {} KiB kept for the results of accepted runs: new work is refused until space is freed",
            dir.display(),
            free >> 10,
            self.config.reserve_bytes >> 10
        )))
    }

    fn create_jobset(&mut self, b: &Batch<'_>, req: pb::CreateJobsetRequest) -> Result<pb::Jobset> {
        // Checked before anything is written: a bad entry changes nothing.
        let targets = req
            .notify
            .iter()
            .map(crate::notify::Target::from_proto)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::InvalidArgument)?;
        self.ensure_jobset(b, &req.name, req.parallel)?;
        if !targets.is_empty() {
            self.set_jobset_notify(b, &req.name, targets)?;
        }
        self.jobset_view(b, &req.name)
    }

    fn set_parallel(&mut self, b: &Batch<'_>, req: pb::SetParallelRequest) -> Result<pb::Jobset> {
        let mut js = b
            .read()
            .jobset(&req.name)?
            .ok_or_else(|| Error::NotFound(format!("no jobset {:?}", req.name)))?;
        js.parallel = req.parallel;
        b.upsert_jobset(&js)?;
        self.core.set_parallel(&req.name, req.parallel);
        self.jobset_view(b, &req.name)
    }

    pub(super) fn jobset_view(&self, b: &Batch<'_>, name: &str) -> Result<pb::Jobset> {
        let js = b
            .read()
            .jobset(name)?
            .ok_or_else(|| Error::NotFound(format!("no jobset {name:?}")))?;
        let counts = b.read().jobset_counts(name)?;
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let unfinished: u64 = counts
            .iter()
            .filter(|(s, _)| !crate::store::is_final_state(s))
            .map(|(_, n)| n)
            .sum();
        let succeeded: u64 = counts
            .iter()
            .filter(|(s, _)| s == "success")
            .map(|(_, n)| n)
            .sum();
        let state = if total == 0 {
            "empty"
        } else if unfinished > 0 {
            "running"
        } else if succeeded == total {
            "success"
        } else {
            "errored"
        };
        Ok(pb::Jobset {
            name: js.name,
            parallel: js.parallel,
            state: state.into(),
            counts: counts.into_iter().collect(),
            created_at_ms: js.created_at,
        })
    }

    fn list_runs(&self, b: &Batch<'_>, req: pb::ListRunsRequest) -> Result<Vec<pb::Run>> {
        // `req.state` is one of `store::RUN_STATES`: checked at the edge (service/validate.rs).
        let filter = RunFilter {
            jobset: (!req.jobset.is_empty()).then_some(req.jobset),
            state: (!req.state.is_empty()).then_some(req.state),
            after_number: req.after_number,
            limit: req.limit,
        };
        let runs = b.read().runs(&filter)?;
        Ok(runs
            .iter()
            .map(|r| super::records::to_proto(r, self.core.waiting_reason(r.number)))
            .collect())
    }

    /// The runs a retry names; reads only.
    fn retry_targets(&self, b: &Batch<'_>, req: &pb::RetryRequest) -> Result<Vec<u64>> {
        Ok(if !req.run.is_empty() || !req.runs.is_empty() {
            let mut targets = Vec::new();
            for r in std::iter::once(&req.run)
                .filter(|r| !r.is_empty())
                .chain(&req.runs)
            {
                let n = self.resolve(b, r)?;
                if !targets.contains(&n) {
                    targets.push(n);
                }
            }
            targets
        } else if !req.jobset.is_empty() && req.failed {
            let filter = RunFilter {
                jobset: Some(req.jobset.clone()),
                state: Some("errored".into()),
                ..Default::default()
            };
            b.read().runs(&filter)?.iter().map(|r| r.number).collect()
        } else {
            return Err(Error::InvalidArgument(
                "retry needs a run, or --jobset with --failed".into(),
            ));
        })
    }

    /// All or none: every target is loaded and checked before the first one changes, so a
    /// refused run among several leaves the others as they were (the core's state is not
    /// covered by the batch's transaction, so a refusal halfway could not be rolled back).
    fn retry(&mut self, b: &Batch<'_>, targets: Vec<u64>) -> Result<Vec<u64>> {
        for &n in &targets {
            self.load_with_dependents(b, n)?;
        }
        for &n in &targets {
            self.core.check_retry(n)?;
        }
        for &n in &targets {
            self.core.retry(n, self.now)?;
        }
        Ok(targets)
    }

    /// Before a retry: the run and every run that (transitively) depends on it must be in the
    /// core with their full `after`, so the new attempt waits for its dependencies again and
    /// skipped dependents can come back. A finished run may be absent (forgotten) or present
    /// without its dependencies (loaded as another run's finished dependency): either way it
    /// is loaded afresh from its record.
    fn load_with_dependents(&mut self, b: &Batch<'_>, n: u64) -> Result<()> {
        let mut stack = vec![n];
        let mut seen = std::collections::HashSet::new();
        while let Some(r) = stack.pop() {
            if !seen.insert(r) {
                continue;
            }
            self.core.forget(r);
            if self.core.attempt(r).is_none() {
                let rec = self.record(b, r)?;
                for &d in &rec.spec.after {
                    self.ensure_known(b, d)?;
                }
                let mut info = super::submit::run_info(&rec);
                info.after.retain(|d| self.core.attempt(*d).is_some());
                let state = super::submit::final_of(&rec.state).ok_or_else(|| {
                    Error::FailedPrecondition(format!(
                        "run {r} is {} but unknown to the scheduler",
                        rec.state
                    ))
                })?;
                if state == crate::sched::Final::Success {
                    self.core.set_ran_on(r, &rec.agent);
                }
                self.core.add(
                    info,
                    rec.attempt,
                    crate::sched::Initial::Done(state),
                    self.now,
                )?;
            }
            for d in b.read().dependents(r)? {
                if d.state == "skipped" {
                    stack.push(d.number);
                }
            }
        }
        Ok(())
    }

    fn group_views(&self, b: &Batch<'_>) -> Result<Vec<pb::Group>> {
        let _ = b;
        let agents = self.agent_views();
        Ok(self
            .core
            .groups()
            .into_iter()
            .map(|g| pb::Group {
                agents: agents
                    .iter()
                    .filter(|a| {
                        a.state != "lost"
                            && a.state != "disconnected"
                            && a.groups.iter().any(|x| **x == *g.name)
                    })
                    .map(|a| a.name.clone())
                    .collect(),
                name: g.name.to_string(),
                max: g.max,
                running: g.running,
                waiting: g.waiting,
                defined: g.defined,
            })
            .collect())
    }

    fn set_group_max(&mut self, b: &Batch<'_>, req: pb::SetGroupMaxRequest) -> Result<pb::Group> {
        crate::error::check_name("concurrency group", &req.name)?;
        b.set_group_max(&req.name, Some(req.max))?;
        self.core.set_group_max(&req.name, Some(req.max));
        self.group_views(b)?
            .into_iter()
            .find(|g| g.name == req.name)
            .ok_or_else(|| Error::NotFound(req.name))
    }
}

/// A reply that carries run views made at the end of the batch, after dispatch, so that what
/// the caller sees includes the batch's own assignments.
pub(super) enum ViewReply {
    One(super::Reply<pb::Run>),
    Many(super::Reply<Vec<pb::Run>>),
}

impl State {
    pub(super) fn answer_views(&mut self, b: &Batch<'_>) -> Result<()> {
        for (numbers, reply) in std::mem::take(&mut self.pending_views) {
            // Batch replies (a submit of 100,000 runs) skip the per-run attempts query.
            let views: Result<Vec<pb::Run>> = match reply {
                ViewReply::One(_) => numbers.iter().map(|&n| self.run_view(b, n)).collect(),
                ViewReply::Many(_) => numbers
                    .iter()
                    .map(|&n| {
                        // No waiting reasons here: `rota show` / `rota runs` give them.
                        Ok(super::records::to_proto(&self.record(b, n)?, None))
                    })
                    .collect(),
            };
            if let Err(Error::Store(e)) = views {
                return Err(e.into());
            }
            match reply {
                ViewReply::Many(r) => self.reply(r, views),
                ViewReply::One(r) => self.reply(r, views.map(|mut v| v.remove(0))),
            }
        }
        Ok(())
    }
}
