//! Numbers about the whole core for metrics, each in O(classes + groups + agents): a scrape
//! with 100,000 pending runs must not visit them (`waiting_reason` explains one run; this
//! counts them all by the same rules, per class of identical runs).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::reason::{Blocked, GroupBlock};
use super::Scheduler;

/// The classes of `waiting_reason`, as metric label values; every one is reported, zeros
/// included, so a series exists before its first run waits for that reason.
pub const WAITING_CLASSES: &[&str] = &[
    "dependencies",
    "backoff",
    "agent_reconnect",
    "jobset_limit",
    "exclusive_job",
    "no_agent",
    "slots_busy",
    "group_full",
    "group_unserved",
    "group_busy",
    "queued",
];

impl Scheduler {
    /// Runs that wait, by the class of their waiting reason. Pending runs, plus the active
    /// runs whose agent went away (`agent_reconnect`). A grouped run is `group_full` when
    /// every group it may use is full, else `group_busy` when a group that has room has a
    /// connected agent (all of whose slots are taken), else `group_unserved`.
    pub fn waiting_counts(&self) -> Vec<(&'static str, u64)> {
        let mut counts: BTreeMap<&'static str, u64> =
            WAITING_CLASSES.iter().map(|c| (*c, 0)).collect();
        let mut add = |class: &'static str, n: usize| {
            *counts.entry(class).or_default() += n as u64;
        };
        add("dependencies", self.waiting);
        add("backoff", self.backoff.len());
        add("agent_reconnect", self.orphan_deadline.len());
        for (key, n) in self.queue.class_sizes() {
            let class = match self.blocked(key) {
                Blocked::JobsetLimit { .. } => "jobset_limit",
                Blocked::ExclusiveJob => "exclusive_job",
                Blocked::NoAgent => "no_agent",
                Blocked::SlotsBusy { .. } => "slots_busy",
                Blocked::Queued => "queued",
                Blocked::Groups => {
                    let blocks: Vec<GroupBlock> =
                        key.groups.iter().map(|g| self.group_block(g)).collect();
                    if blocks.iter().all(|b| matches!(b, GroupBlock::Full { .. })) {
                        "group_full"
                    } else if blocks.contains(&GroupBlock::Busy) {
                        "group_busy"
                    } else {
                        "group_unserved"
                    }
                }
            };
            add(class, n);
        }
        WAITING_CLASSES.iter().map(|c| (*c, counts[c])).collect()
    }

    /// (name, running, max) of every group the core has numbers for: defined, or one a run
    /// has counted against since start (an undefined group nothing ran in has no series).
    pub fn group_limits(&self) -> Vec<(Arc<str>, u32, u32)> {
        let mut out: Vec<_> = self
            .groups
            .iter()
            .map(|(name, g)| (name.clone(), g.running, g.max()))
            .collect();
        out.sort();
        out
    }

    /// (busy slots, total slots) over agents that take runs.
    pub fn slot_usage(&self) -> (u32, u32) {
        self.agents.slot_usage()
    }

    /// Orphan leases that ran out since start: runs whose agent went away and did not come
    /// back in time.
    pub fn orphan_leases_expired(&self) -> u64 {
        self.orphan_leases_expired
    }
}
