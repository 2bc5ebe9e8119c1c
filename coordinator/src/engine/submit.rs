//! Submitting runs, and reloading unfinished ones after a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rota_proto as pb;

use super::{Engine, State};
use crate::error::{check_name, Error, Result};
use crate::metrics::counts::RunCounts;
use crate::sched::{Final, Initial, RunInfo};
use crate::store::{Batch, JobsetRecord, RunRecord, RunSpecData};

/// Where a run came from, for TRIGGER_TYPE and friends.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub trigger_type: String,
    pub job: Option<String>,
    pub job_group: Option<String>,
    pub exclusive: bool,
    pub schedule_time: Option<u64>,
    /// (run id, exit code) of the job's last finished run: PREVIOUS_RUN_ID / PREVIOUS_EXIT_CODE.
    pub previous: Option<(String, Option<i32>)>,
    /// The job's `max_log_bytes`.
    pub max_log_bytes: Option<u64>,
}

impl State {
    /// Validates and stores a batch of runs atomically. Numbers are given in dependency order,
    /// so a run's dependencies always have lower numbers.
    pub(super) fn submit(
        &mut self,
        b: &Batch<'_>,
        jobset: &str,
        parallel: u32,
        specs: Vec<pb::RunSpec>,
        origin: &Origin,
    ) -> Result<Vec<u64>> {
        let jobset = if jobset.is_empty() { "default" } else { jobset };
        check_name("jobset", jobset)?;
        if specs.is_empty() {
            return Err(Error::InvalidArgument(
                "nothing to submit: no runs given".into(),
            ));
        }
        // Names of this batch, for `after` references between its runs.
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let names: Vec<String> = specs.iter().map(default_name).collect();
        for (i, n) in names.iter().enumerate() {
            by_name.entry(n.clone()).or_insert(i);
        }
        let mut local_deps: Vec<Vec<usize>> = vec![vec![]; specs.len()];
        let mut outside_deps: Vec<Vec<u64>> = vec![vec![]; specs.len()];
        for (i, spec) in specs.iter().enumerate() {
            if !spec.name.is_empty() {
                check_name("job", &spec.name)?;
            }
            if spec.command.is_empty() || spec.command.iter().all(|c| c.trim().is_empty()) {
                return Err(Error::InvalidArgument(format!(
                    "run {:?}: empty command",
                    names[i]
                )));
            }
            // What exec cannot carry would only fail at spawn, on an agent.
            if spec.command.iter().any(|word| word.contains('\0')) {
                return Err(Error::InvalidArgument(format!(
                    "run {:?}: the command contains a NUL byte",
                    names[i]
                )));
            }
            if let Some((key, _)) = spec.env.iter().find(|(key, value)| {
                key.is_empty() || key.contains(['=', '\0']) || value.contains('\0')
            }) {
                return Err(Error::InvalidArgument(format!(
                    "run {:?}: environment variable {key:?}: the name must be non-empty without '=' or NUL, the value without NUL",
                    names[i]
                )));
            }
            for g in &spec.groups {
                check_name("concurrency group", g)?;
            }
            if pb::OnDisconnect::try_from(spec.on_disconnect).is_err() {
                return Err(Error::InvalidArgument(format!(
                    "run {:?}: unknown on_disconnect value {} (0 = keep, 1 = stop)",
                    names[i], spec.on_disconnect
                )));
            }
            for a in &spec.after {
                if let Some(&j) = by_name.get(a) {
                    if j == i {
                        return Err(Error::InvalidArgument(format!(
                            "run {:?}: after itself",
                            names[i]
                        )));
                    }
                    local_deps[i].push(j);
                } else {
                    outside_deps[i].push(self.resolve(b, a).map_err(|_| {
                        Error::NotFound(format!(
                            "run {:?}: after {a:?}: no such run in this batch or the store",
                            names[i]
                        ))
                    })?);
                }
            }
        }
        for (i, spec) in specs.iter().enumerate() {
            if let Some(bad) = spec
                .artifacts
                .iter()
                .find(|g| !rota_proto::is_artifact_path(g))
            {
                return Err(Error::InvalidArgument(format!(
                    "run {:?}: artifacts: {bad:?} must be a relative path or glob inside RUN_DIR (no '..', not absolute)",
                    names[i]
                )));
            }
            let pin = &spec.same_agent_as;
            if !pin.is_empty() && !spec.after.contains(pin) {
                return Err(Error::InvalidArgument(format!(
                    "run {:?}: same_agent_as {pin:?} must also be one of its after",
                    names[i]
                )));
            }
        }
        let order = topological(&local_deps).map_err(|cycle| {
            let path: Vec<&str> = cycle.iter().map(|&i| names[i].as_str()).collect();
            Error::InvalidArgument(format!("cycle in after: {}", path.join(" -> ")))
        })?;
        // Every outside dependency must be known to the core before its dependents.
        for deps in &outside_deps {
            for &d in deps {
                self.ensure_known(b, d)?;
            }
        }
        self.ensure_jobset(b, jobset, parallel)?;
        let first = self.next_number;
        let mut numbers = vec![0u64; specs.len()];
        for (k, &i) in order.iter().enumerate() {
            numbers[i] = first + k as u64;
        }
        let specs: Vec<(usize, pb::RunSpec)> = specs.into_iter().enumerate().collect();
        let mut by_index: BTreeMap<usize, pb::RunSpec> = specs.into_iter().collect();
        for &i in &order {
            let spec = by_index.remove(&i).expect("each index once");
            let mut after: Vec<u64> = local_deps[i].iter().map(|&j| numbers[j]).collect();
            after.extend(&outside_deps[i]);
            // Resolved as `after` resolved it (checked above to be one of them).
            let same_agent_as = match spec.same_agent_as.as_str() {
                "" => None,
                pin => Some(match by_name.get(pin) {
                    Some(&j) => numbers[j],
                    None => self.resolve(b, pin)?,
                }),
            };
            let command = if spec.shell {
                vec![spec.command.join(" ")]
            } else {
                spec.command
            };
            let rec = RunRecord {
                number: numbers[i],
                id: uuid::Uuid::new_v4().to_string(),
                name: names[i].clone(),
                jobset: jobset.to_string(),
                priority: spec.priority,
                spec: RunSpecData {
                    command,
                    shell: spec.shell,
                    env: spec.env.into_iter().collect(),
                    groups: spec.groups,
                    after,
                    retries: spec.retries,
                    max_execution_ms: spec.max_execution_ms,
                    kill_grace_ms: spec.kill_grace_ms,
                    stop_on_disconnect: spec.on_disconnect == pb::OnDisconnect::Stop as i32,
                    job: origin.job.clone(),
                    job_group: origin.job_group.clone(),
                    exclusive: origin.exclusive,
                    trigger_type: if origin.trigger_type.is_empty() {
                        "manual".into()
                    } else {
                        origin.trigger_type.clone()
                    },
                    schedule_time: origin.schedule_time,
                    previous_run_id: origin.previous.as_ref().map(|p| p.0.clone()),
                    previous_exit_code: origin.previous.as_ref().and_then(|p| p.1),
                    max_log_bytes: origin.max_log_bytes,
                    same_agent_as,
                    artifacts: spec.artifacts,
                },
                state: "pending".into(),
                attempt: 1,
                submitted_at: self.now,
                ..Default::default()
            };
            b.insert_run(&rec)?;
            self.counts.added(&rec.jobset, &rec.state);
            self.core.add(
                run_info(&rec),
                1,
                Initial::Pending { not_before: None },
                self.now,
            )?;
            self.ids.insert(rec.id.clone(), rec.number);
            self.changed.push(rec.number);
            self.live.insert(rec.number, rec);
        }
        self.next_number = first + order.len() as u64;
        self.metrics.submitted(order.len());
        Ok(numbers)
    }

    /// Creates a jobset on first use; a non-zero `parallel` sets its limit.
    pub(super) fn ensure_jobset(
        &mut self,
        b: &Batch<'_>,
        name: &str,
        parallel: u32,
    ) -> Result<JobsetRecord> {
        check_name("jobset", name)?;
        let mut js = b.read().jobset(name)?.unwrap_or(JobsetRecord {
            name: name.to_string(),
            parallel,
            created_at: self.now,
        });
        if parallel > 0 {
            js.parallel = parallel;
        }
        b.upsert_jobset(&js)?;
        self.core.set_parallel(name, js.parallel);
        Ok(js)
    }

    /// Makes sure the core knows a run (loading a finished one from the store as done).
    pub(super) fn ensure_known(&mut self, b: &Batch<'_>, number: u64) -> Result<()> {
        if self.core.attempt(number).is_some() {
            return Ok(());
        }
        let rec = self.record(b, number)?;
        let state = final_of(&rec.state).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "run {number} is {} but unknown to the scheduler",
                rec.state
            ))
        })?;
        let mut info = run_info(&rec);
        // Its own dependencies no longer matter: it is finished.
        info.after.clear();
        if state == Final::Success {
            // A `same_agent_as` dependent waits for this agent.
            self.core.set_ran_on(number, &rec.agent);
        }
        self.core
            .add(info, rec.attempt, Initial::Done(state), self.now)?;
        Ok(())
    }
}

impl Engine {
    /// Reloads limits and every unfinished run into the core after a (re)start.
    pub(super) fn recover(&mut self) -> Result<()> {
        let state = &mut self.state;
        self.store.batch(|b| -> Result<()> {
            for js in b.read().jobsets()? {
                state.core.set_parallel(&js.name, js.parallel);
            }
            for (g, max) in b.read().groups()? {
                state.core.set_group_max(&g, Some(max));
            }
            state.next_number = b.read().max_number()? + 1;
            state.load_stored_config(b)?;
            state.load_notify(b)?;
            let runs = b.read().unfinished_runs()?;
            let cancels = b.read().cancel_requests()?;
            for rec in runs {
                for &d in &rec.spec.after {
                    state.ensure_known(b, d)?;
                }
                let initial = match rec.state.as_str() {
                    "pending" => Initial::Pending {
                        not_before: (rec.not_before > 0).then_some(rec.not_before),
                    },
                    _ => Initial::Active {
                        group: (!rec.group.is_empty()).then(|| Arc::from(rec.group.as_str())),
                        cancel_requested: cancels.contains(&(rec.number, rec.attempt)),
                    },
                };
                state
                    .core
                    .add(run_info(&rec), rec.attempt, initial, state.now)?;
                state.ids.insert(rec.id.clone(), rec.number);
                state.live.insert(rec.number, rec);
            }
            // Decisions of recovery itself (e.g. a run skipped because its dependency failed
            // while it was being written) are applied like any others.
            state.apply_decisions(b)?;
            state.counts = RunCounts::load(&b.read().run_counts()?, state.live.values());
            Ok(())
        })?;
        self.state.effects.clear();
        tracing::info!(
            unfinished = self.state.live.len(),
            next_number = self.state.next_number,
            "store loaded"
        );
        Ok(())
    }
}

pub(super) fn run_info(rec: &RunRecord) -> RunInfo {
    RunInfo {
        number: rec.number,
        jobset: Arc::from(rec.jobset.as_str()),
        groups: rec
            .spec
            .groups
            .iter()
            .map(|g| Arc::from(g.as_str()))
            .collect(),
        priority: rec.priority,
        after: rec.spec.after.clone(),
        exclusive_job: rec
            .spec
            .job
            .as_deref()
            .filter(|_| rec.spec.exclusive)
            .map(Arc::from),
        retries: rec.spec.retries,
        stop_on_disconnect: rec
            .spec
            .stop_on_disconnect
            .then(|| super::apply::kill_grace_ms(&rec.spec)),
        same_agent_as: rec.spec.same_agent_as,
    }
}

pub(super) fn final_of(state: &str) -> Option<Final> {
    Some(match state {
        "success" => Final::Success,
        "errored" => Final::Errored,
        "cancelled" => Final::Cancelled,
        "skipped" => Final::Skipped,
        "retired" => Final::Retired,
        _ => return None,
    })
}

/// The job name when none was given: the command's first word, without its directory.
fn default_name(spec: &pb::RunSpec) -> String {
    if !spec.name.is_empty() {
        return spec.name.clone();
    }
    let first = spec.command.first().map(String::as_str).unwrap_or("");
    let word = first.split_whitespace().next().unwrap_or("run");
    word.rsplit('/').next().unwrap_or(word).to_string()
}

/// Kahn's algorithm, stable: runs keep their submitted order where dependencies allow.
/// Err carries one cycle, as indexes, first element repeated at the end.
fn topological(deps: &[Vec<usize>]) -> std::result::Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut indegree: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut dependents = vec![vec![]; n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk dependencies from any leftover node until one repeats: that is a cycle.
    let start = (0..n).find(|&i| indegree[i] > 0).expect("leftover");
    let mut path = vec![start];
    let mut cur = start;
    loop {
        cur = *deps[cur]
            .iter()
            .find(|&&d| indegree[d] > 0)
            .expect("leftover has a leftover dependency");
        if let Some(pos) = path.iter().position(|&p| p == cur) {
            let mut cycle = path[pos..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return Err(cycle);
        }
        path.push(cur);
    }
}
