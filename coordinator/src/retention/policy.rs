//! The retention policy as a pure function: given a finished run's facts, how many newer
//! finished runs share its key (job, or jobset for ad hoc runs) and `now`, does it go? No
//! store and no clock here, so every rule is a unit test (docs/style.md rules 6 and 8).

use std::time::Duration;

/// How long finished runs are kept. Every field is optional; an empty policy keeps everything
/// (the default, as before retention existed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// A finished run is deleted this long after it finished.
    pub max_age: Option<Duration>,
    /// Only the newest N finished runs of a job (of a jobset, for ad hoc runs) are kept.
    pub keep_last: Option<u64>,
    /// An errored run is kept at least this long after it finished, whatever `max_age` and
    /// `keep_last` say: failures are what people come back to look at.
    pub keep_failed_for: Option<Duration>,
}

impl Policy {
    /// This policy, with the fields it leaves unset taken from `base` (a job's policy over the
    /// file's, the file's over the coordinator's flags).
    pub fn over(self, base: Policy) -> Policy {
        Policy {
            max_age: self.max_age.or(base.max_age),
            keep_last: self.keep_last.or(base.keep_last),
            keep_failed_for: self.keep_failed_for.or(base.keep_failed_for),
        }
    }

    /// Whether this policy can delete anything at all.
    pub fn deletes(&self) -> bool {
        self.max_age.is_some() || self.keep_last.is_some()
    }

    /// One line for `rota status` and logs, in the config file's words.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.max_age {
            parts.push(format!("max_age {}", human(d)));
        }
        if let Some(n) = self.keep_last {
            parts.push(format!("keep_last {n}"));
        }
        if let Some(d) = self.keep_failed_for {
            parts.push(format!("keep_failed_for {}", human(d)));
        }
        if !self.deletes() {
            return "keep everything".into();
        }
        parts.join(", ")
    }
}

/// A duration as the config file would write it, in its largest whole unit.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s.is_multiple_of(len) {
            return format!("{}{unit}", s / len);
        }
    }
    format!("{s}s")
}

/// What the policy needs to know of one finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// When it finished (unix ms).
    pub finished_at: u64,
    /// It ended `errored` (what `keep_failed_for` protects).
    pub failed: bool,
}

/// Whether a finished run goes now. `newer` is how many finished runs of the same key are
/// newer than it (0 for the newest), for `keep_last`; `None` when the caller did not count
/// (an age-only question).
pub fn doomed(policy: &Policy, run: Finished, newer: Option<u64>, now: u64) -> bool {
    let age = now.saturating_sub(run.finished_at);
    let older_than = |d: Duration| u128::from(age) >= d.as_millis();
    if run.failed && policy.keep_failed_for.is_some_and(|d| !older_than(d)) {
        return false;
    }
    let too_old = policy.max_age.is_some_and(older_than);
    let too_many = matches!((policy.keep_last, newer), (Some(n), Some(k)) if k >= n);
    too_old || too_many
}

/// The runs of one key (newest first) that go now: [`doomed`] applied with each run's rank.
pub fn select(policy: &Policy, newest_first: &[(u64, Finished)], now: u64) -> Vec<u64> {
    newest_first
        .iter()
        .enumerate()
        .filter(|(rank, (_, run))| doomed(policy, *run, Some(*rank as u64), now))
        .map(|(_, (number, _))| *number)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    fn ok(finished_at: u64) -> Finished {
        Finished {
            finished_at,
            failed: false,
        }
    }

    fn failed(finished_at: u64) -> Finished {
        Finished {
            finished_at,
            failed: true,
        }
    }

    fn hours(h: u64) -> Option<Duration> {
        Some(Duration::from_secs(h * 3600))
    }

    #[test]
    fn an_empty_policy_keeps_everything() {
        let runs: Vec<_> = (0..5).map(|i| (i, ok(i))).collect();
        assert!(select(&Policy::default(), &runs, u64::MAX).is_empty());
        assert_eq!(Policy::default().describe(), "keep everything");
    }

    #[test]
    fn max_age_takes_runs_finished_at_least_that_long_ago_and_nothing_younger() {
        let policy = Policy {
            max_age: hours(2),
            ..Default::default()
        };
        let now = 10 * HOUR;
        let runs = [
            (3, ok(now - HOUR)),
            (2, ok(now - 2 * HOUR)),
            (1, ok(now - 2 * HOUR - 1)),
        ];
        assert_eq!(select(&policy, &runs, now), vec![2, 1]);
    }

    #[test]
    fn keep_last_keeps_the_newest_n_of_a_key() {
        let policy = Policy {
            keep_last: Some(2),
            ..Default::default()
        };
        let runs: Vec<_> = (1..=5).rev().map(|n| (n, ok(n))).collect();
        assert_eq!(select(&policy, &runs, 100), vec![3, 2, 1]);
    }

    #[test]
    fn either_limit_deletes() {
        let policy = Policy {
            max_age: hours(1),
            keep_last: Some(3),
            ..Default::default()
        };
        let now = 10 * HOUR;
        // Newest first: two young, one old, then a fourth that is young but past keep_last.
        let runs = [
            (4, ok(now)),
            (3, ok(now - 2 * HOUR)),
            (2, ok(now)),
            (1, ok(now)),
        ];
        assert_eq!(select(&policy, &runs, now), vec![3, 1]);
    }

    #[test]
    fn keep_failed_for_protects_errored_runs_from_both_limits_until_it_ends() {
        let policy = Policy {
            max_age: hours(1),
            keep_last: Some(1),
            keep_failed_for: hours(5),
        };
        let now = 10 * HOUR;
        let runs = [
            (4, ok(now)),
            (3, failed(now - 2 * HOUR)),
            (2, ok(now - 2 * HOUR)),
            (1, failed(now - 6 * HOUR)),
        ];
        assert_eq!(select(&policy, &runs, now), vec![2, 1]);
    }

    #[test]
    fn an_age_only_question_ignores_keep_last() {
        let policy = Policy {
            keep_last: Some(1),
            ..Default::default()
        };
        assert!(!doomed(&policy, ok(0), None, u64::MAX));
        assert!(doomed(&policy, ok(0), Some(1), 0));
    }

    #[test]
    fn a_job_policy_wins_field_by_field() {
        let base = Policy {
            max_age: hours(24),
            keep_last: Some(1000),
            keep_failed_for: None,
        };
        let job = Policy {
            keep_last: Some(5),
            ..Default::default()
        };
        assert_eq!(
            job.over(base),
            Policy {
                max_age: hours(24),
                keep_last: Some(5),
                keep_failed_for: None,
            }
        );
        assert_eq!(job.over(base).describe(), "max_age 1d, keep_last 5");
    }

    #[test]
    fn a_run_finished_in_the_future_is_not_old() {
        // A clock stepped back must not make every run look ancient.
        let policy = Policy {
            max_age: hours(1),
            ..Default::default()
        };
        assert!(!doomed(&policy, ok(10 * HOUR), None, HOUR));
    }
}
