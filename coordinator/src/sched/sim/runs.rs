//! The simulation's run events: submits, cancels, retries, retires, and the results agents
//! report, including stale ones the core must refuse.

use std::sync::Arc;

use rand::seq::IndexedRandom;
use rand::Rng;

use super::*;

impl Sim {
    pub(super) fn submit(&mut self) {
        for _ in 0..self.rng.random_range(1..=3) {
            let number = self.next_run;
            self.next_run += 1;
            let mut groups = Vec::new();
            for _ in 0..self.rng.random_range(0..=3) {
                groups.push(Arc::from(*GROUPS.choose(&mut self.rng).expect("groups")));
            }
            let mut after = Vec::new();
            if number > 1 && self.rng.random_bool(0.4) {
                for _ in 0..self.rng.random_range(1..=2) {
                    after.push(
                        self.rng
                            .random_range(number.saturating_sub(20).max(1)..number),
                    );
                }
            }
            // A back-off at submit only happens for restored retries, whose deps succeeded.
            let not_before = (after.is_empty() && self.rng.random_ratio(1, 10))
                .then(|| self.now + self.rng.random_range(1..3_000));
            let info = RunInfo {
                number,
                jobset: Arc::from(*JOBSETS.choose(&mut self.rng).expect("jobsets")),
                groups,
                priority: *[-1, 0, 0, 0, 1, 5]
                    .choose(&mut self.rng)
                    .expect("priorities"),
                after,
                exclusive_job: self
                    .rng
                    .random_ratio(1, 5)
                    .then(|| Arc::from(*JOBS.choose(&mut self.rng).expect("jobs"))),
                retries: self.rng.random_range(0..=2),
                stop_on_disconnect: self
                    .rng
                    .random_ratio(1, 4)
                    .then(|| self.rng.random_range(0..=3_000)),
                same_agent_as: None,
            };
            self.log(format!("add {info:?} not_before {not_before:?}"));
            let res = self
                .sched
                .add(info.clone(), 1, Initial::Pending { not_before }, self.now);
            assert_eq!(res, Ok(()), "add of run {number}");
            let not_before = not_before.unwrap_or(0);
            self.runs.insert(
                number,
                MRun {
                    info,
                    attempt: 1,
                    st: St::Pending { not_before },
                    assigned: 0,
                    finishes: 0,
                    reopens: 0,
                },
            );
            self.unfinished.insert(number);
        }
    }

    pub(super) fn random_run(&mut self) -> Option<RunNo> {
        if !self.unfinished.is_empty() && self.rng.random_bool(0.7) {
            let all: Vec<RunNo> = self.unfinished.iter().copied().collect();
            return all.choose(&mut self.rng).copied();
        }
        (self.next_run > 1).then(|| self.rng.random_range(1..self.next_run))
    }

    pub(super) fn cancel(&mut self) {
        let active: Vec<RunNo> = self
            .unfinished
            .iter()
            .copied()
            .filter(|n| matches!(self.runs[n].st, St::Active { .. }))
            .collect();
        let run = match active.choose(&mut self.rng) {
            Some(&run) if self.rng.random_bool(0.5) => run,
            _ => match self.random_run() {
                Some(run) => run,
                None => return,
            },
        };
        let st = self.runs[&run].st.clone();
        self.log(format!("cancel {run} ({st:?})"));
        let res = self.sched.cancel(run);
        assert_eq!(
            res.is_ok(),
            !matches!(st, St::Done(_)),
            "cancel {run}: {res:?}"
        );
        match st {
            St::Pending { .. } => self.wants.push((run, Want::Done(Final::Cancelled))),
            St::Active { orphan_until, .. } => {
                if let St::Active { cancel, .. } = &mut self.run_mut(run).st {
                    *cancel = true;
                }
                self.wants.push((run, Want::Kill(orphan_until.is_none())));
            }
            St::Done(_) => {}
        }
    }

    pub(super) fn retry(&mut self) {
        let Some(run) = self.random_done_run() else {
            return;
        };
        let r = &self.runs[&run];
        let ok = matches!(r.st, St::Done(Final::Errored | Final::Cancelled));
        let next = r.attempt + 1;
        self.log(format!("retry {run} ({:?})", r.st));
        let res = self.sched.retry(run, self.now);
        if ok {
            assert_eq!(res, Ok(next), "retry {run}");
            self.wants.push((run, Want::Reopened(next)));
        } else {
            assert!(res.is_err(), "retry {run} accepted: {res:?}");
        }
    }

    pub(super) fn retire(&mut self) {
        let Some(run) = self.random_done_run() else {
            return;
        };
        let st = self.runs[&run].st.clone();
        self.log(format!("retire {run} ({st:?})"));
        let res = self.sched.retire(run);
        let ok = st == St::Done(Final::Errored);
        assert_eq!(res.is_ok(), ok, "retire {run}: {res:?}");
        if ok {
            self.wants.push((run, Want::Done(Final::Retired)));
        }
    }

    /// Mostly an errored or cancelled run, sometimes any.
    fn random_done_run(&mut self) -> Option<RunNo> {
        if self.next_run == 1 {
            return None;
        }
        for _ in 0..8 {
            let run = self.rng.random_range(1..self.next_run);
            if matches!(
                self.runs[&run].st,
                St::Done(Final::Errored | Final::Cancelled)
            ) {
                return Some(run);
            }
        }
        self.random_run()
    }

    /// A connected machine reports how one of its attempts ended.
    pub(super) fn random_report(&mut self) {
        let Some(m) = self.pick_machine(|m| m.session.is_some() && !m.held.is_empty()) else {
            return;
        };
        let held: Vec<_> = self.machines[m].held.iter().copied().collect();
        let (run, attempt) = *held.choose(&mut self.rng).expect("held");
        let p = self.rng.random_range(0..100);
        let outcome = if self.machines[m].killing.contains(&(run, attempt)) {
            match p {
                0..70 => Outcome::Cancelled,
                70..90 => Outcome::Failed,
                _ => Outcome::Success,
            }
        } else {
            match p {
                0..60 => Outcome::Success,
                60..92 => Outcome::Failed,
                _ => Outcome::Cancelled,
            }
        };
        self.report(m, run, attempt, outcome);
    }

    pub(super) fn report(&mut self, m: usize, run: RunNo, attempt: u32, outcome: Outcome) {
        let agent = self.machines[m]
            .session
            .expect("a connected machine reports");
        self.machines[m].held.remove(&(run, attempt));
        self.machines[m].killing.remove(&(run, attempt));
        self.log(format!(
            "agent {agent} reports run {run} attempt {attempt}: {outcome:?}"
        ));
        // The engine refuses a result from an agent that does not hold the run.
        if self.sched.agent_of(run) != Some(agent) {
            return;
        }
        let r = &self.runs[&run];
        let current = matches!(r.st, St::Active { .. }) && r.attempt == attempt;
        let cancel = matches!(r.st, St::Active { cancel: true, .. });
        let want = match outcome {
            Outcome::Success => Want::Done(Final::Success),
            Outcome::Cancelled if cancel => Want::Done(Final::Cancelled),
            Outcome::Cancelled => Want::Interrupted(r.attempt + 1),
            Outcome::Failed => fail_want(r),
        };
        let res = self.sched.finished(run, attempt, outcome, self.now);
        assert_eq!(
            res.is_ok(),
            current,
            "result of run {run} attempt {attempt}: {res:?}, model {:?}",
            r.st
        );
        if current {
            if let Want::Interrupted(_) = want {
                self.interrupted.insert(run);
            }
            self.wants.push((run, want));
        }
    }

    /// Results and rejections for attempts that are not current are refused (fencing).
    pub(super) fn stale_report(&mut self) {
        let Some(run) = self.random_run() else { return };
        let r = &self.runs[&run];
        let attempt = match r.st {
            St::Active { .. } if self.rng.random_bool(0.5) => r.attempt + 1,
            St::Active { .. } => r.attempt - 1,
            _ => self.rng.random_range(0..=r.attempt + 1),
        };
        self.log(format!("stale report of run {run} attempt {attempt}"));
        self.touched.insert(run);
        let res = self
            .sched
            .finished(run, attempt, Outcome::Success, self.now);
        assert!(
            matches!(res, Err(SchedError::StaleAttempt { .. })),
            "stale result of run {run} attempt {attempt} accepted: {res:?}"
        );
        let res = self.sched.unassign(run, attempt);
        assert!(res.is_err(), "stale rejection accepted: {res:?}");
    }

    /// Events the core must refuse without changing anything.
    pub(super) fn refused_events(&mut self) {
        let unknown = self.next_run + 100;
        let mut info = RunInfo {
            number: self.next_run,
            jobset: Arc::from("js0"),
            groups: vec![],
            priority: 0,
            after: vec![unknown],
            exclusive_job: None,
            retries: 0,
            stop_on_disconnect: None,
            same_agent_as: None,
        };
        self.log(format!("refused events (unknown run {unknown})"));
        let pending = Initial::Pending { not_before: None };
        let res = self.sched.add(info.clone(), 1, pending.clone(), self.now);
        assert_eq!(res, Err(SchedError::UnknownRun(unknown)));
        if let Some(run) = self.random_run() {
            info.number = run;
            info.after.clear();
            let res = self.sched.add(info, 1, pending, self.now);
            assert_eq!(res, Err(SchedError::Duplicate(run)));
            self.touched.insert(run);
        }
        assert_eq!(
            self.sched.cancel(unknown),
            Err(SchedError::UnknownRun(unknown))
        );
        assert!(self.sched.retry(unknown, self.now).is_err());
        assert!(self.sched.retire(unknown).is_err());
        assert!(!self.sched.claim(self.next_agent + 100, unknown, 1));
    }
}
