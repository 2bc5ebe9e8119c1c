//! The wall clock as the binaries share it: milliseconds since the Unix epoch, the unit of
//! every time in the protocol and the store. One reading for the coordinator, the agent and
//! the CLI, so a clock before 1970 or past u64 means the same everywhere (0, or the largest).
//! Code whose behaviour depends on time takes its clock injected (the coordinator's
//! `time::Clock`); this is the real one's reading.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> u64 {
    millis_of(SystemTime::now())
}

/// Milliseconds since the Unix epoch of `t`: 0 for a time before it.
pub fn millis_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn readings_are_unix_milliseconds_and_never_panic() {
        assert_eq!(millis_of(UNIX_EPOCH + Duration::from_millis(1234)), 1234);
        assert_eq!(millis_of(UNIX_EPOCH - Duration::from_secs(1)), 0);
        // After 2020-01-01 on any machine running this.
        assert!(now_millis() > 1_577_836_800_000);
    }
}
