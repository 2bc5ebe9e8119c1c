//! `retention:` (top level and per job) turned into a [`Policy`], each value checked.

use super::error::ConfigError;
use super::raw::RawRetention;
use crate::retention::Policy;

/// The policy `raw` writes; errors name the key as `retention.max_age` and so on.
pub(super) fn policy(
    raw: Option<&RawRetention>,
    invalid: impl Fn(&str, String) -> ConfigError,
) -> Result<Policy, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Policy::default());
    };
    let duration = |key: &str, value: &Option<super::raw::DurationValue>| {
        value
            .as_ref()
            .map(|v| v.to_duration())
            .transpose()
            .map_err(|e| invalid(&format!("retention.{key}"), e))
    };
    if raw.keep_last == Some(0) {
        return Err(invalid(
            "retention.keep_last",
            "must be at least 1 (leave it out to keep every run)".into(),
        ));
    }
    Ok(Policy {
        max_age: duration("max_age", &raw.max_age)?,
        keep_last: raw.keep_last,
        keep_failed_for: duration("keep_failed_for", &raw.keep_failed_for)?,
    })
}
