//! One field of a cron expression (after `H` expansion) turned into a bitset of allowed values.
//!
//! The syntax is the classic Vixie/croniter one: a comma-separated list of `*`, `N`, `A-B`, each
//! optionally followed by `/STEP`; `N/STEP` means `N-MAX/STEP` as croniter reads it. Months and
//! weekdays also take three-letter English names (`JAN`, `MON`), and weekday 7 is Sunday.

/// The range and spelling of one cron field, so one parser serves all six.
#[derive(Debug, Clone, Copy)]
pub(super) struct FieldSpec {
    /// Shown in error messages: `minute: 61 is out of range 0-59`.
    pub name: &'static str,
    pub min: u32,
    pub max: u32,
    /// Names accepted instead of numbers; `names[i]` means `min + i`.
    pub names: &'static [&'static str],
}

pub(super) const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
pub(super) const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
pub(super) const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
pub(super) const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
/// 0-7 so that both 0 and 7 mean Sunday, as in cron; bit 7 is folded onto bit 0 after parsing.
pub(super) const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};
pub(super) const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};

/// The fields in dsari's order: the optional sixth field is the second.
pub(super) const FIELDS: [FieldSpec; 6] = [MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, SECOND];

/// Parses one expanded field into a bitset (bit `v` set = value `v` allowed).
///
/// Errors are one short phrase that starts with the field's name, for [`super::CronError`].
pub(super) fn parse_field(spec: &FieldSpec, text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err(format!("{}: empty field", spec.name));
    }
    let mut bits = 0u64;
    for item in text.split(',') {
        bits |= parse_item(spec, item)?;
    }
    if spec.max == 7 && bits & (1 << 7) != 0 {
        bits = (bits & !(1 << 7)) | 1;
    }
    Ok(bits)
}

fn parse_item(spec: &FieldSpec, item: &str) -> Result<u64, String> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => {
            let step: u32 =
                step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{}: invalid step \"{step}\" in \"{item}\"", spec.name)
                })?;
            (range, Some(step))
        }
        None => (item, None),
    };
    let (lo, hi) = if range == "*" {
        (spec.min, spec.max)
    } else if let Some((a, b)) = range.split_once('-') {
        let (a, b) = (value(spec, a, item)?, value(spec, b, item)?);
        if a > b {
            return Err(format!("{}: range \"{range}\" runs backwards", spec.name));
        }
        (a, b)
    } else {
        let v = value(spec, range, item)?;
        // croniter reads `N/STEP` as `N-MAX/STEP`.
        (v, if step.is_some() { spec.max } else { v })
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits)
}

fn value(spec: &FieldSpec, text: &str, item: &str) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    let v = if let Some(i) = spec.names.iter().position(|n| *n == upper) {
        spec.min + i as u32
    } else {
        text.parse::<u32>().map_err(|_| {
            if text.is_empty() {
                format!("{}: invalid item \"{item}\"", spec.name)
            } else {
                format!("{}: invalid value \"{text}\"", spec.name)
            }
        })?
    };
    if v < spec.min || v > spec.max {
        return Err(format!(
            "{}: {v} is out of range {}-{}",
            spec.name, spec.min, spec.max
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(bits: u64) -> Vec<u32> {
        (0..64).filter(|v| bits & (1 << v) != 0).collect()
    }

    #[test]
    fn star_covers_the_whole_range() {
        assert_eq!(
            values(parse_field(&HOUR, "*").unwrap()),
            (0..24).collect::<Vec<_>>()
        );
    }

    #[test]
    fn lists_ranges_and_steps_combine() {
        let bits = parse_field(&MINUTE, "1,10-12,*/20,50/5").unwrap();
        assert_eq!(values(bits), vec![0, 1, 10, 11, 12, 20, 40, 50, 55]);
    }

    #[test]
    fn month_and_weekday_names_are_accepted() {
        assert_eq!(
            values(parse_field(&MONTH, "jan,Mar-MAY").unwrap()),
            vec![1, 3, 4, 5]
        );
        assert_eq!(
            values(parse_field(&DAY_OF_WEEK, "MON-FRI").unwrap()),
            vec![1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn weekday_seven_is_sunday() {
        assert_eq!(
            values(parse_field(&DAY_OF_WEEK, "5-7").unwrap()),
            vec![0, 5, 6]
        );
    }

    #[test]
    fn out_of_range_and_garbage_are_rejected_with_the_field_name() {
        assert_eq!(
            parse_field(&MINUTE, "61").unwrap_err(),
            "minute: 61 is out of range 0-59"
        );
        assert_eq!(
            parse_field(&DAY_OF_MONTH, "0").unwrap_err(),
            "day-of-month: 0 is out of range 1-31"
        );
        assert_eq!(
            parse_field(&HOUR, "x").unwrap_err(),
            "hour: invalid value \"x\""
        );
        assert_eq!(
            parse_field(&HOUR, "5-2").unwrap_err(),
            "hour: range \"5-2\" runs backwards"
        );
        assert_eq!(
            parse_field(&HOUR, "*/0").unwrap_err(),
            "hour: invalid step \"0\" in \"*/0\""
        );
    }
}
