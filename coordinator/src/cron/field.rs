//! The six fields of a cron expression (after `H` expansion) turned into bitsets of allowed
//! values, parsed by the `croner` crate.
//!
//! The syntax is the classic Vixie one: a comma-separated list of `*`, `N`, `A-B`, each
//! optionally followed by `/STEP`. Months and weekdays also take three-letter English names
//! (`JAN`, `MON`), and weekday 7 is Sunday.

use croner::parser::{CronParser, Seconds};

use super::days::{self, DayRules};

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

/// Parses the six expanded fields (dsari's order) into bitsets (bit `v` set = value `v`
/// allowed) and the day rules, with the maintained `croner` crate doing the plain cron syntax
/// and `days.rs` croniter's `L`, `W`, `#` and `?`; rota keeps only the bitsets, which its own
/// DST-aware search walks (see `search.rs` for why not croner's).
///
/// Errors are one short phrase that starts with the field's name, for [`super::CronError`].
pub(super) fn parse_fields(fields: &[String]) -> Result<([u64; 6], DayRules), String> {
    let mut rules = DayRules::default();
    let mut plain: Vec<String> = fields.to_vec();
    // croniter reads a lone `?` in a day field as `*`.
    for day_field in [2, 4] {
        if plain[day_field] == "?" {
            plain[day_field] = "*".into();
        }
    }
    let (dom_text, dow_text) = (plain[2].clone(), plain[4].clone());
    let dom = days::split_day_of_month(&dom_text, &mut rules)?;
    let dow = days::split_day_of_week(&dow_text, &mut rules)?;
    plain[2] = dom.clone().unwrap_or_else(|| "*".into());
    plain[4] = dow.clone().unwrap_or_else(|| "*".into());
    for (spec, text) in FIELDS.iter().zip(&plain) {
        refuse_extensions(spec, text)?;
    }
    let parser = CronParser::builder().seconds(Seconds::Required).build();
    let pattern = croner_order(&plain);
    let cron = match parser.parse(&pattern.join(" ")) {
        Ok(cron) => cron,
        Err(err) => return Err(name_the_field(&parser, &plain, &err)),
    };
    let p = &cron.pattern;
    let components = [
        &p.minutes,
        &p.hours,
        &p.days,
        &p.months,
        &p.days_of_week,
        &p.seconds,
    ];
    let mut bits = [0u64; 6];
    for ((spec, component), out) in FIELDS.iter().zip(components).zip(&mut bits) {
        for v in spec.min..=spec.max {
            // croner's ALL_BIT (1): the plain "value allowed" flag.
            if component.is_bit_set(v as u16, 1).unwrap_or(false) {
                *out |= 1 << v;
            }
        }
    }
    // Weekday 7 is Sunday.
    if bits[4] & (1 << 7) != 0 {
        bits[4] = (bits[4] & !(1 << 7)) | 1;
    }
    // A day field made only of special items has no plain values.
    if dom.is_none() {
        bits[2] = 0;
    }
    if dow.is_none() {
        bits[4] = 0;
    }
    let has_star = |text: &str| text.split(',').any(|item| item == "*");
    const ALL_DAYS: u64 = ((1 << 32) - 1) & !1;
    const ALL_WEEKDAYS: u64 = (1 << 7) - 1;
    rules.dom_star = has_star(&dom_text) || (bits[2] == ALL_DAYS && dow_text.contains('*'));
    rules.dow_star = has_star(&dow_text) || (bits[4] == ALL_WEEKDAYS && dom_text.contains('*'));
    Ok((bits, rules))
}

/// croner reads `SEC MIN HOUR DOM MON DOW`; dsari writes `MIN HOUR DOM MON DOW SEC`.
fn croner_order(fields: &[String]) -> [&str; 6] {
    [
        &fields[5], &fields[0], &fields[1], &fields[2], &fields[3], &fields[4],
    ]
}

/// croner also reads Quartz's `L`, `W`, `#`, `?` and `+`; croniter's spellings of the first four
/// are taken out by `days.rs` before this runs, so any left are in a place croniter refuses too
/// (`L` in the hour, `W` in a list...) and are refused rather than half-honoured.
fn refuse_extensions(spec: &FieldSpec, text: &str) -> Result<(), String> {
    let mut rest = text.to_ascii_uppercase();
    for name in spec.names {
        rest = rest.replace(name, "");
    }
    match rest
        .chars()
        .find(|c| matches!(c, 'L' | 'W' | '#' | '?' | '+'))
    {
        Some(c) => Err(format!(
            "{}: \"{c}\" in \"{text}\" is not supported here (L and W belong in day-of-month, \
             # and LN in day-of-week, ? alone in either; + not at all)",
            spec.name
        )),
        None => Ok(()),
    }
}

/// croner's errors do not say which field is wrong: parse each field alone (the others `*`)
/// to find the first that fails, and name it.
fn name_the_field(
    parser: &CronParser,
    fields: &[String],
    err: &croner::errors::CronError,
) -> String {
    for (i, spec) in FIELDS.iter().enumerate() {
        let mut probe: Vec<String> = vec!["*".into(); 6];
        probe[i] = fields[i].clone();
        if let Err(err) = parser.parse(&croner_order(&probe).join(" ")) {
            return format!(
                "{}: invalid \"{}\" ({}; values are {}-{}{})",
                spec.name,
                fields[i],
                plain(&err),
                spec.min,
                spec.max,
                if spec.names.is_empty() {
                    ""
                } else {
                    " or names"
                }
            );
        }
    }
    plain(err)
}

/// croner's message without its "Component error: " style prefix and trailing period.
fn plain(err: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    let text = match err {
        E::InvalidPattern(m) | E::IllegalCharacters(m) | E::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    text.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(bits: u64) -> Vec<u32> {
        (0..64).filter(|v| bits & (1 << v) != 0).collect()
    }

    /// The bitset of field `position` when the others are `*` (second `0`).
    fn one(position: usize, text: &str) -> Result<u64, String> {
        let mut fields: Vec<String> = vec!["*".into(); 5];
        fields.push("0".into());
        fields[position] = text.into();
        parse_fields(&fields).map(|(bits, _)| bits[position])
    }

    #[test]
    fn star_covers_the_whole_range() {
        assert_eq!(values(one(1, "*").unwrap()), (0..24).collect::<Vec<_>>());
        assert_eq!(values(one(2, "*").unwrap()), (1..32).collect::<Vec<_>>());
    }

    #[test]
    fn lists_ranges_and_steps_combine() {
        let bits = one(0, "1,10-12,*/20,50-59/5").unwrap();
        assert_eq!(values(bits), vec![0, 1, 10, 11, 12, 20, 40, 50, 55]);
    }

    #[test]
    fn month_and_weekday_names_are_accepted() {
        assert_eq!(values(one(3, "jan,Mar-MAY").unwrap()), vec![1, 3, 4, 5]);
        assert_eq!(values(one(4, "MON-FRI").unwrap()), vec![1, 2, 3, 4, 5]);
        assert_eq!(values(one(4, "WED,SAT").unwrap()), vec![3, 6]);
    }

    #[test]
    fn weekday_seven_is_sunday() {
        assert_eq!(values(one(4, "5-7").unwrap()), vec![0, 5, 6]);
    }

    #[test]
    fn the_sixth_field_is_the_second() {
        let fields: Vec<String> = ["5", "*", "*", "*", "*", "30"].map(String::from).into();
        let (bits, _) = parse_fields(&fields).unwrap();
        assert_eq!(values(bits[0]), vec![5]);
        assert_eq!(values(bits[5]), vec![30]);
    }

    #[test]
    fn out_of_range_and_garbage_are_rejected_with_the_field_name() {
        for (position, text, field) in [
            (0, "61", "minute"),
            (2, "0", "day-of-month"),
            (1, "x", "hour"),
            (1, "5-2", "hour"),
            (1, "*/0", "hour"),
            (4, "MON-FOO", "day-of-week"),
        ] {
            let err = one(position, text).unwrap_err();
            assert!(
                err.starts_with(&format!("{field}: invalid \"{text}\" (")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn extensions_outside_croniters_places_are_refused() {
        assert_eq!(
            one(1, "L").unwrap_err(),
            "hour: \"L\" in \"L\" is not supported here (L and W belong in day-of-month, \
             # and LN in day-of-week, ? alone in either; + not at all)"
        );
        assert!(one(2, "5#2")
            .unwrap_err()
            .starts_with("day-of-month: \"#\""));
        assert!(one(4, "15W").is_err());
        assert!(one(2, "?/2").is_err());
        assert!(one(0, "?").is_err());
    }

    #[test]
    fn croniter_day_items_leave_no_plain_values() {
        let mut fields: Vec<String> = ["0", "0", "L", "*", "5#3", "0"].map(String::from).into();
        let (bits, rules) = parse_fields(&fields).unwrap();
        assert_eq!((bits[2], bits[4]), (0, 0));
        assert!(rules.last_day && !rules.dom_star && !rules.dow_star);
        fields[2] = "?".into();
        let (_, rules) = parse_fields(&fields).unwrap();
        assert!(rules.dom_star);
    }
}
