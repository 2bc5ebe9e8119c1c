//! Finding the next fire time: a calendar search in wall-clock time, then the mapping of each
//! wall-clock candidate to instants under the DST rules of the module docs.
//!
//! Wall-clock order and instant order differ only around a fall-back, where a later wall-clock
//! time can be an earlier instant. So the search starts a little before `t` and goes on a little
//! past its first hit whenever an offset change is near ([`MARGIN`]); elsewhere the first hit is
//! the answer.
//!
//! Why not croner's own `find_next_occurrence` (croner parses the fields, see `field.rs`):
//! croner 3.0 returns an instant *before* the one asked about when asked during the second
//! pass of a fall-back hour (02:10 CET on 2025-10-26 in Europe/Berlin gives 02:30 CEST, an
//! hour earlier), and it drops an interval job's runs in the repeated hour, which Vixie cron
//! keeps. The tests in `tests.rs` pin both cases.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike, Utc,
};

use super::{days, Cron};

/// Longer than any DST shift in the tz database (2 h), so the candidates that can map to an
/// instant before the first hit all lie within it.
const MARGIN: Duration = Duration::hours(3);
/// How many days the calendar search looks ahead: more than the 8 years between two 29ths of
/// February (1896 -> 1904), so `0 0 29 2 *` is always found, and more than the 28-year cycle
/// in which a date falls on each weekday (with room for a skipped leap day at 2100), so a
/// date-and-weekday rule such as `15W 2 5#3` (the 15th of February on a Friday, 2019 -> 2030)
/// is too. Only a schedule that never fires walks it all, and [`super::Schedule::parse`]
/// refuses those.
const MAX_DAYS: u32 = 366 * 40;

pub(super) fn next_after(s: &Cron, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Far from today chrono's local-time arithmetic can overflow and panic; no job needs it.
    if !(1..=9990).contains(&t.year()) {
        return None;
    }
    let t_second = t.with_nanosecond(0).unwrap_or(t);
    let local = s.tz.from_utc_datetime(&t_second.naive_utc()).naive_local();
    let start = if near_offset_change(s, t) {
        local.checked_sub_signed(MARGIN).unwrap_or(local)
    } else {
        local
    };
    let mut candidate = next_local_match(s, start)?;
    let mut best: Option<DateTime<Utc>> = None;
    loop {
        for instant in instants(s, candidate).into_iter().flatten() {
            if instant > t && best.is_none_or(|b| instant < b) {
                best = Some(instant);
            }
        }
        if let Some(b) = best {
            let b_local = s.tz.from_utc_datetime(&b.naive_utc()).naive_local();
            let past_margin = b_local
                .checked_add_signed(MARGIN)
                .is_none_or(|limit| candidate > limit);
            if past_margin || !near_offset_change(s, b) {
                return Some(b);
            }
        }
        match candidate
            .checked_add_signed(Duration::seconds(1))
            .and_then(|next| next_local_match(s, next))
        {
            Some(next) => candidate = next,
            None => return best,
        }
    }
}

/// Whether the zone's UTC offset changes within [`MARGIN`] of `t` (at the ends of chrono's
/// range, where `t +- MARGIN` does not exist, there is no change to worry about).
fn near_offset_change(s: &Cron, t: DateTime<Utc>) -> bool {
    let offset = |u: DateTime<Utc>| s.tz.offset_from_utc_datetime(&u.naive_utc()).fix();
    let here = offset(t);
    [t.checked_sub_signed(MARGIN), t.checked_add_signed(MARGIN)]
        .into_iter()
        .flatten()
        .any(|u| offset(u) != here)
}

/// The instants at which the wall-clock time `local` fires (at most two).
fn instants(s: &Cron, local: NaiveDateTime) -> [Option<DateTime<Utc>>; 2] {
    match s.tz.from_local_datetime(&local) {
        LocalResult::Single(at) => [Some(at.to_utc()), None],
        LocalResult::Ambiguous(first, second) if s.every_hour => {
            [Some(first.to_utc()), Some(second.to_utc())]
        }
        LocalResult::Ambiguous(first, _) => [Some(first.to_utc()), None],
        LocalResult::None if s.every_hour => [None, None],
        LocalResult::None => [end_of_gap(s, local), None],
    }
}

/// The first instant after the DST gap that swallowed `local`, at the schedule's first second
/// (as dsari: `30 2 * * *` hashed to second 42 fires at 03:00:42 CEST, so hashed jobs stay
/// spread). Gaps in the tz database start and end on whole minutes, so stepping by minutes
/// lands exactly on the end.
fn end_of_gap(s: &Cron, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let second = lowest_from(s.seconds, 0)?;
    let mut probe = local.with_second(0)?;
    for _ in 0..24 * 60 {
        probe = probe.checked_add_signed(Duration::minutes(1))?;
        if s.tz.from_local_datetime(&probe).earliest().is_some() {
            let at =
                s.tz.from_local_datetime(&probe.with_second(second)?)
                    .earliest()?;
            return Some(at.to_utc());
        }
    }
    None
}

/// The first wall-clock time at or after `from` whose fields all match.
fn next_local_match(s: &Cron, from: NaiveDateTime) -> Option<NaiveDateTime> {
    let mut date = from.date();
    let mut not_before = from.time();
    for _ in 0..MAX_DAYS {
        if date_matches(s, date) {
            if let Some(time) = first_time_at_or_after(s, not_before) {
                return Some(date.and_time(time));
            }
        }
        date = date.succ_opt()?;
        not_before = NaiveTime::MIN;
    }
    None
}

fn date_matches(s: &Cron, date: NaiveDate) -> bool {
    has(s.months, date.month())
        && days::date_matches(s.days_of_month, s.days_of_week, &s.days, date)
}

fn first_time_at_or_after(s: &Cron, from: NaiveTime) -> Option<NaiveTime> {
    let (h0, m0, s0) = (from.hour(), from.minute(), from.second());
    for hour in (h0..24).filter(|h| has(s.hours, *h)) {
        let first_minute = if hour == h0 { m0 } else { 0 };
        for minute in (first_minute..60).filter(|m| has(s.minutes, *m)) {
            let first_second = if hour == h0 && minute == m0 { s0 } else { 0 };
            if let Some(second) = lowest_from(s.seconds, first_second) {
                return NaiveTime::from_hms_opt(hour, minute, second);
            }
        }
    }
    None
}

fn has(bits: u64, value: u32) -> bool {
    bits & (1 << value) != 0
}

/// The smallest set bit at or above `from`.
fn lowest_from(bits: u64, from: u32) -> Option<u32> {
    let masked = bits & (u64::MAX << from);
    (masked != 0).then(|| masked.trailing_zeros())
}
