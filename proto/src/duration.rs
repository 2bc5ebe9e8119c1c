//! The one duration grammar of rota, shared by config files (`max_execution`,
//! `max_execution_grace`), the CLI (`--timeout`), the coordinator's flags (`--lease`,
//! `--heartbeat`, ...) and the agent's (`--drain-timeout`): dsari writes seconds as a number;
//! people also write `90s`, `5m`, `1h30m` or `500ms`. Not finite, negative and too large
//! values are refused here, so no caller can turn one into a panic.

use std::time::Duration;

/// Parses `"90"` (seconds), `"1.5"`, `"90s"`, `"5m"`, `"1h"`, `"2d"`, `"500ms"` or a sum such as
/// `"1h30m"`. Negative, empty and unknown units are refused with a message that shows the forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration \"{text}\" (expected seconds, or a number with ms, s, m, h or d, \
             such as \"90s\", \"5m\", \"1h30m\", \"500ms\")"
        )
    };
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return seconds_to_duration(seconds).map_err(|_| invalid());
    }
    let mut rest = trimmed;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else {
            match rest.chars().next() {
                Some('s') => (1.0, 1),
                Some('m') => (60.0, 1),
                Some('h') => (3600.0, 1),
                Some('d') => (86400.0, 1),
                _ => return Err(invalid()),
            }
        };
        total += number * unit;
        rest = &rest[len..];
    }
    seconds_to_duration(total).map_err(|_| invalid())
}

/// dsari's form: a number of seconds, fractions allowed; negative or not finite is refused.
pub fn seconds_to_duration(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("invalid duration {seconds} (expected a number of seconds >= 0)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds_to_duration(300.0), Ok(Duration::from_secs(300)));
    }

    #[test]
    fn units_and_sums_are_understood() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 1.5m "), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn garbage_negative_and_empty_are_refused() {
        for bad in ["", "5x", "m", "-5", "-5s", "1h 30m", "1..5s", "NaN", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            parse_duration("5x").unwrap_err(),
            "invalid duration \"5x\" (expected seconds, or a number with ms, s, m, h or d, such \
             as \"90s\", \"5m\", \"1h30m\", \"500ms\")"
        );
        assert!(seconds_to_duration(-1.0).is_err());
    }
}
