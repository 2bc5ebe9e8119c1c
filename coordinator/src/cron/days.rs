//! croniter's day syntax beyond plain values, and its rule for combining the two day fields.
//!
//! dsari hands its expressions to croniter, which reads, in day-of-month, `L` (the month's last
//! day, also inside a list: `1,L`; `20-L` is `20-31`) and `15W` / `W15` (the weekday nearest the
//! 15th, alone in its field), and in day-of-week `5#3` / `FRI#3` (the third Friday) and `L5`
//! (the last Friday); `?` in either day field is `*`. rota reads the same spellings here and
//! leaves the plain values to croner (`field.rs`). croner has these features too, but spells
//! the last weekday `5L`, never fires `31W` in a 30-day month (croniter moves it to the last day)
//! and combines them with the other day field its own way, so they would not fire as dsari does.
//!
//! # How the two day fields combine (croniter's rule, which dsari inherits)
//!
//! A day field is a *star* when one of its items is `*` (or `?`); a field that lists every value
//! by other means counts as a star only when the other field's text contains a `*`. When both
//! are stars or one is, a date must match both fields (a star matches every date). When neither
//! is, a date matches when it matches day-of-month (and the `#`/`L` weekday items, if any) or
//! matches day-of-week (and the `W` day, if any): croniter keeps `#`, `L5` and `W` on both sides
//! of its "or". So `0 0 13 * 5` fires on the 13th and on every Friday, `0 0 */2 * 1` on odd days
//! and Mondays (Vixie cron would read `*/2` as a star), and `0 0 1 * FRI#1` only on first Fridays.

use chrono::{Datelike, NaiveDate, Weekday};

/// The special day items of one schedule, and what croniter's rule needs to know about stars.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DayRules {
    /// `L` in day-of-month.
    pub last_day: bool,
    /// `NW`: the weekday nearest day N (croniter allows only one, alone in its field).
    pub nearest_weekday: Option<u32>,
    /// Per weekday (0 = Sunday): bit k (1-5) = the k-th such weekday of the month, bit 6 = the
    /// last one. Non-zero only when day-of-week is made of `#` and `L` items alone.
    pub nth: [u8; 7],
    /// Day-of-month is a star under croniter's rule (see the module docs).
    pub dom_star: bool,
    /// Day-of-week is a star under croniter's rule.
    pub dow_star: bool,
}

/// Bit 6 of [`DayRules::nth`]: the last such weekday of the month.
const LAST: u8 = 1 << 6;

/// Day-of-month with `L`, `X-L` and `W` taken out: the plain text left for croner (`None` when
/// nothing is left) and the rules found.
pub(super) fn split_day_of_month(
    text: &str,
    rules: &mut DayRules,
) -> Result<Option<String>, String> {
    let invalid = |why: &str| format!("day-of-month: invalid \"{text}\" ({why})");
    let items: Vec<&str> = text.split(',').collect();
    let mut plain = Vec::new();
    for item in &items {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            rules.last_day = true;
        } else if let Some(day) = upper
            .strip_suffix('W')
            .or_else(|| upper.strip_prefix('W'))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        {
            if items.len() > 1 {
                return Err(invalid("W takes a single day, not a list"));
            }
            let day: u32 = day.parse().map_err(|_| invalid("day out of range"))?;
            if !(1..=31).contains(&day) {
                return Err(invalid("W day must lie within 1-31"));
            }
            rules.nearest_weekday = Some(day);
        } else if let Some(from) = upper.strip_suffix("-L") {
            plain.push(format!("{from}-31"));
        } else {
            plain.push(item.to_string());
        }
    }
    Ok((!plain.is_empty()).then(|| plain.join(",")))
}

/// Day-of-week with `N#K` and `LN` taken out: the plain text left for croner (`None` when
/// nothing is left). croniter refuses plain values next to `#`/`L` items, and so does rota.
pub(super) fn split_day_of_week(
    text: &str,
    rules: &mut DayRules,
) -> Result<Option<String>, String> {
    let invalid = |why: &str| format!("day-of-week: invalid \"{text}\" ({why})");
    let mut plain = Vec::new();
    let mut special = false;
    for item in text.split(',') {
        let upper = item.to_ascii_uppercase();
        let (day, bit) = if let Some((day, nth)) = upper.split_once('#') {
            let nth: u8 = nth
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| invalid("the n in #n must be 1-5"))?;
            (day.to_string(), 1u8 << nth)
        } else if let Some(day) = upper
            .strip_prefix('L')
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        {
            (day.to_string(), LAST)
        } else {
            plain.push(item.to_string());
            continue;
        };
        special = true;
        for weekday in weekdays(&day).ok_or_else(|| invalid("unknown weekday"))? {
            rules.nth[weekday as usize] |= bit;
        }
    }
    if special && !plain.is_empty() {
        return Err(invalid("plain weekdays cannot be mixed with # or L items"));
    }
    Ok((!plain.is_empty()).then(|| plain.join(",")))
}

/// `5`, `FRI` or a range of either (`MON-FRI`), as weekday numbers (0 = Sunday; 7 is Sunday).
fn weekdays(text: &str) -> Option<Vec<u32>> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let one = |t: &str| -> Option<u32> {
        let n = match t.parse::<u32>() {
            Ok(n) => n,
            Err(_) => NAMES.iter().position(|name| *name == t)? as u32,
        };
        (n <= 7).then_some(n % 7)
    };
    match text.split_once('-') {
        // A name range only: croniter reads `1-5#2` as an error.
        Some((a, b)) if a.parse::<u32>().is_err() => {
            let (a, b) = (one(a)?, one(b)?);
            (a <= b).then(|| (a..=b).collect())
        }
        Some(_) => None,
        None => Some(vec![one(text)?]),
    }
}

/// Whether `date` matches the day fields: `dom`/`dow` are the plain-value bitsets (bit = day of
/// month / weekday from Sunday), `rules` the rest; combined as the module docs say.
pub(super) fn date_matches(dom: u64, dow: u64, rules: &DayRules, date: NaiveDate) -> bool {
    let has_nth = rules.nth.iter().any(|n| *n != 0);
    let month_part = || match rules.nearest_weekday {
        Some(day) => is_nearest_weekday(date, day),
        None => {
            rules.dom_star || dom & (1 << date.day()) != 0 || (rules.last_day && is_last_day(date))
        }
    };
    let week_part = || {
        if has_nth {
            nth_matches(rules, date)
        } else {
            rules.dow_star || dow & (1 << date.weekday().num_days_from_sunday()) != 0
        }
    };
    if rules.dom_star || rules.dow_star {
        return month_part() && week_part();
    }
    let by_month = month_part() && (!has_nth || nth_matches(rules, date));
    let by_week = week_part()
        && rules
            .nearest_weekday
            .is_none_or(|day| is_nearest_weekday(date, day));
    by_month || by_week
}

fn nth_matches(rules: &DayRules, date: NaiveDate) -> bool {
    let bits = rules.nth[date.weekday().num_days_from_sunday() as usize];
    let k = (date.day() - 1) / 7 + 1;
    bits & (1 << k) != 0 || (bits & LAST != 0 && date.day() + 7 > last_day_of(date))
}

fn last_day_of(date: NaiveDate) -> u32 {
    // The 28th plus four days is day (32 - last) of the next month.
    let probe = date.with_day(28).expect("every month has a 28th") + chrono::Days::new(4);
    32 - probe.day()
}

fn is_last_day(date: NaiveDate) -> bool {
    date.day() == last_day_of(date)
}

/// croniter's `W`: day N (the month's last day when it has no day N) if that is Monday-Friday,
/// else the Friday before or the Monday after, whichever stays in the month.
fn is_nearest_weekday(date: NaiveDate, day: u32) -> bool {
    let last = last_day_of(date);
    let day = day.min(last);
    let target = date.with_day(day).expect("day is within the month");
    let nearest = match target.weekday() {
        Weekday::Sat if day > 1 => day - 1,
        Weekday::Sat => day + 2,
        Weekday::Sun if day < last => day + 1,
        Weekday::Sun => day - 2,
        _ => day,
    };
    date.day() == nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn last_day_of_each_month() {
        let lasts: Vec<u32> = (1..=12).map(|m| last_day_of(d(2024, m, 1))).collect();
        assert_eq!(lasts, [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]);
        assert_eq!(last_day_of(d(2023, 2, 10)), 28);
    }

    #[test]
    fn nearest_weekday_moves_off_weekends_within_the_month() {
        // 2026-02-15 is a Sunday -> Monday 16th; 2026-08-01 is a Saturday -> Monday 3rd;
        // 2026-05-31 is a Sunday, the month's last day -> Friday 29th; 31W in April (30 days,
        // the 30th a Thursday) -> the 30th.
        assert!(is_nearest_weekday(d(2026, 2, 16), 15));
        assert!(is_nearest_weekday(d(2026, 8, 3), 1));
        assert!(is_nearest_weekday(d(2026, 5, 29), 31));
        assert!(is_nearest_weekday(d(2026, 4, 30), 31));
        assert!(!is_nearest_weekday(d(2026, 2, 15), 15));
    }

    #[test]
    fn special_items_are_split_from_plain_ones() {
        let mut rules = DayRules::default();
        assert_eq!(
            split_day_of_month("1,L", &mut rules).unwrap(),
            Some("1".into())
        );
        assert!(rules.last_day);
        assert_eq!(
            split_day_of_month("20-l", &mut rules).unwrap(),
            Some("20-31".into())
        );
        assert_eq!(split_day_of_month("w15", &mut rules).unwrap(), None);
        assert_eq!(rules.nearest_weekday, Some(15));
        assert!(split_day_of_month("15W,1", &mut rules).is_err());

        let mut rules = DayRules::default();
        assert_eq!(split_day_of_week("5#3,L1", &mut rules).unwrap(), None);
        assert_eq!(rules.nth[5], 1 << 3);
        assert_eq!(rules.nth[1], LAST);
        let mut rules = DayRules::default();
        split_day_of_week("mon-wed#2,sun#1,L7", &mut rules).unwrap();
        assert_eq!(
            rules.nth,
            [(1 << 1) | LAST, 1 << 2, 1 << 2, 1 << 2, 0, 0, 0]
        );
        for bad in ["5#3,1", "5#0", "5#6", "1-5#2", "XYZ#1"] {
            assert!(
                split_day_of_week(bad, &mut DayRules::default()).is_err(),
                "{bad}"
            );
        }
    }
}
