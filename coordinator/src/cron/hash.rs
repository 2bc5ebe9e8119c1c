//! Jenkins-style `H` ("hash") fields and dsari's `@` macros.
//!
//! `H` spreads jobs that share a schedule over the hour (or day, week...) by a hash of the job
//! name, so `H * * * *` on a hundred jobs does not start them all at minute 0. The hash must be
//! stable across restarts and machines, so it is CRC-32 of the job name (as dsari's
//! `croniter_hash` computes it), never std's randomly seeded hasher. A field at position `p`
//! uses `crc >> p`, so minute and hour of one job do not move in lockstep.
//!
//! The values are dsari's (`croniter_hash._hash_do`), so a job fires when it did under dsari.
//! With `h(n) = lo + (crc >> p) % (n - lo + 1)`, where `lo..=hi` is croniter's range of the
//! field (minute 0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-6, second 0-59):
//! - `H` is `h(hi)`, a value in the field's range;
//! - `H(a-b)` is `a + (crc >> p) % (b - a + 1)`, where a bound written as 0 means the field's own
//!   bound (dsari tests "is it set" with Python's truthiness);
//! - `H/n` is `h(n)-hi/n`: the offset is picked from `lo..=n`, so `H/15` may become `15-59/15`
//!   (three runs an hour, not four), as in dsari;
//! - `H(a-b)/n` is `(a + h(n))-b/n`.
//!
//! `R` in place of `H` (`R`, `R(a-b)`, `R/n`, `R(a-b)/n`) is the same with a random number for
//! the CRC, as in dsari. rota picks it when the schedule is parsed, so it holds until the config
//! is applied again or the coordinator restarts; dsari picks anew each time it computes a run.
//!
//! A stepped range that starts past its end is read as croniter 7 reads it: wrapping around the
//! field (`40-35/10` is 40, 50, 0, 10, 20, 30); one that starts at its end (`35-35/10`) is
//! croniter's "whole cycle" (`0-59/10`); one past the field's maximum is refused, as croniter
//! refuses it.

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

/// croniter's range of each field (minute, hour, dom, month, dow, second): what a bare `H`
/// picks from and what `H/n` steps up to.
const RANGES: [(u32, u32); 6] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6), (0, 59)];

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
    let (rest, crc) = if let Some(rest) = item.strip_prefix('H') {
        (rest, crc)
    } else if let Some(rest) = item.strip_prefix('R') {
        (rest, random_u32())
    } else {
        return Ok(item.to_string());
    };
    let invalid = || format!("{}: invalid hash \"{item}\"", spec.name);
    let (lo, hi) = RANGES[position];
    // dsari's `_hash_do(id, position, range_end, range_begin)`.
    let hash = |end: u32, begin: u32| (crc >> position) % (end - begin + 1) + begin;
    let (range, step) = match rest.split_once('/') {
        Some((range, step)) => {
            let step: u32 = step
                .parse()
                .ok()
                .filter(|s| *s >= lo.max(1))
                .ok_or_else(invalid)?;
            (range, Some(step))
        }
        None => (rest, None),
    };
    let bounds = if range.is_empty() {
        None
    } else {
        let inner = range
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(invalid)?;
        let (a, b) = inner.split_once('-').ok_or_else(invalid)?;
        let a: u32 = a.parse().map_err(|_| invalid())?;
        let b: u32 = b.parse().map_err(|_| invalid())?;
        Some((a, b))
    };
    let out_of_range = || {
        format!(
            "{}: hash \"{item}\" must lie within {}-{}",
            spec.name, spec.min, spec.max
        )
    };
    let past_the_end = || {
        format!(
            "{}: hash \"{item}\" gives a range past {hi} for this job (as in dsari)",
            spec.name
        )
    };
    Ok(match (bounds, step) {
        (None, None) => hash(hi, lo).to_string(),
        (Some((a, b)), None) => {
            let a = if a == 0 { lo } else { a };
            let b = if b == 0 { hi } else { b };
            if a > b || a < spec.min || b > spec.max {
                return Err(out_of_range());
            }
            hash(b, a).to_string()
        }
        (None, Some(n)) => stepped(hash(n, lo), hi, n, position).ok_or_else(past_the_end)?,
        (Some((a, b)), Some(n)) => {
            stepped(a + hash(n, lo), b, n, position).ok_or_else(past_the_end)?
        }
    })
}

/// A number for dsari's `R`: std's randomly keyed hasher, since a value that only spreads jobs
/// needs no random-number dependency.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    hasher.finish() as u32
}

/// `start-end/step` as croniter 7 expands it (see the module docs); `None` when croniter
/// refuses it (a bound past the field's maximum).
fn stepped(start: u32, end: u32, step: u32, position: usize) -> Option<String> {
    let (lo, hi) = RANGES[position];
    if start.max(end) > hi {
        return None;
    }
    Some(match start.cmp(&end) {
        std::cmp::Ordering::Less => format!("{start}-{end}/{step}"),
        std::cmp::Ordering::Equal => format!("{lo}-{hi}/{step}"),
        std::cmp::Ordering::Greater => {
            // croniter: start..=hi by step, then on from lo, skipping what the step overshot
            // past hi (with croniter's off-by-one kept: it counts from hi, not hi + 1).
            let mut values: Vec<u32> = (start..=hi).step_by(step as usize).collect();
            let last = *values.last().expect("start <= hi");
            let skip = if last + step > hi + 1 {
                step - (hi - last)
            } else {
                0
            };
            values.extend((lo + skip..=end).step_by(step as usize));
            let text: Vec<String> = values.iter().map(u32::to_string).collect();
            text.join(",")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::field::FIELDS;
    use super::*;

    /// `expand_field` for field `position` with the CRC of `name`.
    fn expand(text: &str, position: usize, name: &str) -> Result<String, String> {
        expand_field(text, position, &FIELDS[position], crc32(name.as_bytes()))
    }

    // crc32("hello") = 907060870 (python3 -c "import zlib; print(zlib.crc32(b'hello'))"), so
    // crc >> p for p = 0..5 is 907060870, 453530435, 226765217, 113382608, 56691304, 28345652.

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"hello"), 907_060_870);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn bare_h_picks_from_croniters_range_in_every_field() {
        // minute: 907060870 % 60 + 0 = 10; hour: 453530435 % 24 + 0 = 11;
        // day-of-month: 226765217 % 31 + 1 = 0 + 1 = 1; month: 113382608 % 12 + 1 = 9;
        // day-of-week: 56691304 % 7 + 0 = 5; second: 28345652 % 60 + 0 = 32.
        let got: Vec<String> = (0..6).map(|p| expand("H", p, "hello").unwrap()).collect();
        assert_eq!(got, ["10", "11", "1", "9", "5", "32"]);
    }

    #[test]
    fn bare_h_in_day_of_month_uses_all_31_days() {
        // crc32("job-16") = 2878477587; >> 2 = 719619396; 719619396 % 31 + 1 = 28 + 1 = 29,
        // a day rota used to keep out of (it picked 1-28).
        assert_eq!(expand("H", 2, "job-16").unwrap(), "29");
    }

    #[test]
    fn hash_range_picks_within_it_in_every_field() {
        // H(2-5): (crc >> p) % 4 + 2. minute 907060870 % 4 = 2 -> 4; hour 453530435 % 4 = 3 -> 5;
        // dom 226765217 % 4 = 1 -> 3; month 113382608 % 4 = 0 -> 2; dow 56691304 % 4 = 0 -> 2;
        // second 28345652 % 4 = 0 -> 2.
        let got: Vec<String> = (0..6)
            .map(|p| expand("H(2-5)", p, "hello").unwrap())
            .collect();
        assert_eq!(got, ["4", "5", "3", "2", "2", "2"]);
    }

    #[test]
    fn hash_range_bound_of_zero_means_the_fields_own_bound() {
        // dsari tests `if not range_end` / `if not range_begin`: H(0-0) is H(0-59), so
        // 907060870 % 60 = 10; H(5-0) is H(5-59): 907060870 % 55 + 5 = 45 + 5 = 50;
        // hour H(0-5): 453530435 % 6 + 0 = 5.
        assert_eq!(expand("H(0-0)", 0, "hello").unwrap(), "10");
        assert_eq!(expand("H(5-0)", 0, "hello").unwrap(), "50");
        assert_eq!(expand("H(0-5)", 1, "hello").unwrap(), "5");
    }

    #[test]
    fn hash_step_offset_is_picked_from_min_to_n_in_every_field() {
        // H/n is h-MAX/n with h = (crc >> p) % (n - MIN + 1) + MIN:
        // minute H/15: 907060870 % 16 = 6 -> 6-59/15; hour H/7: 453530435 % 8 = 3 -> 3-23/7;
        // dom H/7: 226765217 % 7 + 1 = 0 + 1 = 1 -> 1-31/7; month H/5: 113382608 % 5 + 1 = 4
        // -> 4-12/5; dow H/3: 56691304 % 4 = 0 -> 0-6/3; second H/15: 28345652 % 16 = 4
        // -> 4-59/15.
        assert_eq!(expand("H/15", 0, "hello").unwrap(), "6-59/15");
        assert_eq!(expand("H/7", 1, "hello").unwrap(), "3-23/7");
        assert_eq!(expand("H/7", 2, "hello").unwrap(), "1-31/7");
        assert_eq!(expand("H/5", 3, "hello").unwrap(), "4-12/5");
        assert_eq!(expand("H/3", 4, "hello").unwrap(), "0-6/3");
        assert_eq!(expand("H/15", 5, "hello").unwrap(), "4-59/15");
    }

    #[test]
    fn hash_step_offset_can_be_n_itself_as_in_dsari() {
        // crc32("job-1") = 1279408703; % 16 = 15, so H/15 is 15-59/15: three runs an hour.
        assert_eq!(expand("H/15", 0, "job-1").unwrap(), "15-59/15");
    }

    #[test]
    fn hash_range_with_step_starts_at_a_plus_the_hashed_offset_in_every_field() {
        // H(a-b)/n is (a + h)-b/n, h as for H/n:
        // minute H(30-59)/10: 907060870 % 11 = 1 -> 31-59/10;
        // hour H(10-23)/6: 453530435 % 7 = 1 -> 11-23/6;
        // dom H(10-20)/5: 226765217 % 5 + 1 = 2 + 1 = 3 -> 13-20/5;
        // month H(2-12)/4: 113382608 % 4 + 1 = 0 + 1 = 1 -> 3-12/4;
        // dow H(1-5)/2: 56691304 % 3 = 1 -> 2-5/2;
        // second H(0-30)/10: 28345652 % 11 = 5 -> 5-30/10.
        assert_eq!(expand("H(30-59)/10", 0, "hello").unwrap(), "31-59/10");
        assert_eq!(expand("H(10-23)/6", 1, "hello").unwrap(), "11-23/6");
        assert_eq!(expand("H(10-20)/5", 2, "hello").unwrap(), "13-20/5");
        assert_eq!(expand("H(2-12)/4", 3, "hello").unwrap(), "3-12/4");
        assert_eq!(expand("H(1-5)/2", 4, "hello").unwrap(), "2-5/2");
        assert_eq!(expand("H(0-30)/10", 5, "hello").unwrap(), "5-30/10");
    }

    #[test]
    fn hash_range_with_step_past_its_end_reads_as_croniter_does() {
        // crc32("job-8") = 899580571; % 11 = 10, so H(30-35)/10 is 40-35/10, which croniter
        // wraps: 40, 50, then from 0 (50 + 10 = 60 is not past 60, nothing skipped) to 35.
        assert_eq!(
            expand("H(30-35)/10", 0, "job-8").unwrap(),
            "40,50,0,10,20,30"
        );
        // crc32("job-2") = 3578489733; % 11 = 5: 35-35/10, croniter's "whole cycle" 0-59/10.
        assert_eq!(expand("H(30-35)/10", 0, "job-2").unwrap(), "0-59/10");
        // Past the field's maximum croniter refuses it: H(50-59)/15 for "hello" is
        // 907060870 % 16 = 6 -> 56-59/15 (fine); H(55-59)/15 is 61-59/15 (refused).
        assert_eq!(expand("H(50-59)/15", 0, "hello").unwrap(), "56-59/15");
        assert_eq!(
            expand("H(55-59)/15", 0, "hello").unwrap_err(),
            "minute: hash \"H(55-59)/15\" gives a range past 59 for this job (as in dsari)"
        );
    }

    #[test]
    fn r_is_h_with_a_random_number() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let v: u32 = expand("R(10-20)", 0, "job").unwrap().parse().unwrap();
            assert!((10..=20).contains(&v), "{v}");
            seen.insert(v);
            let step = expand("R/15", 0, "job").unwrap();
            assert!(step.ends_with("-59/15"), "{step}");
        }
        // 50 draws from 11 values: all equal has odds of 11^-49.
        assert!(seen.len() > 1, "{seen:?}");
    }

    #[test]
    fn hash_in_lists_and_plain_items_pass_through() {
        assert_eq!(expand("H,30", 0, "hello").unwrap(), "10,30");
        assert_eq!(expand("*/5", 0, "hello").unwrap(), "*/5");
    }

    #[test]
    fn malformed_hashes_are_rejected() {
        assert_eq!(
            expand("H(50-70)", 0, "x").unwrap_err(),
            "minute: hash \"H(50-70)\" must lie within 0-59"
        );
        assert_eq!(
            expand("H(9-5)", 0, "x").unwrap_err(),
            "minute: hash \"H(9-5)\" must lie within 0-59"
        );
        assert_eq!(
            expand("H(5)", 0, "x").unwrap_err(),
            "minute: invalid hash \"H(5)\""
        );
        assert_eq!(
            expand("H/0", 0, "x").unwrap_err(),
            "minute: invalid hash \"H/0\""
        );
    }
}
