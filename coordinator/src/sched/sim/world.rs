//! The simulation's other events: limits changed up and down, time moving on, and a coordinator
//! restart that rebuilds the core from what the store holds.

use std::sync::Arc;

use rand::seq::IndexedRandom;
use rand::Rng;

use super::*;

impl Sim {
    pub(super) fn set_group_max(&mut self) {
        let g = *GROUPS.choose(&mut self.rng).expect("groups");
        let max = match self.rng.random_range(0..20) {
            0..3 => None,
            3 => Some(0),
            _ => Some(self.rng.random_range(1..=4)),
        };
        self.log(format!("group {g} max {max:?}"));
        self.group_max.insert(Arc::from(g), max);
        self.sched.set_group_max(g, max);
    }

    pub(super) fn set_parallel(&mut self) {
        let js = *JOBSETS.choose(&mut self.rng).expect("jobsets");
        let p = if self.rng.random_bool(0.3) {
            0
        } else {
            self.rng.random_range(1..=4)
        };
        self.log(format!("jobset {js} parallel {p}"));
        self.parallel.insert(Arc::from(js), p);
        self.sched.set_parallel(js, p);
    }

    pub(super) fn tick(&mut self) {
        let dt = if self.rng.random_ratio(17, 20) {
            self.rng.random_range(0..=1_500)
        } else {
            self.rng.random_range(1_500..=2 * LEASE)
        };
        self.advance(dt);
    }

    pub(super) fn advance(&mut self, dt: Millis) {
        self.now += dt;
        self.log(format!("tick +{dt} = {}", self.now));
        let now = self.now;
        for run in self.unfinished.clone() {
            let r = self.run_mut(run);
            if matches!(r.st, St::Active { orphan_until: Some(t), .. } if t <= now) {
                if r.fence(now) {
                    *self.stats.entry("orphan fenced").or_default() += 1;
                } else {
                    let want = fail_want(r);
                    self.wants.push((run, want));
                    *self.stats.entry("orphan lease ended").or_default() += 1;
                }
            }
        }
        self.sched.tick(now);
    }

    /// The coordinator restarts: a new core restored from what the store holds; every stream
    /// is gone, so every active run waits for a claim. A cancel request is stored, so it
    /// survives.
    pub(super) fn restart(&mut self) {
        self.log("coordinator restarts".into());
        self.tally("restart");
        let mut s = Scheduler::new(config());
        for (g, max) in &self.group_max {
            s.set_group_max(g, *max);
        }
        for (js, p) in &self.parallel {
            s.set_parallel(js, *p);
        }
        let until = self.now + LEASE;
        for (&n, r) in self.runs.iter_mut() {
            let initial = match &mut r.st {
                St::Pending { not_before } => Initial::Pending {
                    not_before: (*not_before > self.now).then_some(*not_before),
                },
                St::Active {
                    group,
                    cancel,
                    orphan_until,
                    fenced,
                    ..
                } => {
                    *orphan_until = Some(until);
                    *fenced = false;
                    Initial::Active {
                        group: group.clone(),
                        cancel_requested: *cancel,
                    }
                }
                St::Done(f) => Initial::Done(*f),
            };
            let res = s.add(r.info.clone(), r.attempt, initial, self.now);
            assert_eq!(res, Ok(()), "restore of run {n}");
        }
        let ds = s.take_decisions();
        assert!(ds.is_empty(), "a restore decided something: {ds:?}");
        self.sched = s;
        self.live.clear();
        self.touched.extend(self.unfinished.iter().copied());
        for m in &mut self.machines {
            m.session = None;
            m.draining = false;
        }
    }
}
