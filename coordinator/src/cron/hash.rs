//! Jenkins-style `H` ("hash") fields and dsari's `@` macros.
//!
//! `H` spreads jobs that share a schedule over the hour (or day, week...) by a hash of the job
//! name, so `H * * * *` on a hundred jobs does not start them all at minute 0. The hash must be
//! stable across restarts and machines, so it is CRC-32 of the job name (as dsari's
//! `croniter_hash` computes it), never std's randomly seeded hasher. A field at position `p`
//! uses `crc >> p`, so minute and hour of one job do not move in lockstep.
//!
//! Values agree with dsari for `H` in minute, hour, month and second and for every `H(a-b)`.
//! Deliberate differences, each fixing a dsari quirk:
//! - `H` in day-of-month picks 1-28 (as Jenkins does), not 1-31, so a monthly job never skips
//!   the short months.
//! - `H` in day-of-week picks 0-6, so Sunday is not twice as likely (croniter >= 1.0.5 uses 0-7).
//! - `H/n` and `H(a-b)/n` pick the offset in `0..n`; dsari picks in `0..=n`, which can drop
//!   one run per cycle (e.g. `H/15` becoming `15-59/15`: three runs an hour instead of four).

use super::field::FieldSpec;

/// CRC-32 (IEEE 802.3, as zlib and Python's `binascii.crc32`), bit by bit: names are short and
/// this runs once per parse, so a table is not worth its lines.
pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// dsari's macros, each as six fields (the sixth is the second). `None` for an unknown macro.
pub(super) fn expand_macro(expr: &str) -> Option<&'static str> {
    Some(match expr.to_ascii_lowercase().as_str() {
        "@midnight" => "H H(0-2) * * * H",
        "@hourly" => "H * * * * H",
        "@daily" => "H H * * * H",
        "@weekly" => "H H * * H H",
        "@monthly" => "H H H * * H",
        "@yearly" | "@annually" => "H H H H * H",
        _ => return None,
    })
}

/// The values a bare `H` picks from at each position (minute, hour, dom, month, dow, second).
const HASH_RANGES: [(u32, u32); 6] = [(0, 59), (0, 23), (1, 28), (1, 12), (0, 6), (0, 59)];
/// The last value a `H/n` steps up to at each position.
const STEP_TOPS: [u32; 6] = [59, 23, 31, 12, 6, 59];

/// Replaces every `H` item of one field (comma-separated) by plain cron syntax.
///
/// `crc` is [`crc32`] of the job name; `position` is the field's index in dsari's order.
pub(super) fn expand_field(
    text: &str,
    position: usize,
    spec: &FieldSpec,
    crc: u32,
) -> Result<String, String> {
    let items: Result<Vec<String>, String> = text
        .split(',')
        .map(|item| expand_item(item, position, spec, crc))
        .collect();
    Ok(items?.join(","))
}

fn expand_item(item: &str, position: usize, spec: &FieldSpec, crc: u32) -> Result<String, String> {
    let Some(rest) = item.strip_prefix('H') else {
        return Ok(item.to_string());
    };
    let invalid = || format!("{}: invalid hash \"{item}\"", spec.name);
    let hashed = crc >> position;
    let (range, step) = match rest.split_once('/') {
        Some((range, step)) => {
            let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(invalid)?;
            (range, Some(step))
        }
        None => (rest, None),
    };
    let (lo, hi, top) = if range.is_empty() {
        let (lo, hi) = HASH_RANGES[position];
        (lo, hi, STEP_TOPS[position])
    } else {
        let inner = range
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(invalid)?;
        let (a, b) = inner.split_once('-').ok_or_else(invalid)?;
        let a: u32 = a.parse().map_err(|_| invalid())?;
        let b: u32 = b.parse().map_err(|_| invalid())?;
        if a > b || a < spec.min || b > spec.max {
            return Err(format!(
                "{}: hash range \"{item}\" must lie within {}-{}",
                spec.name, spec.min, spec.max
            ));
        }
        (a, b, b)
    };
    Ok(match step {
        None => (lo + hashed % (hi - lo + 1)).to_string(),
        Some(step) => {
            let offset = hashed % step.min(top - lo + 1);
            format!("{}-{top}/{step}", lo + offset)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::field::{DAY_OF_MONTH, HOUR, MINUTE};
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"hello"), 0x3610_A686);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn bare_h_matches_dsari_for_minute_hour_and_second() {
        // dsari's tests/test_croniter_hash.py: "hello" hashes to minute 10, hour 11, second 32.
        let crc = crc32(b"hello");
        assert_eq!(expand_field("H", 0, &MINUTE, crc).unwrap(), "10");
        assert_eq!(expand_field("H", 1, &HOUR, crc).unwrap(), "11");
        assert_eq!(
            expand_field("H", 5, &super::super::field::SECOND, crc).unwrap(),
            "32"
        );
    }

    #[test]
    fn hash_range_matches_dsari() {
        // dsari: "H H H(3-5) * *" for "hello" runs on the 5th.
        let crc = crc32(b"hello");
        assert_eq!(expand_field("H(3-5)", 2, &DAY_OF_MONTH, crc).unwrap(), "5");
    }

    #[test]
    fn hash_step_offsets_within_the_first_period() {
        for name in ["a", "b", "hello", "dump-db1"] {
            let crc = crc32(name.as_bytes());
            let text = expand_field("H/15", 0, &MINUTE, crc).unwrap();
            let start: u32 = text.split('-').next().unwrap().parse().unwrap();
            assert!(start < 15, "{name}: {text}");
            assert!(text.ends_with("-59/15"), "{text}");
        }
    }

    #[test]
    fn hash_in_lists_and_plain_items_pass_through() {
        let crc = crc32(b"hello");
        assert_eq!(expand_field("H,30", 0, &MINUTE, crc).unwrap(), "10,30");
        assert_eq!(expand_field("*/5", 0, &MINUTE, crc).unwrap(), "*/5");
    }

    #[test]
    fn malformed_hashes_are_rejected() {
        let crc = crc32(b"x");
        assert_eq!(
            expand_field("H(50-70)", 0, &MINUTE, crc).unwrap_err(),
            "minute: hash range \"H(50-70)\" must lie within 0-59"
        );
        assert_eq!(
            expand_field("H(5)", 0, &MINUTE, crc).unwrap_err(),
            "minute: invalid hash \"H(5)\""
        );
        assert_eq!(
            expand_field("H/0", 0, &MINUTE, crc).unwrap_err(),
            "minute: invalid hash \"H/0\""
        );
    }
}
