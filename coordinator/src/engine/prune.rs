//! Retention inside the engine: picking batches of finished runs past the policy and deleting
//! them, as ordinary engine batches (docs/architecture.md, "pruning is a normal engine batch").
//!
//! - **Which runs**: `keep_last` is checked per key (a defined job; a jobset for ad hoc runs)
//!   when a run of that key finishes, from the `runs_by_job` / `runs_by_jobset` indexes,
//!   skipping the newest N. `max_age` is a sweep over the `runs_done_by_finish` index from the
//!   oldest finish time up to now minus the shortest `max_age` in force, started on a timer
//!   (a tenth of that age, between 1 s and 10 min). Neither reads a run it does not consider.
//! - **How**: at most [`BATCH`] runs per step. A step queues them (`prune_queue`, committed
//!   with fsync before any file is touched) and forgets them in the core; the files thread
//!   (`retention::files`) removes their files and sends [`Command::PruneFilesGone`], whose
//!   batch deletes the rows; only then is the next step taken. Commands queue between steps as
//!   at any other time, so dispatch never waits behind a prune.
//! - **Never**: an unfinished run, or a finished one an unfinished run depends on (`after`),
//!   which a restart must load into the core.

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;
use std::time::Duration;

use rota_proto as pb;

use super::{Command, Reply, State};
use crate::error::Result;
use crate::retention::files::{self, Removed};
use crate::retention::policy::{doomed, Finished};
use crate::retention::Policy;
use crate::store::{Batch, PruneCandidate, Reader, RunRecord};

/// Most runs one prune step deletes: small enough that its transaction is a few milliseconds.
pub(super) const BATCH: usize = 500;

/// Listed at most by one `rota prune` reply.
const MAX_LIST: u32 = 10_000;

/// What `keep_last` counts within.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Job(String),
    /// Ad hoc runs (of no defined job) of a jobset.
    Jobset(String),
}

impl Key {
    fn of(job: Option<&str>, jobset: &str) -> Key {
        match job {
            Some(j) => Key::Job(j.to_string()),
            None => Key::Jobset(jobset.to_string()),
        }
    }
}

/// Where the planner is: keys to check, each with how many of its newest finished runs are
/// known to stay, and the age sweep's position (`None`: no sweep running).
#[derive(Debug, Default, Clone)]
struct Cursor {
    dirty: BTreeMap<Key, u64>,
    sweep_after: Option<(u64, u64)>,
}

/// Retention's part of the engine state.
#[derive(Default)]
pub(super) struct Retention {
    /// The coordinator's flags: under the config file's policy, which is under each job's.
    base: Policy,
    cursor: Cursor,
    /// When the next age sweep starts (unix ms).
    sweep_next: u64,
    /// Runs queued whose files are being removed; no next step until they are deleted.
    in_flight: HashSet<u64>,
    /// The files thread.
    files: Option<mpsc::Sender<files::Batch>>,
    /// `rota prune` callers, answered with the step their request started.
    pub(super) waiting: Vec<Reply<pb::PruneResponse>>,
    /// Runs deleted since start, for `rota status`.
    pub pruned: u64,
    /// Bytes of log files held, for `rota status`.
    pub log_bytes: u64,
}

impl Retention {
    pub(super) fn new(base: Policy) -> Retention {
        Retention {
            base,
            ..Default::default()
        }
    }

    /// Whether `number` is being deleted: commands naming it get NOT_FOUND.
    pub(super) fn is_deleting(&self, number: u64) -> bool {
        self.in_flight.contains(&number)
    }
}

fn facts(c: &PruneCandidate) -> Finished {
    Finished {
        finished_at: c.finished_at,
        failed: c.state == "errored",
    }
}

fn to_proto(c: &PruneCandidate, name: String) -> pb::PrunedRun {
    pb::PrunedRun {
        number: c.number,
        id: c.id.clone(),
        name,
        jobset: c.jobset.clone(),
        job: c.job.clone().unwrap_or_default(),
        state: c.state.clone(),
        finished_at_ms: c.finished_at,
    }
}

impl State {
    /// Starts the files thread and finishes what a crash left queued: called once at start,
    /// before the first batch. Every key is checked and a sweep starts at once.
    pub(super) fn start_retention(
        &mut self,
        read: Reader<'_>,
        link: super::EngineLink,
    ) -> anyhow::Result<()> {
        let files = files::start(
            vec![Box::new(files::LogFiles {
                root: self.config.data_dir.join("logs"),
            })],
            move |removed| {
                // Once every handle is gone the engine is stopping: the rows stay queued.
                let tx = link.lock().ok().and_then(|l| l.clone());
                if let Some(tx) = tx {
                    let _ = tx.send(Command::PruneFilesGone(removed));
                }
            },
        )?;
        self.retention.log_bytes = files::logs_bytes(&self.config.data_dir.join("logs"));
        let left = read.prune_queue()?;
        if !left.is_empty() {
            tracing::info!(runs = left.len(), "finishing an interrupted prune");
            self.retention.in_flight = left.iter().map(|(n, _)| *n).collect();
            for chunk in left.chunks(BATCH) {
                let _ = files.send(chunk.to_vec());
            }
        }
        self.retention.files = Some(files);
        self.rescan_retention(read)?;
        Ok(())
    }

    /// Checks every key and starts a sweep: at start, after an apply (the policy may have
    /// changed) and on `rota prune`.
    pub(super) fn rescan_retention(&mut self, read: Reader<'_>) -> Result<()> {
        let mut dirty = BTreeMap::new();
        for job in self.jobs.names() {
            dirty.insert(Key::Job(job), 0);
        }
        for js in read.jobsets()? {
            dirty.insert(Key::Jobset(js.name), 0);
        }
        self.retention.cursor.dirty = dirty;
        self.retention.sweep_next = self.now;
        Ok(())
    }

    fn policy_of(&self, job: Option<&str>) -> Policy {
        self.jobs.retention_of(job, self.retention.base)
    }

    /// The shortest `max_age` in force, which bounds the age sweep.
    fn shortest_max_age(&self) -> Option<Duration> {
        self.jobs
            .retention_policies(self.retention.base)
            .iter()
            .filter_map(|p| p.max_age)
            .min()
    }

    /// The policy line of `rota status` and `rota prune`.
    pub(super) fn retention_line(&self) -> String {
        let base = self.policy_of(None);
        let own = self
            .jobs
            .retention_policies(self.retention.base)
            .into_iter()
            .skip(1)
            .filter(|p| *p != base)
            .count();
        match own {
            0 => base.describe(),
            1 => format!("{}; 1 job with its own", base.describe()),
            n => format!("{}; {n} jobs with their own", base.describe()),
        }
    }

    /// When the engine must wake for retention: now while a step is due, the next sweep
    /// otherwise, never while a batch's files are being removed (its report wakes it).
    pub(super) fn retention_deadline(&self) -> Option<u64> {
        let r = &self.retention;
        if !r.in_flight.is_empty() || r.files.is_none() {
            return None;
        }
        if !r.cursor.dirty.is_empty() || r.cursor.sweep_after.is_some() || !r.waiting.is_empty() {
            return Some(0);
        }
        self.shortest_max_age().map(|_| r.sweep_next)
    }

    /// Runs an unfinished run depends on, or being deleted: never chosen.
    fn held(&self) -> HashSet<u64> {
        let mut held: HashSet<u64> = self
            .live
            .values()
            .flat_map(|r| r.spec.after.iter().copied())
            .collect();
        held.extend(self.retention.in_flight.iter().copied());
        held
    }

    /// Up to `limit` runs past the policy, advancing `cursor`.
    fn plan(
        &self,
        b: &Batch<'_>,
        cursor: &mut Cursor,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        let held = self.held();
        let now = self.now;
        let mut out: Vec<PruneCandidate> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        while out.len() < limit {
            let Some((key, skip)) = cursor.dirty.pop_first() else {
                break;
            };
            let (job, policy) = match &key {
                Key::Job(j) => (Some(j.as_str()), self.policy_of(Some(j))),
                Key::Jobset(_) => (None, self.policy_of(None)),
            };
            let Some(keep) = policy.keep_last else {
                continue;
            };
            let skip = skip.max(keep);
            let page = limit - out.len();
            let rows = match (&key, job) {
                (_, Some(j)) => b.read().finished_of_job(j, skip, page)?,
                (Key::Jobset(js), None) => b.read().finished_adhoc_of_jobset(js, skip, page)?,
                (Key::Job(_), None) => unreachable!("a job key has its job"),
            };
            let mut kept = 0;
            for (i, c) in rows.iter().enumerate() {
                let rank = skip + i as u64;
                if !held.contains(&c.number) && doomed(&policy, facts(c), Some(rank), now) {
                    seen.insert(c.number);
                    out.push(c.clone());
                } else {
                    kept += 1;
                }
            }
            if rows.len() == page {
                // Maybe more: come back, past the ones that stay.
                cursor.dirty.insert(key, skip + kept);
            }
        }
        if let Some(after) = cursor.sweep_after.filter(|_| out.len() < limit) {
            cursor.sweep_after = None;
            if let Some(age) = self.shortest_max_age() {
                let cutoff = now.saturating_sub(age.as_millis() as u64);
                let page = limit - out.len();
                let rows = b.read().finished_before(cutoff, after, page)?;
                for c in &rows {
                    let policy = self.policy_of(c.job.as_deref());
                    if !held.contains(&c.number)
                        && !seen.contains(&c.number)
                        && doomed(&policy, facts(c), None, now)
                    {
                        out.push(c.clone());
                    }
                }
                if rows.len() == page {
                    cursor.sweep_after = rows.last().map(|c| (c.finished_at, c.number));
                }
            }
        }
        Ok(out)
    }

    /// Names of the planned runs, for the replies (one primary-key read each).
    fn pruned_views(&self, b: &Batch<'_>, runs: &[PruneCandidate]) -> Result<Vec<pb::PrunedRun>> {
        runs.iter()
            .map(|c| {
                let name = b.read().run_by_number(c.number)?.map(|r| r.name);
                Ok(to_proto(c, name.unwrap_or_default()))
            })
            .collect()
    }

    /// `rota prune --dry-run`: what a prune from scratch would delete now, deleting nothing.
    pub(super) fn prune_preview(&self, b: &Batch<'_>, limit: u32) -> Result<pb::PruneResponse> {
        let limit = if limit == 0 { 100 } else { limit.min(MAX_LIST) } as usize;
        let mut cursor = Cursor {
            dirty: self
                .jobs
                .names()
                .into_iter()
                .map(|j| (Key::Job(j), 0))
                .chain(
                    b.read()
                        .jobsets()?
                        .into_iter()
                        .map(|j| (Key::Jobset(j.name), 0)),
                )
                .collect(),
            sweep_after: Some((0, 0)),
        };
        let mut runs = self.plan(b, &mut cursor, limit + 1)?;
        let more = runs.len() > limit;
        runs.truncate(limit);
        Ok(pb::PruneResponse {
            runs: self.pruned_views(b, &runs)?,
            more,
            policy: self.retention_line(),
        })
    }

    /// A batch's files are gone: delete its rows.
    pub(super) fn prune_files_gone(&mut self, b: &Batch<'_>, removed: Removed) -> Result<()> {
        let mut contents = Vec::new();
        for &n in &removed.numbers {
            contents.extend(b.read().artifacts(n)?.into_iter().map(|a| a.sha256));
        }
        contents.sort_unstable();
        contents.dedup();
        b.delete_runs(&removed.numbers)?;
        self.remove_artifact_contents(b, &contents);
        for n in &removed.batch {
            self.retention.in_flight.remove(n);
        }
        self.retention.pruned += removed.numbers.len() as u64;
        self.retention.log_bytes = self.retention.log_bytes.saturating_sub(removed.bytes);
        tracing::debug!(
            runs = removed.numbers.len(),
            bytes = removed.bytes,
            "pruned"
        );
        Ok(())
    }

    /// Removes the content files of these digests that no run keeps now that the batch's rows
    /// are deleted (in this transaction): a content shared with a run that stays (or one
    /// still queued) stays. Done here, before the commit, rather than by the files thread:
    /// only the engine sees every artifact row, so no result recorded meanwhile can name a
    /// content removed behind it. A crash before the commit leaves the runs queued with
    /// their rows, and the next start does this again (a content already gone is fine), so
    /// no kill leaves a content no row names.
    pub(super) fn remove_artifact_contents(&self, b: &Batch<'_>, contents: &[String]) {
        // A read that fails keeps the content: better a file too many than one too few.
        let still_used = |sha: &str| b.read().artifact_content_used(sha).unwrap_or(true);
        if let Err(e) = self.artifacts.remove_unreferenced(contents, still_used) {
            // Logged, not fatal: the rows go either way, and a content no row names is never
            // served (it is only space).
            tracing::error!("cannot remove the artifact content of a pruned run: {e}");
        }
    }

    /// Once per batch, after dispatch: notes the runs that finished (their key may now hold
    /// more than `keep_last`; their logs count), then queues one step if one is due and none
    /// is in flight. Returns whether it wrote (the queue must be durable before files go).
    pub(super) fn prune_step(&mut self, b: &Batch<'_>) -> Result<bool> {
        let finished: Vec<(Key, u64)> = self
            .recently_finished
            .values()
            .map(|r: &RunRecord| {
                (
                    Key::of(r.spec.job.as_deref(), &r.jobset),
                    r.stdout_len + r.stderr_len,
                )
            })
            .collect();
        for (key, bytes) in finished {
            self.retention.log_bytes += bytes;
            self.retention.cursor.dirty.entry(key).or_insert(0);
        }
        let r = &mut self.retention;
        if !r.in_flight.is_empty() || r.files.is_none() {
            return Ok(false);
        }
        if r.cursor.sweep_after.is_none()
            && self.now >= r.sweep_next
            && self.shortest_max_age().is_some()
        {
            self.retention.cursor.sweep_after = Some((0, 0));
            // Audit entries naming no run have no run to go with: they age out here.
            if let Some(age) = self.policy_of(None).max_age {
                self.prune_audit(b, self.now.saturating_sub(age.as_millis() as u64))?;
            }
        }
        let mut cursor = std::mem::take(&mut self.retention.cursor);
        let was_sweeping = cursor.sweep_after.is_some();
        let plan = self.plan(b, &mut cursor, BATCH)?;
        if was_sweeping && cursor.sweep_after.is_none() {
            let every = self
                .shortest_max_age()
                .map_or(Duration::from_secs(600), |age| age / 10)
                .clamp(Duration::from_secs(1), Duration::from_secs(600));
            self.retention.sweep_next = self.now + every.as_millis() as u64;
        }
        let more = !cursor.dirty.is_empty() || cursor.sweep_after.is_some();
        self.retention.cursor = cursor;
        let views = if self.retention.waiting.is_empty() {
            Vec::new()
        } else {
            self.pruned_views(b, &plan)?
        };
        for reply in std::mem::take(&mut self.retention.waiting) {
            let response = pb::PruneResponse {
                runs: views.clone(),
                more,
                policy: self.retention_line(),
            };
            self.reply(reply, Ok(response));
        }
        if plan.is_empty() {
            return Ok(false);
        }
        let batch: files::Batch = plan.iter().map(|c| (c.number, c.id.clone())).collect();
        b.queue_prune(&batch)?;
        for c in &plan {
            self.core.forget(c.number);
            self.retention.in_flight.insert(c.number);
        }
        tracing::debug!(runs = batch.len(), "prune batch queued");
        if let Some(tx) = self.retention.files.clone() {
            self.effects.push(Box::new(move || {
                let _ = tx.send(batch);
            }));
        }
        Ok(true)
    }
}
