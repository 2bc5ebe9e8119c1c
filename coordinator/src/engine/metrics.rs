//! The state numbers `/metrics` shows, made by the engine (which owns them) in O(groups +
//! agents + queue classes): nothing here visits runs; the one store read is the first row
//! of the runs table (the oldest run, by its primary key).

use super::State;
use crate::error::Result;
use crate::metrics::{Snapshot, MAX_JOBSET_SERIES};
use crate::store::Batch;

impl State {
    pub(super) fn metrics_snapshot(&self, b: &Batch<'_>) -> Result<Snapshot> {
        let (connected, draining) = self.agents.live_counts();
        let (gone_disconnected, gone_lost) = self.agents.gone_counts();
        let (busy, total) = self.core.slot_usage();
        Ok(Snapshot {
            runs: self.counts.totals(),
            jobset_runs: self.counts.jobsets(MAX_JOBSET_SERIES),
            waiting: self.core.waiting_counts(),
            groups: self
                .core
                .group_limits()
                .into_iter()
                .map(|(g, running, max)| (g.to_string(), running, max))
                .collect(),
            agents: vec![
                ("connected", connected),
                ("draining", draining),
                ("disconnected", gone_disconnected),
                ("lost", gone_lost),
            ],
            slots: total.into(),
            slots_busy: busy.into(),
            orphan_leases_expired: self.core.orphan_leases_expired(),
            notifications: [
                ("delivered", self.notify.stats.delivered),
                ("failed", self.notify.stats.attempts_failed),
                ("given_up", self.notify.stats.given_up),
            ],
            notifications_pending: self.notify.stats.pending,
            log_bytes: self.retention.log_bytes,
            oldest_run_submitted_ms: b.read().oldest_submitted_at()?.unwrap_or(0),
        })
    }
}
