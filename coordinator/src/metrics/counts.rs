//! Runs by state, kept by the engine as runs change, so `/metrics` reads them in O(states +
//! unfinished jobsets) instead of counting the run table.
//!
//! Totals cover every run in the store (loaded once at start from the `runs_by_state` index,
//! then moved on each change). Per jobset only unfinished runs are counted, and only for
//! jobsets that have some: that bounds the jobset label by the work in flight, not by
//! history; [`RunCounts::jobsets`] then caps it further.

use std::collections::HashMap;

use crate::store::{is_final_state, RunRecord, RUN_STATES};

/// The unfinished states, as counted per jobset.
const UNFINISHED: [&str; 3] = ["pending", "assigned", "running"];

#[derive(Debug, Default)]
pub struct RunCounts {
    /// Indexed like `RUN_STATES`.
    totals: Vec<u64>,
    /// Jobsets with unfinished runs: their counts (indexed like `UNFINISHED`) and the
    /// sequence number of their latest submit.
    active: HashMap<String, ([u64; 3], u64)>,
    seq: u64,
}

impl RunCounts {
    /// Counts from the store's per-state totals and the unfinished runs in memory.
    pub fn load<'a>(
        totals: &[(String, u64)],
        unfinished: impl Iterator<Item = &'a RunRecord>,
    ) -> Self {
        let mut c = RunCounts {
            totals: vec![0; RUN_STATES.len()],
            ..Default::default()
        };
        for (state, n) in totals {
            if let Some(i) = RUN_STATES.iter().position(|s| s == state) {
                c.totals[i] = *n;
            }
        }
        for rec in unfinished {
            c.jobset(&rec.jobset, &rec.state, 1);
        }
        c
    }

    /// A new run (`pending`) in `jobset`.
    pub fn added(&mut self, jobset: &str, state: &str) {
        self.total(state, 1);
        self.seq += 1;
        let seq = self.seq;
        self.jobset(jobset, state, 1);
        if let Some(entry) = self.active.get_mut(jobset) {
            entry.1 = seq;
        }
    }

    /// A run of `jobset` went from `from` to `to`.
    pub fn moved(&mut self, jobset: &str, from: &str, to: &str) {
        if from == to {
            return;
        }
        self.total(from, -1);
        self.total(to, 1);
        // Up first: a jobset whose last run moves on is never empty in between (it would
        // lose its place in the recency order).
        self.jobset(jobset, to, 1);
        self.jobset(jobset, from, -1);
    }

    /// Every state with its count.
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        RUN_STATES
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, self.totals.get(i).copied().unwrap_or(0)))
            .collect()
    }

    /// (jobset, unfinished state, count) for the `cap` unfinished jobsets most recently
    /// submitted to.
    pub fn jobsets(&self, cap: usize) -> Vec<(String, &'static str, u64)> {
        let mut active: Vec<_> = self.active.iter().collect();
        active.sort_by_key(|(name, (_, seq))| (std::cmp::Reverse(*seq), name.as_str()));
        active
            .into_iter()
            .take(cap)
            .flat_map(|(name, (counts, _))| {
                UNFINISHED
                    .iter()
                    .zip(counts)
                    .map(|(s, n)| (name.clone(), *s, *n))
            })
            .collect()
    }

    fn total(&mut self, state: &str, delta: i64) {
        if self.totals.is_empty() {
            self.totals = vec![0; RUN_STATES.len()];
        }
        if let Some(i) = RUN_STATES.iter().position(|s| *s == state) {
            self.totals[i] = self.totals[i].saturating_add_signed(delta);
        }
    }

    fn jobset(&mut self, jobset: &str, state: &str, delta: i64) {
        if is_final_state(state) {
            return;
        }
        let Some(i) = UNFINISHED.iter().position(|s| *s == state) else {
            return;
        };
        if delta > 0 && !self.active.contains_key(jobset) {
            self.active.insert(jobset.to_string(), ([0; 3], self.seq));
        }
        let Some((counts, _)) = self.active.get_mut(jobset) else {
            return;
        };
        counts[i] = counts[i].saturating_add_signed(delta);
        if counts.iter().all(|n| *n == 0) {
            self.active.remove(jobset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobset_has_series_while_it_has_unfinished_runs() {
        let mut c = RunCounts::load(&[("success".into(), 5)], std::iter::empty());
        c.added("a", "pending");
        c.added("b", "pending");
        c.moved("a", "pending", "assigned");
        assert_eq!(c.totals()[0], ("pending", 1));
        assert_eq!(c.totals()[1], ("assigned", 1));
        assert_eq!(c.totals()[3], ("success", 5));
        // b was submitted to last: first.
        let js = c.jobsets(1);
        assert_eq!(js[0], ("b".to_string(), "pending", 1));
        c.moved("a", "assigned", "success");
        assert!(c.jobsets(10).iter().all(|(j, _, _)| j == "b"));
        assert_eq!(c.totals()[3], ("success", 6));
        // A retry brings a finished jobset back.
        c.moved("a", "success", "pending");
        assert_eq!(c.jobsets(10).len(), 6);
    }
}
