//! The awake clock: time this coordinator process actually ran.
//!
//! A lease says "an agent silent this long is lost", which is only fair if the coordinator was
//! listening all that time. A coordinator that was itself stopped (SIGSTOP, a frozen VM, a
//! swapped-out process) sees its monotonic clock jump on waking, and every agent would look
//! silent for the whole stall although their messages sit unread in its sockets. So leases are
//! judged on awake time instead.
//!
//! A stall is detected as a late observation: a ticker thread reads the clock every
//! [`TICK`] while the process runs, so two consecutive readings are never much further apart
//! than that; a gap longer than [`MAX_GAP`] means the process did not run, and only `MAX_GAP`
//! of it counts as awake. Whoever reads the clock first after a stall (the ticker, a lease
//! timer, the engine) sees the gap, so no reading taken after the wake-up includes the stall.
//! Stalls shorter than `MAX_GAP` count as awake time; a ticker delayed past `MAX_GAP` by load
//! only makes leases a little longer, never shorter.

use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often the ticker reads the clock.
pub const TICK: Duration = Duration::from_millis(100);
/// The longest gap between readings counted as awake time.
pub const MAX_GAP: Duration = Duration::from_millis(500);

/// Pure bookkeeping over monotonic readings (time injected, so it is testable).
#[derive(Debug, Default, Clone)]
pub struct Observer {
    last: Duration,
    awake: Duration,
    stalled: Duration,
}

impl Observer {
    /// Takes a monotonic reading (time since some origin, never decreasing) and returns the
    /// awake time at that reading.
    pub fn observe(&mut self, monotonic: Duration) -> Duration {
        let gap = monotonic.saturating_sub(self.last);
        self.last = self.last.max(monotonic);
        if gap > MAX_GAP {
            self.stalled += gap - MAX_GAP;
            self.awake += MAX_GAP;
        } else {
            self.awake += gap;
        }
        self.awake
    }

    /// The total stall detected so far.
    pub fn stalled(&self) -> Duration {
        self.stalled
    }
}

/// The process's awake clock; see the module doc.
#[derive(Debug)]
pub struct AwakeClock {
    origin: Instant,
    observer: Mutex<Observer>,
}

impl AwakeClock {
    fn observe(&self) -> Observer {
        let monotonic = self.origin.elapsed();
        let mut o = self
            .observer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        o.observe(monotonic);
        o.clone()
    }

    /// Awake time since the clock started.
    pub fn now(&self) -> Duration {
        self.observe().awake
    }

    /// Total time the process was detected stalled since the clock started.
    pub fn stalled(&self) -> Duration {
        self.observe().stalled
    }
}

/// The one clock of this process (stalls stop the whole process); its ticker thread starts
/// with the first use.
pub fn clock() -> &'static AwakeClock {
    static CLOCK: OnceLock<&'static AwakeClock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let clock: &'static AwakeClock = Box::leak(Box::new(AwakeClock {
            origin: Instant::now(),
            observer: Mutex::new(Observer::default()),
        }));
        let spawned = std::thread::Builder::new()
            .name("rota-awake".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                clock.observe();
            });
        if let Err(e) = spawned {
            // Without the ticker a stall is still seen by the next reading, only later.
            tracing::warn!("cannot start the awake-clock ticker: {e}");
        }
        clock
    })
}

/// A lease ran out: nothing arrived for that much awake time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silent;

/// Waits until `lease` of awake time has passed since `since` (an awake reading).
pub async fn lease_end(since: Duration, lease: Duration) {
    loop {
        let left = lease.saturating_sub(clock().now().saturating_sub(since));
        if left.is_zero() {
            return;
        }
        // Re-armed for what is left: after a stall, the wake-up finds awake time short of
        // the lease and waits again.
        tokio::time::sleep(left).await;
    }
}

/// Like `tokio::time::timeout`, but the lease runs on awake time.
pub async fn timeout<F: Future>(lease: Duration, fut: F) -> Result<F::Output, Silent> {
    let since = clock().now();
    tokio::select! {
        out = fut => Ok(out),
        () = lease_end(since, lease) => Err(Silent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Readings every 100 ms up to `to`, as the ticker takes them.
    fn tick_to(o: &mut Observer, to: u64) {
        for t in (100..=to).step_by(100) {
            o.observe(ms(t));
        }
    }

    #[test]
    fn regular_readings_count_in_full() {
        let mut o = Observer::default();
        tick_to(&mut o, 3000);
        assert_eq!(o.observe(ms(3000)), ms(3000));
        assert_eq!(o.stalled(), Duration::ZERO);
    }

    #[test]
    fn a_gap_longer_than_max_gap_counts_only_max_gap_and_the_rest_as_stall() {
        let mut o = Observer::default();
        tick_to(&mut o, 1000);
        // Stopped from 1.0 s to 26.0 s (25 s).
        let awake = o.observe(ms(26_000));
        assert_eq!(awake, ms(1000) + MAX_GAP);
        assert_eq!(o.stalled(), ms(25_000) - MAX_GAP);
        // Afterwards time counts in full again.
        assert_eq!(o.observe(ms(26_100)), ms(1000) + MAX_GAP + ms(100));
    }

    #[test]
    fn readings_that_go_backwards_change_nothing() {
        let mut o = Observer::default();
        tick_to(&mut o, 1000);
        assert_eq!(o.observe(ms(900)), ms(1000));
        assert_eq!(o.observe(ms(1100)), ms(1100));
    }

    #[tokio::test]
    async fn timeout_fires_after_the_lease_when_nothing_arrives() {
        let t = Instant::now();
        let out = timeout(ms(300), std::future::pending::<()>()).await;
        assert_eq!(out, Err(Silent));
        assert!(t.elapsed() >= ms(300));
        assert_eq!(timeout(ms(300), async { 7 }).await, Ok(7));
    }
}
