//! The simulation's model and its checks: each decision is checked against the model as it is
//! applied (the invariants that hold at the moment of an Assign), then the whole state after
//! the step (counters, placements, starvation, deadlines).

use std::collections::BTreeSet;

use super::*;

impl Sim {
    /// Checks one decision against the model and applies it.
    pub(super) fn apply(&mut self, d: Decision) {
        let (Decision::Assign { run, .. }
        | Decision::Kill { run, .. }
        | Decision::Requeue { run, .. }
        | Decision::Finish { run, .. }
        | Decision::Reopen { run, .. }) = d;
        self.touched.insert(run);
        self.tally(match &d {
            Decision::Assign { .. } => "assign",
            Decision::Kill { .. } => "kill",
            Decision::Requeue { .. } => "requeue",
            Decision::Finish { state, .. } => match state {
                Final::Success => "success",
                Final::Errored => "errored",
                Final::Cancelled => "cancelled",
                Final::Skipped => "skipped",
                Final::Retired => "retired",
            },
            Decision::Reopen { .. } => "reopen",
        });
        match d {
            Decision::Assign {
                run,
                attempt,
                agent,
                group,
            } => {
                let (alternatives, better) = self.check_assign(run, attempt, agent, &group);
                *self.stats.entry("group choices checked").or_default() += alternatives;
                *self.stats.entry("better-ranked runs checked").or_default() += better;
                let m = self.live[&agent];
                self.machines[m].held.insert((run, attempt));
                let r = self.run_mut(run);
                r.assigned = attempt;
                r.st = St::Active {
                    agent,
                    group,
                    cancel: false,
                    orphan_until: None,
                    fenced: false,
                };
            }
            Decision::Kill {
                run,
                attempt,
                agent,
            } => {
                let r = &self.runs[&run];
                assert!(
                    matches!(r.st, St::Active { agent: a, cancel: true, orphan_until: None, .. } if a == agent),
                    "kill of run {run} on agent {agent}, model {:?}",
                    r.st
                );
                assert_eq!(attempt, r.attempt, "kill of run {run}: wrong attempt");
                let m = self.live[&agent];
                self.machines[m].killing.insert((run, attempt));
                self.kills.insert(run);
            }
            Decision::Requeue {
                run,
                attempt,
                not_before,
                ..
            } => {
                let now = self.now;
                let interrupted = self.interrupted.contains(&run);
                let r = self.run_mut(run);
                assert!(
                    matches!(r.st, St::Active { cancel: false, .. }),
                    "requeue of run {run}, model {:?}",
                    r.st
                );
                assert_eq!(attempt, r.attempt + 1, "requeue of run {run}: attempt");
                if interrupted {
                    // Not the run's fault: no retry used, no back-off.
                    assert_eq!(not_before, now, "requeue of interrupted run {run}");
                } else {
                    assert!(
                        r.attempt <= r.info.retries,
                        "run {run} requeued after attempt {} with {} retries",
                        r.attempt,
                        r.info.retries
                    );
                    let delay = (BACKOFF_BASE << (r.attempt - 1).min(20)).min(BACKOFF_MAX);
                    assert_eq!(not_before, now + delay, "back-off of run {run}");
                }
                r.attempt = attempt;
                r.st = St::Pending { not_before };
            }
            Decision::Finish { run, state, .. } => {
                let skip_ok = self.dependency_failed(run);
                let r = self.run_mut(run);
                let ok = match (&r.st, state) {
                    (St::Done(Final::Errored), Final::Retired) => true,
                    (St::Done(_), _) | (_, Final::Retired) => false,
                    (St::Active { .. }, Final::Success) => true,
                    (St::Active { cancel: false, .. }, Final::Errored) => {
                        r.attempt > r.info.retries
                    }
                    (St::Active { .. } | St::Pending { .. }, Final::Cancelled) => true,
                    (St::Pending { .. }, Final::Skipped) => skip_ok,
                    _ => false,
                };
                assert!(ok, "run {run} finished {state:?}, model {:?}", r.st);
                r.st = St::Done(state);
                r.finishes += 1;
                self.unfinished.remove(&run);
            }
            Decision::Reopen { run, attempt } => {
                let r = self.run_mut(run);
                let want = match r.st {
                    St::Done(Final::Errored | Final::Cancelled) => r.attempt + 1,
                    St::Done(Final::Skipped) => r.attempt,
                    ref st => panic!("reopen of run {run}, model {st:?}"),
                };
                assert_eq!(attempt, want, "reopen of run {run}: attempt");
                r.attempt = attempt;
                r.st = St::Pending { not_before: 0 };
                r.reopens += 1;
                self.unfinished.insert(run);
            }
        }
    }

    /// The rules that must hold at the moment a run starts.
    /// Returns how many other groups and better-ranked runs it compared with.
    fn check_assign(
        &self,
        run: RunNo,
        attempt: u32,
        agent: AgentId,
        group: &Option<Arc<str>>,
    ) -> (u64, u64) {
        let (mut alternatives, mut better) = (0, 0);
        let loads = self.loads();
        let r = &self.runs[&run];
        assert!(
            self.is_ready(r),
            "assign of run {run} that is not ready: {:?}",
            r.st
        );
        assert_eq!(attempt, r.attempt, "assign of run {run}: attempt");
        assert!(
            attempt > r.assigned,
            "run {run} attempt {attempt} assigned twice"
        );
        let Some(&m) = self.live.get(&agent) else {
            panic!("run {run} assigned to agent {agent}, which is not connected");
        };
        let mach = &self.machines[m];
        assert!(
            !mach.draining,
            "run {run} assigned to draining agent {agent}"
        );
        let busy = count(&loads.agent, &agent);
        assert!(
            busy < mach.slots,
            "run {run} assigned to agent {agent} with {busy}/{} slots busy",
            mach.slots
        );
        let js = &r.info.jobset;
        let p = self.parallel.get(js).copied().unwrap_or(0);
        let running = count(&loads.jobset, js);
        assert!(
            p == 0 || running < p,
            "run {run} started in jobset {js} at {running}/{p}"
        );
        if let Some(job) = &r.info.exclusive_job {
            assert_eq!(
                count(&loads.job, job),
                0,
                "run {run}: job {job} already running"
            );
        }
        match group {
            None => assert!(
                r.info.groups.is_empty(),
                "run {run} with groups {:?} assigned without a group",
                r.info.groups
            ),
            Some(g) => {
                assert!(r.info.groups.contains(g), "run {run} counted against {g}");
                assert!(mach.groups.contains(g), "agent {agent} does not serve {g}");
                let (load, max) = (count(&loads.group, g), self.max_of(g));
                assert!(load < max, "run {run} started in group {g} at {load}/{max}");
                // Least loaded (running/max) first, ties by name.
                for h in &r.info.groups {
                    if h == g || !self.group_usable(h, &loads) {
                        continue;
                    }
                    alternatives += 1;
                    let lh = u64::from(count(&loads.group, h)) * u64::from(max);
                    let lg = u64::from(load) * u64::from(self.max_of(h));
                    assert!(
                        lg < lh || (lg == lh && g < h),
                        "run {run} counted against {g} ({load}/{max}) while {h} is less loaded"
                    );
                }
            }
        }
        // Highest priority, then lowest number: every better-ranked ready run cannot start.
        let room = self.room(&loads);
        for &s in &self.unfinished {
            let sr = &self.runs[&s];
            if s != run && self.is_ready(sr) && rank(&sr.info) < rank(&r.info) {
                better += 1;
                assert!(
                    !self.placeable(&sr.info, &loads, &room),
                    "run {run} started before the better-ranked run {s}, which could start"
                );
            }
        }
        (alternatives, better)
    }

    pub(super) fn check_wants(&mut self) {
        for (run, want) in std::mem::take(&mut self.wants) {
            let r = &self.runs[&run];
            let ok = match want {
                Want::Done(f) => r.st == St::Done(f),
                Want::Requeued(a) => r.attempt == a && matches!(r.st, St::Pending { .. }),
                Want::Interrupted(a) => {
                    r.attempt == a && matches!(r.st, St::Pending { .. } | St::Active { .. })
                }
                Want::Kill(k) => self.kills.contains(&run) == k,
                Want::Reopened(a) => {
                    r.attempt == a
                        && !matches!(
                            r.st,
                            St::Done(Final::Success | Final::Errored | Final::Cancelled)
                        )
                }
            };
            assert!(ok, "run {run} should be {want:?}, model {:?}", r.st);
            self.touched.insert(run);
        }
        self.kills.clear();
        self.interrupted.clear();
    }

    /// The core agrees with the model, and no run waits while it could start.
    pub(super) fn check_state(&mut self) {
        let loads = self.loads();
        // Every run each 16 steps; in between the runs that changed and those that hold
        // resources (the checks cost more than the core in a debug build).
        let touched = std::mem::take(&mut self.touched);
        let all = self.step.is_multiple_of(16);
        for &run in self.unfinished.iter().chain(&touched) {
            if all || touched.contains(&run) || matches!(self.runs[&run].st, St::Active { .. }) {
                self.check_run(run);
            }
        }
        for g in GROUPS {
            let g = Arc::from(g);
            let want = count(&loads.group, &g);
            assert_eq!(self.sched.group_running(&g), want, "running in group {g}");
            if want > self.max_of(&g) {
                self.tally("steps with a group above a lowered max");
            }
        }
        for js in JOBSETS {
            let js = Arc::from(js);
            let want = count(&loads.jobset, &js);
            assert_eq!(
                self.sched.jobset_running(&js),
                want,
                "running in jobset {js}"
            );
            let p = self.parallel.get(&js).copied().unwrap_or(0);
            if p > 0 && want > p {
                self.tally("steps with a jobset above a lowered parallel");
            }
        }
        assert_eq!(
            self.sched.agents.iter().count(),
            self.live.len(),
            "connected agents"
        );
        for (&id, &m) in &self.live {
            let mach = &self.machines[m];
            let a = self.sched.agent(id).expect("a connected agent is known");
            let running: BTreeSet<RunNo> = a.running.iter().copied().collect();
            let empty = BTreeSet::new();
            let model = loads.on_agent.get(&id).unwrap_or(&empty);
            let numbers: BTreeSet<RunNo> = model.iter().map(|(n, _)| *n).collect();
            assert_eq!(running, numbers, "runs on agent {id}");
            assert_eq!(&mach.held, model, "attempts machine {m} (agent {id}) holds");
            assert_eq!((a.slots, a.draining), (mach.slots, mach.draining));
        }
        let room = self.room(&loads);
        let (mut ready, mut blocked_with_free_slot) = (0, 0);
        let mut deadline: Option<Millis> = None;
        for &run in &self.unfinished {
            let r = &self.runs[&run];
            let due = match r.st {
                St::Pending { not_before } if not_before > self.now => Some(not_before),
                St::Active {
                    orphan_until: Some(t),
                    ..
                } => Some(t),
                _ => None,
            };
            if let Some(t) = due {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
            if self.is_ready(r) {
                ready += 1;
                if room.any_agent {
                    blocked_with_free_slot += 1;
                }
                assert!(
                    !self.placeable(&r.info, &loads, &room),
                    "run {run} waits although it could start: {:?}",
                    self.sched.waiting_reason(run)
                );
            }
        }
        *self.stats.entry("waiting ready runs checked").or_default() += ready as u64;
        *self
            .stats
            .entry("of which while some agent had a free slot")
            .or_default() += blocked_with_free_slot;
        assert_eq!(self.sched.ready_len(), ready, "ready runs");
        assert_eq!(self.sched.next_deadline(), deadline, "next deadline");
    }

    fn check_run(&self, run: RunNo) {
        let r = &self.runs[&run];
        let s = &self.sched;
        assert_eq!(s.attempt(run), Some(r.attempt), "attempt of run {run}");
        let done = matches!(r.st, St::Done(_));
        assert_eq!(s.is_done(run), done, "run {run} done, model {:?}", r.st);
        let (holder, active) = match r.st {
            St::Active {
                agent,
                orphan_until,
                ..
            } => {
                if let Some(t) = orphan_until {
                    assert!(t > self.now, "run {run} outlived its orphan lease");
                }
                (orphan_until.is_none().then_some(agent), true)
            }
            _ => (None, false),
        };
        assert_eq!(s.agent_of(run), holder, "agent of run {run}");
        assert_eq!(s.is_current(run, r.attempt), active, "run {run} current");
        if !done {
            if let Some(d) = r.info.after.iter().find(|d| self.failed(**d)) {
                panic!("run {run} is unfinished although its dependency {d} failed");
            }
        }
    }

    /// Slower checks, now and then: skipped runs, explanations, group views. Those that cost
    /// O(every run ever) run rarely, so long replays stay linear.
    pub(super) fn check_deep(&self) {
        let rare = self.step.is_multiple_of(1024);
        let from = if rare {
            0
        } else {
            self.next_run.saturating_sub(500)
        };
        for (&n, r) in self.runs.range(from..) {
            if r.st == St::Done(Final::Skipped) {
                assert!(self.dependency_failed(n), "run {n} skipped for nothing");
            }
        }
        for &n in &self.unfinished {
            let reason = self.sched.waiting_reason(n);
            let waits = match self.runs[&n].st {
                St::Pending { .. } => true,
                St::Active { orphan_until, .. } => orphan_until.is_some(),
                St::Done(_) => false,
            };
            assert_eq!(
                reason.is_some(),
                waits,
                "waiting reason of run {n}: {reason:?}"
            );
        }
        if !rare {
            return;
        }
        let loads = self.loads();
        for view in self.sched.groups() {
            assert_eq!(view.running, count(&loads.group, &view.name), "{view:?}");
            assert_eq!(view.max, self.max_of(&view.name), "{view:?}");
        }
    }

    // ----- the model's view of resources ------------------------------------------------

    pub(super) fn loads(&self) -> Loads {
        let mut l = Loads::default();
        for n in &self.unfinished {
            let r = &self.runs[n];
            if let St::Active { agent, group, .. } = &r.st {
                *l.agent.entry(*agent).or_default() += 1;
                l.on_agent
                    .entry(*agent)
                    .or_default()
                    .insert((*n, r.attempt));
                if let Some(g) = group {
                    *l.group.entry(g.clone()).or_default() += 1;
                }
                *l.jobset.entry(r.info.jobset.clone()).or_default() += 1;
                if let Some(job) = &r.info.exclusive_job {
                    *l.job.entry(job.clone()).or_default() += 1;
                }
            }
        }
        l
    }

    fn max_of(&self, g: &Arc<str>) -> u32 {
        self.group_max.get(g).copied().flatten().unwrap_or(1)
    }

    fn failed(&self, run: RunNo) -> bool {
        matches!(self.runs[&run].st, St::Done(f) if f != Final::Success)
    }

    fn dependency_failed(&self, run: RunNo) -> bool {
        self.runs[&run].info.after.iter().any(|d| self.failed(*d))
    }

    /// Dependencies succeeded and no back-off: the run is in the core's ready queue.
    fn is_ready(&self, r: &MRun) -> bool {
        matches!(r.st, St::Pending { not_before } if not_before <= self.now)
            && r.info
                .after
                .iter()
                .all(|d| self.runs[d].st == St::Done(Final::Success))
    }

    /// A connected, not draining agent with a free slot, serving `group` if given.
    fn free_agent(&self, group: Option<&Arc<str>>, loads: &Loads) -> bool {
        self.live.iter().any(|(id, &m)| {
            let mach = &self.machines[m];
            !mach.draining
                && count(&loads.agent, id) < mach.slots
                && group.is_none_or(|g| mach.groups.contains(g))
        })
    }

    fn group_usable(&self, g: &Arc<str>, loads: &Loads) -> bool {
        count(&loads.group, g) < self.max_of(g) && self.free_agent(Some(g), loads)
    }

    /// Where runs could go now: whether any agent has a free slot, and the groups that are
    /// under their max and served by an agent with a free slot.
    fn room(&self, loads: &Loads) -> Room {
        Room {
            any_agent: self.free_agent(None, loads),
            groups: GROUPS
                .iter()
                .map(|g| Arc::from(*g))
                .filter(|g| self.group_usable(g, loads))
                .collect(),
        }
    }

    /// Whether a ready run could start now under every rule.
    fn placeable(&self, info: &RunInfo, loads: &Loads, room: &Room) -> bool {
        let p = self.parallel.get(&info.jobset).copied().unwrap_or(0);
        if p > 0 && count(&loads.jobset, &info.jobset) >= p {
            return false;
        }
        if let Some(job) = &info.exclusive_job {
            if count(&loads.job, job) > 0 {
                return false;
            }
        }
        if info.groups.is_empty() {
            return room.any_agent;
        }
        info.groups.iter().any(|g| room.groups.contains(g))
    }
}
