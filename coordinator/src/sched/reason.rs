//! Human-readable explanations of why a pending run waits, and live group numbers. Computed on
//! demand from the core's state, so nothing per run has to be kept up to date.

use std::sync::Arc;

use super::queue::ClassKey;
use super::{GroupView, Phase, RunNo, Scheduler};

/// What holds back a class of ready runs (see [`Scheduler::blocked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Blocked {
    JobsetLimit {
        running: u32,
        parallel: u32,
    },
    ExclusiveJob,
    NoAgent,
    SlotsBusy {
        busy: u32,
        total: u32,
    },
    /// A grouped run: each of its groups says why (see [`Scheduler::group_block`]).
    Groups,
    /// Nothing: it waits its turn in its class.
    Queued,
}

/// Why one group cannot take a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GroupBlock {
    Full { running: u32, max: u32 },
    Unserved,
    Busy,
}

impl Scheduler {
    /// Why a pending run has not started, e.g. "host-a_group 2/2 and host-b_group 1/1 are full",
    /// "no connected agent serves host-c_group", "waiting for run 12", "jobset limit 4/4".
    /// None for runs that are not pending.
    pub fn waiting_reason(&self, run: RunNo) -> Option<String> {
        let st = self.runs.get(&run)?;
        match &st.phase {
            Phase::Waiting { .. } => {
                let unmet: Vec<String> = st
                    .info
                    .after
                    .iter()
                    .filter(|d| {
                        !matches!(
                            self.runs.get(d).map(|s| &s.phase),
                            Some(Phase::Done(super::Final::Success))
                        )
                    })
                    .map(|d| d.to_string())
                    .collect();
                Some(match unmet.len() {
                    1 => format!("waiting for run {}", unmet[0]),
                    _ => format!("waiting for runs {}", unmet.join(", ")),
                })
            }
            Phase::Backoff { until } => Some(format!(
                "attempt {} waits for its retry back-off (until {})",
                st.attempt,
                crate::time::format_millis(*until)
            )),
            Phase::Ready => Some(self.ready_reason(run)),
            Phase::Active { agent: None, .. } => Some("waiting for its agent to reconnect".into()),
            Phase::Active { .. } | Phase::Done(_) => None,
        }
    }

    fn ready_reason(&self, run: RunNo) -> String {
        if let Some(reason) = self.pinned_reason(run) {
            return reason;
        }
        let st = &self.runs[&run];
        let key = &st.key;
        match self.blocked(key) {
            Blocked::JobsetLimit { running, parallel } => {
                format!("jobset limit {running}/{parallel}")
            }
            Blocked::ExclusiveJob => format!(
                "job {} is already running (no concurrent_runs)",
                key.exclusive_job.as_deref().unwrap_or_default()
            ),
            Blocked::NoAgent => "no connected agent".into(),
            Blocked::SlotsBusy { busy, total } => {
                format!("all agent slots are busy ({busy}/{total})")
            }
            Blocked::Groups => {
                let mut full = Vec::new();
                let mut unserved = Vec::new();
                let mut busy = Vec::new();
                for g in &key.groups {
                    match self.group_block(g) {
                        GroupBlock::Full { running, max } => {
                            full.push(format!("{g} {running}/{max}"))
                        }
                        GroupBlock::Unserved => unserved.push(g.to_string()),
                        GroupBlock::Busy => busy.push(g.to_string()),
                    }
                }
                let mut parts = Vec::new();
                if !full.is_empty() {
                    let verb = if full.len() == 1 { "is" } else { "are" };
                    parts.push(format!("{} {verb} full", full.join(" and ")));
                }
                if !unserved.is_empty() {
                    parts.push(format!(
                        "no connected agent serves {}",
                        unserved.join(" or ")
                    ));
                }
                if !busy.is_empty() {
                    parts.push(format!("every agent serving {} is busy", busy.join(" or ")));
                }
                parts.join("; ")
            }
            Blocked::Queued => {
                const CAP: usize = 1000;
                let rank = super::queue::rank(st.info.priority, run);
                match self.queue.ahead_of(key, &rank, CAP) {
                    0 => "about to start".into(),
                    CAP => format!("queued behind {CAP}+ runs"),
                    n => format!("queued behind {n} runs"),
                }
            }
        }
    }

    /// The first limit that holds back the ready runs of a class, in the order dispatch
    /// checks them. It depends on the class key alone, so every member of a class shares it:
    /// counting the ready queue by it costs O(classes) (`waiting_counts`).
    pub(super) fn blocked(&self, key: &ClassKey) -> Blocked {
        if let Some(js) = self.jobsets.get(&key.jobset) {
            if js.parallel > 0 && js.running >= js.parallel {
                return Blocked::JobsetLimit {
                    running: js.running,
                    parallel: js.parallel,
                };
            }
        }
        if let Some(job) = &key.exclusive_job {
            if self.exclusive_running.get(job).copied().unwrap_or(0) > 0 {
                return Blocked::ExclusiveJob;
            }
        }
        if !key.groups.is_empty() {
            return Blocked::Groups;
        }
        if self.agents.is_empty() {
            return Blocked::NoAgent;
        }
        let (busy, total) = self.agents.slot_usage();
        if busy >= total {
            return Blocked::SlotsBusy { busy, total };
        }
        Blocked::Queued
    }

    /// Why one of a grouped run's groups cannot take it.
    pub(super) fn group_block(&self, g: &Arc<str>) -> GroupBlock {
        let (running, max) = self.groups.get(g).map_or((0, 1), |s| (s.running, s.max()));
        if running >= max {
            GroupBlock::Full { running, max }
        } else if !self.agents.serves(g) {
            GroupBlock::Unserved
        } else {
            GroupBlock::Busy
        }
    }

    /// Live numbers of every group that is defined, served or used.
    pub fn groups(&self) -> Vec<GroupView> {
        let mut names: Vec<Arc<str>> = self.groups.keys().cloned().collect();
        for (_, a) in self.agents.iter() {
            names.extend(a.groups.iter().cloned());
        }
        for (_, st) in self.runs.iter() {
            if !matches!(st.phase, Phase::Done(_)) {
                names.extend(st.info.groups.iter().cloned());
            }
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let gs = self.groups.get(&name);
                let waiting = self
                    .runs
                    .values()
                    .filter(|st| {
                        matches!(
                            st.phase,
                            Phase::Waiting { .. } | Phase::Ready | Phase::Backoff { .. }
                        ) && st.info.groups.contains(&name)
                    })
                    .count() as u32;
                GroupView {
                    max: gs.map_or(1, |g| g.max()),
                    defined: gs.is_some_and(|g| g.max.is_some()),
                    running: gs.map_or(0, |g| g.running),
                    waiting,
                    name,
                }
            })
            .collect()
    }

    /// Runs currently counted against a group (for invariant checks and tests).
    pub fn group_running(&self, group: &str) -> u32 {
        self.groups.get(group).map_or(0, |g| g.running)
    }

    /// Runs currently counted against a jobset's `parallel` limit.
    pub fn jobset_running(&self, jobset: &str) -> u32 {
        self.jobsets.get(jobset).map_or(0, |j| j.running)
    }

    /// Pending runs in the ready queue (dependencies met, not in back-off).
    pub fn ready_len(&self) -> usize {
        self.queue.len()
    }

    /// True if the run is in a final state.
    pub fn is_done(&self, run: RunNo) -> bool {
        matches!(self.runs.get(&run).map(|s| &s.phase), Some(Phase::Done(_)))
    }
}
