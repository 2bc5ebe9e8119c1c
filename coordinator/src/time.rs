//! Wall-clock helpers. The scheduler core never reads the clock; the shell reads it here and
//! passes milliseconds in.

/// Milliseconds since the Unix epoch, now: the one reading the binaries share.
pub use rota_proto::clock::now_millis;

/// RFC 3339 in UTC, to the second, for messages.
pub fn format_millis(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// The engine's time source: the wall clock, or in tests the wall clock plus an offset the
/// test moves forward, so retention ages, back-offs and schedules can be crossed without
/// sleeping (docs/style.md rule 8). Cheap to clone; every clone reads the same offset.
#[derive(Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the wall clock; None for the plain wall clock.
    offset: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.offset {
            None => f.write_str("Clock(wall)"),
            Some(o) => write!(f, "Clock(wall + {}ms)", o.load(Ordering::Relaxed)),
        }
    }
}

use std::sync::atomic::Ordering;

impl Clock {
    /// The wall clock.
    pub fn wall() -> Clock {
        Clock::default()
    }

    /// A clock that runs with the wall clock and jumps forward on [`Clock::advance`].
    pub fn adjustable() -> Clock {
        Clock {
            offset: Some(Default::default()),
        }
    }

    /// Milliseconds since the Unix epoch on this clock.
    pub fn now_millis(&self) -> u64 {
        let offset = self
            .offset
            .as_ref()
            .map_or(0, |o| o.load(Ordering::Relaxed));
        now_millis().saturating_add(offset)
    }

    /// Moves an adjustable clock forward (a wall clock cannot be moved: no effect).
    pub fn advance(&self, by: std::time::Duration) {
        if let Some(o) = &self.offset {
            o.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
        }
    }
}
