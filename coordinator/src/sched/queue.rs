//! The ready queue, indexed so that a dispatch decision never scans the whole queue.
//!
//! Runs with identical needs (same jobset, same group list, same exclusive job) form a *class*.
//! Inside a class runs are ordered by (priority desc, number asc); across classes only the heads
//! compete. If a class's head cannot start, no member can (they need the same things), so a
//! dispatch cycle costs O(classes + starts), not O(pending runs).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::types::{RunInfo, RunNo};

/// Identity of a class: everything that decides whether a run may start.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassKey {
    pub jobset: Arc<str>,
    pub groups: Vec<Arc<str>>,
    pub exclusive_job: Option<Arc<str>>,
}

impl ClassKey {
    pub fn of(info: &RunInfo) -> Self {
        let mut groups = info.groups.clone();
        groups.sort();
        groups.dedup();
        ClassKey {
            jobset: info.jobset.clone(),
            groups,
            exclusive_job: info.exclusive_job.clone(),
        }
    }
}

/// Sort key: highest priority first, then lowest number.
pub type Rank = (Reverse<i32>, RunNo);

pub fn rank(priority: i32, number: RunNo) -> Rank {
    (Reverse(priority), number)
}

#[derive(Debug, Default)]
pub struct ReadyQueue {
    classes: HashMap<ClassKey, BTreeSet<Rank>>,
    len: usize,
}

impl ReadyQueue {
    pub fn push(&mut self, key: ClassKey, rank: Rank) {
        if self.classes.entry(key).or_default().insert(rank) {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, key: &ClassKey, rank: &Rank) -> bool {
        let Some(set) = self.classes.get_mut(key) else {
            return false;
        };
        let removed = set.remove(rank);
        if set.is_empty() {
            self.classes.remove(key);
        }
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// The best-ranked member of every non-empty class.
    pub fn heads(&self) -> impl Iterator<Item = (&ClassKey, Rank)> {
        self.classes
            .iter()
            .filter_map(|(k, s)| s.first().map(|r| (k, *r)))
    }

    /// The best-ranked member of one class.
    pub fn head(&self, key: &ClassKey) -> Option<Rank> {
        self.classes.get(key).and_then(|s| s.first().copied())
    }

    /// Members of a class ranked before `rank`, counted up to `cap` (for "queued behind"
    /// explanations; counting further would make listing a long queue quadratic).
    pub fn ahead_of(&self, key: &ClassKey, rank: &Rank, cap: usize) -> usize {
        self.classes
            .get(key)
            .map_or(0, |s| s.range(..*rank).take(cap).count())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every non-empty class with its number of members.
    pub fn class_sizes(&self) -> impl Iterator<Item = (&ClassKey, usize)> {
        self.classes.iter().map(|(k, s)| (k, s.len()))
    }
}
