//! The simulation's agent events: machines that connect (claiming what they still run),
//! drain, reject a run, disconnect and get lost.

use std::sync::Arc;

use rand::seq::IndexedRandom;
use rand::Rng;

use super::*;

impl Sim {
    pub(super) fn pick_machine(&mut self, f: impl Fn(&Machine) -> bool) -> Option<usize> {
        let ms: Vec<usize> = (0..MACHINES).filter(|&m| f(&self.machines[m])).collect();
        ms.choose(&mut self.rng).copied()
    }

    /// A new agent configuration: slots (rarely 0) and a few served groups.
    pub(super) fn configure(&mut self, m: usize) {
        let slots = if self.rng.random_ratio(1, 20) {
            0
        } else {
            self.rng.random_range(1..=4)
        };
        let mut groups: Vec<Arc<str>> = Vec::new();
        for _ in 0..self.rng.random_range(0..=3) {
            groups.push(Arc::from(*COMMON.choose(&mut self.rng).expect("groups")));
        }
        if self.rng.random_ratio(1, 5) {
            groups.push(Arc::from("rare"));
        }
        groups.sort();
        groups.dedup();
        self.machines[m].slots = slots;
        self.machines[m].groups = groups;
    }

    pub(super) fn connect(&mut self) {
        let Some(m) = self.pick_machine(|m| m.session.is_none()) else {
            return self.tick();
        };
        if self.rng.random_bool(0.3) {
            self.configure(m);
        }
        self.open_session(m);
        if self.rng.random_ratio(1, 10) {
            self.drain_machine(m);
        }
    }

    /// Hello: a new session, then a claim for every attempt the machine still holds.
    pub(super) fn open_session(&mut self, m: usize) {
        let id = self.next_agent;
        self.next_agent += 1;
        let mach = &mut self.machines[m];
        mach.session = Some(id);
        mach.draining = false;
        self.live.insert(id, m);
        let (slots, groups) = (mach.slots, mach.groups.clone());
        self.log(format!(
            "agent {id} (machine {m}) connects: {slots} slots, {groups:?}"
        ));
        self.sched.agent_connected(id, slots, groups);
        for (run, attempt) in self.machines[m].held.clone() {
            let r = &self.runs[&run];
            let (orphan, cancel) = match r.st {
                St::Active {
                    orphan_until,
                    cancel,
                    fenced,
                    ..
                } => (orphan_until.is_some() && !fenced, cancel),
                _ => (false, false),
            };
            let want = orphan && r.attempt == attempt;
            let model = format!("{:?}", r.st);
            let got = self.sched.claim(id, run, attempt);
            self.touched.insert(run);
            self.log(format!("  claim run {run} attempt {attempt}: {got}"));
            assert_eq!(
                got, want,
                "claim of run {run} attempt {attempt}, model {model}"
            );
            self.tally(if got { "claim kept" } else { "claim refused" });
            if got {
                if let St::Active {
                    agent,
                    orphan_until,
                    ..
                } = &mut self.run_mut(run).st
                {
                    *agent = id;
                    *orphan_until = None;
                }
                self.wants.push((run, Want::Kill(cancel)));
            } else {
                self.machines[m].held.remove(&(run, attempt));
                self.machines[m].killing.remove(&(run, attempt));
            }
        }
        // An agent whose spool still has an attempt that is long over (the run moved on):
        // its claim is refused, even when the run is an orphan waiting for a claim.
        if let Some(run) = self.random_run() {
            let current = self.runs[&run].attempt;
            let attempt = if current > 1 && self.rng.random_bool(0.8) {
                self.rng.random_range(1..current)
            } else {
                current + 1
            };
            self.log(format!("  stale claim of run {run} attempt {attempt}"));
            assert!(
                !self.sched.claim(id, run, attempt),
                "stale claim of run {run} attempt {attempt} kept, model {:?}",
                self.runs[&run].st
            );
            self.touched.insert(run);
        }
    }

    /// The stream ends: the session's runs become orphans for the lease.
    pub(super) fn disconnect(&mut self, m: usize) {
        let id = self.machines[m].session.take().expect("connected");
        self.machines[m].draining = false;
        self.live.remove(&id);
        self.log(format!("agent {id} (machine {m}) disconnects"));
        self.sched.agent_disconnected(id, self.now);
        let until = self.now + LEASE;
        for run in self.unfinished.clone() {
            if let St::Active {
                agent,
                orphan_until,
                ..
            } = &mut self.run_mut(run).st
            {
                if *agent == id {
                    *orphan_until = Some(until);
                }
            }
        }
    }

    /// The session is lost: its runs are retried or errored; the process may or may not live on.
    pub(super) fn lose(&mut self) {
        let Some(m) = self.pick_machine(|m| m.session.is_some()) else {
            return;
        };
        let id = self.machines[m].session.take().expect("connected");
        self.machines[m].draining = false;
        self.live.remove(&id);
        self.log(format!("agent {id} (machine {m}) is lost"));
        self.tally("agent lost");
        let now = self.now;
        for run in self.unfinished.clone() {
            let r = self.run_mut(run);
            if matches!(r.st, St::Active { agent, .. } if agent == id) && !r.fence(now) {
                let want = fail_want(r);
                self.wants.push((run, want));
            }
        }
        self.sched.agent_lost(id, self.now);
        if self.rng.random_bool(0.5) {
            self.machines[m].held.clear();
            self.machines[m].killing.clear();
        }
    }

    pub(super) fn drain(&mut self) {
        if let Some(m) = self.pick_machine(|m| m.session.is_some() && !m.draining) {
            self.drain_machine(m);
        }
    }

    fn drain_machine(&mut self, m: usize) {
        let id = self.machines[m].session.expect("connected");
        self.log(format!("agent {id} drains"));
        self.machines[m].draining = true;
        self.sched.drain(id);
    }

    /// The agent refuses an assignment (it started draining as the Assign crossed).
    pub(super) fn reject(&mut self) {
        let Some(m) = self.pick_machine(|m| m.session.is_some() && !m.held.is_empty()) else {
            return;
        };
        let agent = self.machines[m].session.expect("connected");
        let held: Vec<_> = self.machines[m].held.iter().copied().collect();
        let (run, attempt) = *held.choose(&mut self.rng).expect("held");
        self.machines[m].held.remove(&(run, attempt));
        self.machines[m].killing.remove(&(run, attempt));
        self.log(format!("agent {agent} rejects run {run} attempt {attempt}"));
        if self.sched.agent_of(run) != Some(agent) {
            return;
        }
        let r = &self.runs[&run];
        let current = matches!(r.st, St::Active { .. }) && r.attempt == attempt;
        let res = self.sched.unassign(run, attempt);
        assert_eq!(res.is_ok(), current, "rejection of run {run}: {res:?}");
        if !current {
            return;
        }
        *self.stats.entry("rejected").or_default() += 1;
        match r.st {
            // Cancelled before it ever started: it ends cancelled, it is not queued again.
            St::Active { cancel: true, .. } => {
                self.wants.push((run, Want::Done(Final::Cancelled)));
            }
            _ => {
                let r = self.run_mut(run);
                r.st = St::Pending { not_before: 0 };
                r.assigned = attempt - 1;
                self.touched.insert(run);
            }
        }
    }
}
