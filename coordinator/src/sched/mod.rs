//! The scheduler core: plain synchronous code with no I/O. Events go in through methods, the
//! decisions they cause come out of [`Scheduler::take_decisions`]; the caller persists them and
//! only then acts on them (send `Assign`, `Cancel`). Time is a number passed in.
//!
//! Being sans-I/O is what makes the rules (priority order, jobset `parallel`, group `max`,
//! agent slots, dependencies, retries) testable deterministically, including by a seeded
//! random simulation that checks the invariants after every step.

mod affinity;
mod agents;
mod counts;
mod queue;
mod reason;
mod types;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

pub use agents::AgentSlots;
pub use counts::WAITING_CLASSES;
pub use types::*;

use agents::AgentPool;
use queue::{rank, ClassKey, ReadyQueue};

/// Tunables of the core.
#[derive(Debug, Clone)]
pub struct SchedConfig {
    /// First retry waits this long; each further attempt doubles it.
    pub retry_backoff_base_ms: Millis,
    pub retry_backoff_max_ms: Millis,
    /// How long a run whose agent went away may wait for that agent to come back and claim it
    /// before it is treated as lost.
    pub orphan_lease_ms: Millis,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            retry_backoff_base_ms: 1_000,
            retry_backoff_max_ms: 300_000,
            orphan_lease_ms: 15_000,
        }
    }
}

/// Where a run is in its life, as far as scheduling goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Some dependencies have not succeeded yet.
    Waiting {
        unmet: u32,
    },
    /// A retry that may not start before `until`.
    Backoff {
        until: Millis,
    },
    /// In the ready queue.
    Ready,
    /// Assigned or running. `agent` is None while its agent is away (after a coordinator
    /// restart or a dropped stream): the run still holds its resources until the agent claims it
    /// or the orphan lease ends.
    Active {
        agent: Option<AgentId>,
        group: Option<Arc<str>>,
        cancel_requested: bool,
    },
    Done(Final),
}

#[derive(Debug)]
struct RunState {
    info: RunInfo,
    key: ClassKey,
    attempt: u32,
    phase: Phase,
}

/// How a run enters the core: new, or restored from the store after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initial {
    /// Pending; `not_before` holds a retry back-off.
    Pending {
        not_before: Option<Millis>,
    },
    /// Was assigned or running when the coordinator stopped; waits for its agent to claim it.
    /// `cancel_requested`: a cancel was stored before the stop, so the claim re-sends the kill
    /// and the run ends `cancelled`, not queued again.
    Active {
        group: Option<Arc<str>>,
        cancel_requested: bool,
    },
    Done(Final),
}

#[derive(Debug, Default)]
struct JobsetState {
    /// 0 = unlimited.
    parallel: u32,
    running: u32,
}

#[derive(Debug, Default)]
struct GroupState {
    /// None = not defined: an implicit max of 1.
    max: Option<u32>,
    running: u32,
}

impl GroupState {
    fn max(&self) -> u32 {
        self.max.unwrap_or(1)
    }
}

/// Live numbers of one concurrency group, for `rota groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: Arc<str>,
    pub max: u32,
    pub defined: bool,
    pub running: u32,
    pub waiting: u32,
}

#[derive(Debug, Default)]
pub struct Scheduler {
    config: SchedConfig,
    runs: HashMap<RunNo, RunState>,
    dependents: HashMap<RunNo, Vec<RunNo>>,
    queue: ReadyQueue,
    backoff: BTreeSet<(Millis, RunNo)>,
    orphans: BTreeSet<(Millis, RunNo)>,
    orphan_deadline: HashMap<RunNo, Millis>,
    /// `on_disconnect: stop` runs whose agent is lost: they wait (in `orphans`) until their
    /// agent has surely killed them, and cannot be claimed back.
    fenced: HashSet<RunNo>,
    agents: AgentPool,
    jobsets: HashMap<Arc<str>, JobsetState>,
    groups: HashMap<Arc<str>, GroupState>,
    exclusive_running: HashMap<Arc<str>, u32>,
    decisions: Vec<Decision>,
    /// Runs in `Phase::Waiting`, kept as phases change so metrics need not count them.
    waiting: usize,
    /// Orphan leases that ran out (their agent never came back), since start.
    orphan_leases_expired: u64,
    /// `same_agent_as` runs and the agent names they wait for.
    pins: affinity::Pins,
    /// The latest `now` any event brought, for deadlines set where no `now` is passed.
    clock: Millis,
}

impl Scheduler {
    pub fn new(config: SchedConfig) -> Self {
        Scheduler {
            config,
            ..Default::default()
        }
    }

    /// Decisions taken since the last call, in order.
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }

    // ----- runs -------------------------------------------------------------------------

    /// Adds a run. A dependency must already be known (added earlier, or restored as done).
    /// A run whose dependency already failed is skipped at once.
    pub fn add(
        &mut self,
        info: RunInfo,
        attempt: u32,
        initial: Initial,
        now: Millis,
    ) -> Result<(), SchedError> {
        if self.runs.contains_key(&info.number) {
            return Err(SchedError::Duplicate(info.number));
        }
        self.clock = self.clock.max(now);
        if let Some(dep) = info.after.iter().find(|d| !self.runs.contains_key(d)) {
            return Err(SchedError::UnknownRun(*dep));
        }
        self.jobsets.entry(info.jobset.clone()).or_default();
        let number = info.number;
        let key = ClassKey::of(&info);
        for dep in &info.after {
            self.dependents.entry(*dep).or_default().push(number);
        }
        self.runs.insert(
            number,
            RunState {
                info,
                key,
                attempt,
                phase: Phase::Done(Final::Skipped),
            },
        );
        match initial {
            Initial::Done(state) => self.set_phase(number, Phase::Done(state)),
            Initial::Active {
                group,
                cancel_requested,
            } => {
                self.set_phase(
                    number,
                    Phase::Active {
                        agent: None,
                        group,
                        cancel_requested,
                    },
                );
                self.orphan(number, now);
            }
            Initial::Pending { not_before } => self.make_pending(number, not_before, now),
        }
        Ok(())
    }

    /// Cancels a run: a pending one ends at once, a running one is killed by its agent.
    pub fn cancel(&mut self, run: RunNo) -> Result<(), SchedError> {
        let st = self.run(run)?;
        match st.phase.clone() {
            Phase::Done(f) => Err(SchedError::WrongState {
                run,
                state: f.as_str(),
                expected: "pending or running",
                verb: "cancelled",
            }),
            Phase::Active { agent, group, .. } => {
                let attempt = st.attempt;
                if let Some(agent) = agent {
                    self.decisions.push(Decision::Kill {
                        run,
                        attempt,
                        agent,
                    });
                }
                self.runs.get_mut(&run).expect("checked").phase = Phase::Active {
                    agent,
                    group,
                    cancel_requested: true,
                };
                Ok(())
            }
            _ => {
                self.finish(run, Final::Cancelled, "cancelled while pending".into());
                Ok(())
            }
        }
    }

    /// Queues an errored or cancelled run again as a new attempt; its skipped dependents
    /// become pending again too.
    pub fn retry(&mut self, run: RunNo, now: Millis) -> Result<u32, SchedError> {
        self.check_retry(run)?;
        let attempt = self.run(run)?.attempt + 1;
        self.runs.get_mut(&run).expect("checked").attempt = attempt;
        self.decisions.push(Decision::Reopen { run, attempt });
        self.make_pending(run, None, now);
        self.reopen_skipped_dependents(run, now);
        Ok(attempt)
    }

    /// Whether [`Core::retry`] would accept `run`, changing nothing: a command retrying
    /// several runs checks them all first.
    pub fn check_retry(&self, run: RunNo) -> Result<(), SchedError> {
        match self.run(run)?.phase {
            Phase::Done(Final::Errored | Final::Cancelled) => {}
            Phase::Done(f) => {
                return Err(SchedError::WrongState {
                    run,
                    state: f.as_str(),
                    expected: "errored or cancelled",
                    verb: "retried",
                })
            }
            _ => {
                return Err(SchedError::WrongState {
                    run,
                    state: "unfinished",
                    expected: "errored or cancelled",
                    verb: "retried",
                })
            }
        }
        Ok(())
    }

    /// Gives up on an errored run for good.
    pub fn retire(&mut self, run: RunNo) -> Result<(), SchedError> {
        match self.run(run)?.phase {
            Phase::Done(Final::Errored) => {
                self.set_phase(run, Phase::Done(Final::Retired));
                self.decisions.push(Decision::Finish {
                    run,
                    state: Final::Retired,
                    reason: String::new(),
                });
                Ok(())
            }
            ref p => Err(SchedError::WrongState {
                run,
                state: phase_name(p),
                expected: "errored",
                verb: "retired",
            }),
        }
    }

    /// An agent's report that an attempt ended. Reports for any attempt but the current,
    /// active one are refused (fencing), so a result is recorded once.
    pub fn finished(
        &mut self,
        run: RunNo,
        attempt: u32,
        outcome: Outcome,
        now: Millis,
    ) -> Result<(), SchedError> {
        let st = self.run(run)?;
        let current = st.attempt;
        let Phase::Active {
            cancel_requested, ..
        } = st.phase
        else {
            return Err(SchedError::StaleAttempt {
                run,
                attempt,
                current,
            });
        };
        if attempt != current {
            return Err(SchedError::StaleAttempt {
                run,
                attempt,
                current,
            });
        }
        self.clock = self.clock.max(now);
        let outcome = if cancel_requested && outcome == Outcome::Failed {
            Outcome::Cancelled
        } else {
            outcome
        };
        match outcome {
            Outcome::Success => {
                self.note_ran_on(run);
                self.finish(run, Final::Success, String::new())
            }
            Outcome::Cancelled if cancel_requested => {
                self.finish(run, Final::Cancelled, String::new())
            }
            // Nobody here asked for it: the agent stopped the run itself (its drain deadline
            // passed, or it lost contact and the run is `on_disconnect: stop`; the process is
            // dead before the agent reports). The run is not at fault, so it goes back to the
            // queue at once as a new attempt, for another agent.
            Outcome::Cancelled => {
                let attempt = current + 1;
                self.runs.get_mut(&run).expect("checked").attempt = attempt;
                self.set_phase(run, Phase::Ready);
                self.decisions.push(Decision::Requeue {
                    run,
                    attempt,
                    not_before: now,
                    reason: "interrupted: its agent stopped it (drain, or on_disconnect: stop)"
                        .into(),
                });
            }
            Outcome::Failed => self.fail(run, String::new(), now),
        }
        Ok(())
    }

    /// The agent refused an assignment (it is draining): the same attempt goes back to the queue,
    /// unless it was cancelled meanwhile: then it ends cancelled rather than start elsewhere.
    pub fn unassign(&mut self, run: RunNo, attempt: u32) -> Result<(), SchedError> {
        let st = self.run(run)?;
        if st.attempt != attempt || !matches!(st.phase, Phase::Active { .. }) {
            return Err(SchedError::StaleAttempt {
                run,
                attempt,
                current: st.attempt,
            });
        }
        if matches!(
            st.phase,
            Phase::Active {
                cancel_requested: true,
                ..
            }
        ) {
            self.finish(run, Final::Cancelled, "cancelled before it started".into());
        } else {
            self.set_phase(run, Phase::Ready);
        }
        Ok(())
    }

    /// The current attempt of a run, if the core knows the run.
    pub fn attempt(&self, run: RunNo) -> Option<u32> {
        self.runs.get(&run).map(|r| r.attempt)
    }

    /// Whether `attempt` is the run's current, active attempt (for fencing log chunks).
    pub fn is_current(&self, run: RunNo, attempt: u32) -> bool {
        self.runs
            .get(&run)
            .is_some_and(|r| r.attempt == attempt && matches!(r.phase, Phase::Active { .. }))
    }

    /// The agent a run is active on.
    pub fn agent_of(&self, run: RunNo) -> Option<AgentId> {
        match self.runs.get(&run)?.phase {
            Phase::Active { agent, .. } => agent,
            _ => None,
        }
    }

    /// Forgets a finished run that nothing depends on any more (memory bound for long-lived
    /// coordinators). Returns false if the run is unfinished or unknown.
    pub fn forget(&mut self, run: RunNo) -> bool {
        match self.runs.get(&run) {
            Some(RunState {
                phase: Phase::Done(_),
                ..
            }) => {}
            _ => return false,
        }
        let pending_dependents = self.dependents.get(&run).is_some_and(|ds| {
            ds.iter().any(|d| {
                self.runs
                    .get(d)
                    .is_some_and(|s| !matches!(s.phase, Phase::Done(_)))
            })
        });
        if pending_dependents {
            return false;
        }
        self.runs.remove(&run);
        self.dependents.remove(&run);
        self.forget_pins(run);
        true
    }

    // ----- limits -----------------------------------------------------------------------

    /// Sets a jobset's `parallel` limit (0 = unlimited). Lowering never stops running runs.
    pub fn set_parallel(&mut self, jobset: &str, parallel: u32) {
        let js = self.jobsets.entry(Arc::from(jobset)).or_default();
        js.parallel = parallel;
    }

    /// Sets a group's `max` (None: undefined, implicit 1). Lowering never stops running runs.
    pub fn set_group_max(&mut self, group: &str, max: Option<u32>) {
        self.groups.entry(Arc::from(group)).or_default().max = max;
    }

    // ----- agents -----------------------------------------------------------------------

    pub fn agent_connected(&mut self, id: AgentId, slots: u32, groups: Vec<Arc<str>>) {
        self.agents.insert(id, slots, groups);
    }

    /// A reconnected agent still holds `attempt` of `run`. Returns true when that is the
    /// current attempt and the run was waiting for its agent: it is now this agent's again.
    /// False means the agent must kill it.
    pub fn claim(&mut self, agent: AgentId, run: RunNo, attempt: u32) -> bool {
        let Some(st) = self.runs.get(&run) else {
            return false;
        };
        if self.fenced.contains(&run) {
            // Its agent was lost and is stopping it: too late to take it back.
            return false;
        }
        let Phase::Active {
            agent: holder,
            group,
            cancel_requested,
        } = st.phase.clone()
        else {
            return false;
        };
        if holder.is_some() {
            // Already claimed (a repeated Hello on the same session) or held by someone else.
            return holder == Some(agent) && st.attempt == attempt;
        }
        if st.attempt != attempt || self.agents.get(agent).is_none() {
            return false;
        }
        if let Some(d) = self.orphan_deadline.remove(&run) {
            self.orphans.remove(&(d, run));
        }
        self.agents.update(agent, |a| a.running.insert(run));
        self.runs.get_mut(&run).expect("checked").phase = Phase::Active {
            agent: Some(agent),
            group,
            cancel_requested,
        };
        if cancel_requested {
            self.decisions.push(Decision::Kill {
                run,
                attempt,
                agent,
            });
        }
        true
    }

    /// The agent's stream ended. Its runs keep their resources for the orphan lease, waiting
    /// for the agent to reconnect and claim them.
    pub fn agent_disconnected(&mut self, id: AgentId, now: Millis) {
        self.clock = self.clock.max(now);
        self.pins_agent_gone(id, false, now);
        let Some(agent) = self.agents.remove(id) else {
            return;
        };
        for run in agent.running {
            if let Some(st) = self.runs.get_mut(&run) {
                if let Phase::Active { agent, .. } = &mut st.phase {
                    *agent = None;
                }
                self.orphan(run, now);
            }
        }
    }

    /// The agent is gone for good (its lease expired): its runs are retried when retries
    /// remain, else errored with reason `agent lost`; `on_disconnect: stop` runs only once their
    /// agent has surely stopped them (see [`RunInfo::stop_on_disconnect`]).
    pub fn agent_lost(&mut self, id: AgentId, now: Millis) {
        self.clock = self.clock.max(now);
        self.pins_agent_gone(id, true, now);
        let Some(agent) = self.agents.remove(id) else {
            return;
        };
        let mut runs: Vec<_> = agent.running.into_iter().collect();
        runs.sort_unstable();
        for run in runs {
            self.lose_or_fence(run, now);
        }
    }

    pub fn drain(&mut self, id: AgentId) {
        self.agents.update(id, |a| a.draining = true);
    }

    pub fn agent(&self, id: AgentId) -> Option<&AgentSlots> {
        self.agents.get(id)
    }

    // ----- time -------------------------------------------------------------------------

    /// Ends back-offs and orphan leases due at `now`.
    pub fn tick(&mut self, now: Millis) {
        self.clock = self.clock.max(now);
        self.pins_tick(now);
        while let Some(&(t, run)) = self.backoff.first() {
            if t > now {
                break;
            }
            self.backoff.pop_first();
            if matches!(
                self.runs.get(&run).map(|r| &r.phase),
                Some(Phase::Backoff { .. })
            ) {
                self.set_phase(run, Phase::Ready);
            }
        }
        while let Some(&(t, run)) = self.orphans.first() {
            if t > now {
                break;
            }
            self.orphans.pop_first();
            self.orphan_deadline.remove(&run);
            if matches!(
                self.runs.get(&run).map(|r| &r.phase),
                Some(Phase::Active { agent: None, .. })
            ) {
                self.orphan_leases_expired += 1;
                self.lose_or_fence(run, now);
            }
        }
    }

    /// The coordinator itself was stalled for `by` (it did not run, see `crate::awake`): no
    /// agent could reach it meanwhile, so every orphan lease waits that much longer.
    pub fn extend_leases(&mut self, by: Millis) {
        if by == 0 {
            return;
        }
        self.orphans = std::mem::take(&mut self.orphans)
            .into_iter()
            .map(|(t, run)| (t.saturating_add(by), run))
            .collect();
        for t in self.orphan_deadline.values_mut() {
            *t = t.saturating_add(by);
        }
    }

    /// When `tick` next has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        let b = self.backoff.first().map(|(t, _)| *t);
        let o = self.orphans.first().map(|(t, _)| *t);
        b.into_iter()
            .chain(o)
            .chain(self.pins_next_deadline())
            .min()
    }

    // ----- dispatch ---------------------------------------------------------------------

    /// Starts every run that may start now, best-ranked first. Only the head of each class is
    /// examined: a class whose head cannot start is done for this cycle, since resources only
    /// shrink while dispatching.
    pub fn dispatch(&mut self) -> usize {
        // Pinned runs first: only their agent can run them.
        let pinned = self.dispatch_pinned();
        let mut heap: BinaryHeap<Reverse<(queue::Rank, ClassKey)>> = self
            .queue
            .heads()
            .map(|(k, r)| Reverse((r, k.clone())))
            .collect();
        let mut started = 0;
        while let Some(Reverse((rank, key))) = heap.pop() {
            let Some((agent, group)) = self.placement(&key) else {
                continue;
            };
            let run = rank.1;
            self.queue.remove(&key, &rank);
            self.start(run, agent, group);
            started += 1;
            if let Some(next) = self.queue.head(&key) {
                heap.push(Reverse((next, key)));
            }
        }
        pinned + started
    }

    /// Where the head of a class could start now: an agent and the group it counts against.
    fn placement(&self, key: &ClassKey) -> Option<(AgentId, Option<Arc<str>>)> {
        if !self.limits_allow(key) {
            return None;
        }
        if key.groups.is_empty() {
            return self.agents.best_free(None).map(|a| (a, None));
        }
        let mut best: Option<(u32, u32, &Arc<str>, AgentId)> = None;
        for g in &key.groups {
            let (running, max) = self.groups.get(g).map_or((0, 1), |s| (s.running, s.max()));
            if running >= max {
                continue;
            }
            let Some(agent) = self.agents.best_free(Some(g)) else {
                continue;
            };
            // Least loaded (running/max) first, compared without division; ties by name.
            let better = match best {
                None => true,
                Some((br, bm, bg, _)) => {
                    let (a, b) = (running as u64 * bm as u64, br as u64 * max as u64);
                    a < b || (a == b && g < bg)
                }
            };
            if better {
                best = Some((running, max, g, agent));
            }
        }
        best.map(|(_, _, g, a)| (a, Some(g.clone())))
    }

    /// Whether the jobset's `parallel` and the job's exclusivity let one more run of the class
    /// start (groups and agents aside).
    fn limits_allow(&self, key: &ClassKey) -> bool {
        let Some(js) = self.jobsets.get(&key.jobset) else {
            return false;
        };
        if js.parallel > 0 && js.running >= js.parallel {
            return false;
        }
        match &key.exclusive_job {
            Some(job) => self.exclusive_running.get(job).copied().unwrap_or(0) == 0,
            None => true,
        }
    }

    fn start(&mut self, run: RunNo, agent: AgentId, group: Option<Arc<str>>) {
        let attempt = self.runs[&run].attempt;
        self.set_phase(
            run,
            Phase::Active {
                agent: Some(agent),
                group: group.clone(),
                cancel_requested: false,
            },
        );
        self.decisions.push(Decision::Assign {
            run,
            attempt,
            agent,
            group,
        });
    }

    // ----- internals --------------------------------------------------------------------

    fn run(&self, run: RunNo) -> Result<&RunState, SchedError> {
        self.runs.get(&run).ok_or(SchedError::UnknownRun(run))
    }

    /// The one place a phase changes, so every counter and index follows it.
    fn set_phase(&mut self, run: RunNo, phase: Phase) {
        let st = self.runs.get_mut(&run).expect("known run");
        let old = std::mem::replace(&mut st.phase, phase.clone());
        let r = rank(st.info.priority, run);
        let key = st.key.clone();
        let jobset = st.info.jobset.clone();
        let exclusive = st.info.exclusive_job.clone();
        self.waiting += usize::from(matches!(phase, Phase::Waiting { .. }));
        self.waiting -= usize::from(matches!(old, Phase::Waiting { .. }));
        let pinned = st.info.same_agent_as.is_some();
        match old {
            Phase::Ready if pinned => self.pin_unready(run),
            Phase::Ready => {
                self.queue.remove(&key, &r);
            }
            Phase::Backoff { until } => {
                self.backoff.remove(&(until, run));
            }
            Phase::Active { agent, group, .. } => {
                if let Some(a) = agent {
                    self.agents.update(a, |a| a.running.remove(&run));
                }
                if let Some(d) = self.orphan_deadline.remove(&run) {
                    self.orphans.remove(&(d, run));
                }
                self.fenced.remove(&run);
                if let Some(g) = group {
                    if let Some(gs) = self.groups.get_mut(&g) {
                        gs.running -= 1;
                    }
                }
                if let Some(js) = self.jobsets.get_mut(&jobset) {
                    js.running -= 1;
                }
                if let Some(job) = &exclusive {
                    if let Some(n) = self.exclusive_running.get_mut(job) {
                        *n -= 1;
                    }
                }
            }
            Phase::Waiting { .. } | Phase::Done(_) => {}
        }
        match phase {
            Phase::Ready if pinned => {
                if let Some(reason) = self.pin_ready(run) {
                    self.finish(run, Final::Errored, reason);
                }
            }
            Phase::Ready => self.queue.push(key, r),
            Phase::Backoff { until } => {
                self.backoff.insert((until, run));
            }
            Phase::Active { agent, group, .. } => {
                if let Some(a) = agent {
                    self.agents.update(a, |a| a.running.insert(run));
                }
                if let Some(g) = group {
                    self.groups.entry(g).or_default().running += 1;
                }
                self.jobsets.entry(jobset).or_default().running += 1;
                if let Some(job) = exclusive {
                    *self.exclusive_running.entry(job).or_default() += 1;
                }
            }
            Phase::Waiting { .. } | Phase::Done(_) => {}
        }
    }

    /// Puts a run into Waiting, Backoff or Ready according to its dependencies; skips it if
    /// a dependency can no longer succeed.
    fn make_pending(&mut self, run: RunNo, not_before: Option<Millis>, now: Millis) {
        let after = self.runs[&run].info.after.clone();
        let mut unmet = 0;
        let mut failed = None;
        for dep in &after {
            match self.runs.get(dep).map(|d| &d.phase) {
                Some(Phase::Done(Final::Success)) => {}
                Some(Phase::Done(_)) => failed = Some(*dep),
                _ => unmet += 1,
            }
        }
        if let Some(dep) = failed {
            self.set_phase(run, Phase::Done(Final::Skipped));
            self.decisions.push(Decision::Finish {
                run,
                state: Final::Skipped,
                reason: format!("run {dep} did not succeed"),
            });
            self.skip_dependents(run);
        } else if unmet > 0 {
            self.set_phase(run, Phase::Waiting { unmet });
        } else {
            match not_before {
                Some(t) if t > now => self.set_phase(run, Phase::Backoff { until: t }),
                _ => self.set_phase(run, Phase::Ready),
            }
        }
    }

    fn finish(&mut self, run: RunNo, state: Final, reason: String) {
        self.set_phase(run, Phase::Done(state));
        self.decisions.push(Decision::Finish { run, state, reason });
        if state == Final::Success {
            for d in self.dependents.get(&run).cloned().unwrap_or_default() {
                if let Some(Phase::Waiting { unmet }) = self.runs.get(&d).map(|s| s.phase.clone()) {
                    if unmet <= 1 {
                        self.set_phase(d, Phase::Ready);
                    } else {
                        self.set_phase(d, Phase::Waiting { unmet: unmet - 1 });
                    }
                }
            }
        } else {
            self.skip_dependents(run);
        }
    }

    /// Every unfinished run that depends (transitively) on `run` is skipped.
    fn skip_dependents(&mut self, run: RunNo) {
        let mut stack = vec![run];
        while let Some(r) = stack.pop() {
            for d in self.dependents.get(&r).cloned().unwrap_or_default() {
                let Some(st) = self.runs.get(&d) else {
                    continue;
                };
                if matches!(
                    st.phase,
                    Phase::Waiting { .. } | Phase::Ready | Phase::Backoff { .. }
                ) {
                    self.set_phase(d, Phase::Done(Final::Skipped));
                    self.decisions.push(Decision::Finish {
                        run: d,
                        state: Final::Skipped,
                        reason: format!("run {r} did not succeed"),
                    });
                    stack.push(d);
                }
            }
        }
    }

    /// After a retry: skipped dependents whose dependencies may all still succeed come back.
    fn reopen_skipped_dependents(&mut self, run: RunNo, now: Millis) {
        let mut stack = vec![run];
        while let Some(r) = stack.pop() {
            for d in self.dependents.get(&r).cloned().unwrap_or_default() {
                let Some(st) = self.runs.get(&d) else {
                    continue;
                };
                if st.phase != Phase::Done(Final::Skipped) {
                    continue;
                }
                let blocked = st.info.after.iter().any(|dep| {
                    matches!(self.runs.get(dep).map(|s| &s.phase), Some(Phase::Done(f)) if *f != Final::Success)
                });
                if blocked {
                    continue;
                }
                let attempt = st.attempt;
                self.decisions.push(Decision::Reopen { run: d, attempt });
                self.make_pending(d, None, now);
                stack.push(d);
            }
        }
    }

    /// The current attempt failed: retry it after a back-off, or error the run.
    fn fail(&mut self, run: RunNo, reason: String, now: Millis) {
        let st = &self.runs[&run];
        if st.attempt <= st.info.retries {
            let attempt = st.attempt + 1;
            let shift = (st.attempt - 1).min(20);
            let delay =
                (self.config.retry_backoff_base_ms << shift).min(self.config.retry_backoff_max_ms);
            let not_before = now + delay;
            self.runs.get_mut(&run).expect("known").attempt = attempt;
            self.set_phase(run, Phase::Backoff { until: not_before });
            self.decisions.push(Decision::Requeue {
                run,
                attempt,
                not_before,
                reason,
            });
        } else {
            self.finish(run, Final::Errored, reason);
        }
    }

    fn lose(&mut self, run: RunNo, now: Millis) {
        let cancelled = matches!(
            self.runs.get(&run).map(|r| &r.phase),
            Some(Phase::Active {
                cancel_requested: true,
                ..
            })
        );
        if cancelled {
            self.finish(run, Final::Cancelled, "agent lost".into());
        } else {
            self.fail(run, "agent lost".into(), now);
        }
    }

    /// The run's agent is lost (its lease ran out). A default run is lost with it. An
    /// `on_disconnect: stop` run is fenced instead: its agent stops it once it has heard nothing
    /// for a lease (it cannot have heard more than the coordinator did), and SIGKILLs it a kill
    /// grace later, so the run keeps its place, unclaimable, for a lease plus that grace (the
    /// extra lease is margin for a late timer on a loaded agent) and is lost only then.
    fn lose_or_fence(&mut self, run: RunNo, now: Millis) {
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        let grace = match st.info.stop_on_disconnect {
            Some(grace) if !self.fenced.contains(&run) => grace,
            _ => return self.lose(run, now),
        };
        if let Phase::Active { agent, .. } = &mut st.phase {
            if let Some(a) = agent.take() {
                self.agents.update(a, |a| a.running.remove(&run));
            }
        }
        self.fenced.insert(run);
        self.orphan_for(run, now, self.config.orphan_lease_ms.saturating_add(grace));
    }

    fn orphan(&mut self, run: RunNo, now: Millis) {
        self.orphan_for(run, now, self.config.orphan_lease_ms);
    }

    fn orphan_for(&mut self, run: RunNo, now: Millis, lease: Millis) {
        let deadline = now.saturating_add(lease);
        if let Some(old) = self.orphan_deadline.insert(run, deadline) {
            self.orphans.remove(&(old, run));
        }
        self.orphans.insert((deadline, run));
    }
}

fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Waiting { .. } | Phase::Backoff { .. } | Phase::Ready => "pending",
        Phase::Active { .. } => "running",
        Phase::Done(f) => f.as_str(),
    }
}
