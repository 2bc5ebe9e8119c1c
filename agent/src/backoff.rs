//! Reconnect delays: exponential with full jitter.
//!
//! When a coordinator restarts, every agent loses its stream at the same moment; full jitter
//! (a uniform delay between zero and the current cap) spreads their reconnects out instead of
//! having them all knock at once, and the cap keeps a long outage from stretching the delay
//! past a few seconds.

use std::time::Duration;

use rand::Rng as _;

/// First cap: a coordinator that restarts quickly is back within a fraction of a second.
pub const INITIAL: Duration = Duration::from_millis(100);
/// Largest cap: after a long outage the agent still notices the coordinator within seconds.
pub const MAX: Duration = Duration::from_secs(5);

/// The state of the delay sequence between two successful handshakes.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    cap: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s, the agent's reconnect policy.
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// A sequence whose cap starts at `initial` and doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            cap: initial,
        }
    }

    /// The cap the next delay is drawn under; exposed so tests can check the doubling.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// A delay drawn uniformly from `[0, cap]`; then the cap doubles (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let cap_ms = u64::try_from(self.cap.as_millis()).unwrap_or(u64::MAX);
        let delay = Duration::from_millis(rand::rng().random_range(0..=cap_ms));
        self.cap = (self.cap * 2).min(self.max);
        delay
    }

    /// Starts over at the initial cap: called after a successful `Welcome`, so the next outage
    /// is again noticed quickly.
    pub fn reset(&mut self) {
        self.cap = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_doubles_from_100ms_to_5s_and_stays_there() {
        let mut backoff = Backoff::default();
        let mut caps = Vec::new();
        for _ in 0..8 {
            caps.push(backoff.cap().as_millis());
            backoff.next_delay();
        }
        assert_eq!(caps, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn every_delay_lies_between_zero_and_its_cap() {
        let mut backoff = Backoff::default();
        for _ in 0..200 {
            let cap = backoff.cap();
            let delay = backoff.next_delay();
            assert!(delay <= cap, "{delay:?} > {cap:?}");
        }
    }

    #[test]
    fn delays_are_jittered_not_fixed() {
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(5));
            distinct.insert(backoff.next_delay());
        }
        assert!(
            distinct.len() > 10,
            "only {} distinct delays",
            distinct.len()
        );
    }

    #[test]
    fn reset_goes_back_to_the_initial_cap() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.cap(), INITIAL);
    }
}
