//! `Status`: what this coordinator is and holds, for `rota status`. Agents come from the live
//! agent map; runs by state are counted over the `runs_by_state` index (no table rows read,
//! but it grows with the runs held: keeping counts as runs change state would make it O(1)).

use rota_proto as pb;

use super::State;
use crate::error::Result;
use crate::store::{Batch, RUN_STATES};

impl State {
    pub(super) fn status(&self, b: &Batch<'_>) -> Result<pb::StatusResponse> {
        let (connected, draining) = self.agents.live_counts();
        let counts = b.read().run_counts()?;
        let count_of = |state: &str| {
            counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n)
        };
        let runs = RUN_STATES
            .iter()
            .map(|s| pb::StateCount {
                state: (*s).into(),
                count: count_of(s),
            })
            .collect();
        let disk = crate::metrics::footprint::measure(&self.config.data_dir);
        Ok(pb::StatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: rota_proto::PROTOCOL_VERSION,
            uptime_ms: self.now.saturating_sub(self.started_at),
            store_kind: "sqlite".into(),
            store_bytes: disk.store_bytes,
            data_dir_free_bytes: disk.free_bytes,
            agents: vec![
                pb::StateCount {
                    state: "connected".into(),
                    count: connected,
                },
                pb::StateCount {
                    state: "draining".into(),
                    count: draining,
                },
            ],
            queue_depth: count_of("pending"),
            runs,
            oldest_run_submitted_ms: b.read().oldest_submitted_at()?.unwrap_or(0),
            notifications_delivered: self.notify.stats.delivered,
            notifications_attempts_failed: self.notify.stats.attempts_failed,
            notifications_given_up: self.notify.stats.given_up,
            notifications_pending: self.notify.stats.pending,
            retention: self.retention_line(),
            log_bytes: self.retention.log_bytes,
            pruned_runs: self.retention.pruned,
            artifact_bytes: disk.artifact_bytes,
        })
    }
}
