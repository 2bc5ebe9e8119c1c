//! `RRULE:` schedules against dsari: each expected time is what dsari's
//! `get_next_schedule_time` (dateutil's rrulestr with the hashed DTSTART) gives, worked out in
//! the comment. CRC-32 of the job names: "backup" 1072746924, "report" 3291445124,
//! "nightly" 267906906; modulo 86400 these are 4524 s (01:15:24 UTC), 37124 s (10:18:44 UTC)
//! and 66906 s (18:35:06 UTC): each job's DTSTART time of day.

use chrono::{DateTime, TimeZone, Utc};

use super::{CronError, Schedule};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn next(expr: &str, job: &str, tz: Option<&str>, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Schedule::parse(expr, job, tz)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .next_after(t)
}

/// Tuesday 2026-03-10 12:00 UTC, away from any DST change.
fn tuesday_noon() -> DateTime<Utc> {
    utc(2026, 3, 10, 12, 0, 0)
}

#[test]
fn daily_rule_fires_at_the_jobs_hashed_time_of_day() {
    // DTSTART = 2026-03-10 01:15:24 (the latest 01:15:24 at or before noon); DAILY takes
    // BYHOUR=1, BYMINUTE=15, BYSECOND=24 from it; today's has passed, so tomorrow's.
    let t = next("RRULE:FREQ=DAILY", "backup", None, tuesday_noon());
    assert_eq!(t, Some(utc(2026, 3, 11, 1, 15, 24)));
}

#[test]
fn hourly_rule_takes_minute_and_second_from_the_hash() {
    // "report": BYMINUTE=18, BYSECOND=44 (from 10:18:44) -> 12:18:44 the same hour.
    let t = next("RRULE:FREQ=HOURLY", "report", None, tuesday_noon());
    assert_eq!(t, Some(utc(2026, 3, 10, 12, 18, 44)));
}

#[test]
fn interval_counts_from_the_hashed_dtstart() {
    // DTSTART 01:15:24; every 5 minutes from it: 12:00 is 645 min = 129 * 5 min after 01:15,
    // so 12:00:24 is an occurrence and the first after noon.
    let t = next(
        "RRULE:FREQ=MINUTELY;INTERVAL=5",
        "backup",
        None,
        tuesday_noon(),
    );
    assert_eq!(t, Some(utc(2026, 3, 10, 12, 0, 24)));
}

#[test]
fn weekly_and_monthly_without_day_parts_take_dtstarts_day_as_dsari_does() {
    // "nightly": 18:35:06 today is after noon, so DTSTART is Monday 2026-03-09 18:35:06 and
    // WEEKLY means Mondays: the next is 2026-03-16.
    let t = next("RRULE:FREQ=WEEKLY", "nightly", None, tuesday_noon());
    assert_eq!(t, Some(utc(2026, 3, 16, 18, 35, 6)));
    // "backup": DTSTART 2026-03-10 01:15:24, so MONTHLY is the 10th: next 2026-04-10.
    let t = next("RRULE:FREQ=MONTHLY", "backup", None, tuesday_noon());
    assert_eq!(t, Some(utc(2026, 4, 10, 1, 15, 24)));
}

#[test]
fn set_positions_pick_the_last_weekday_of_the_month() {
    // The last of MO-FR in March 2026 is Tuesday the 31st, at "report"'s 10:18:44.
    let expr = "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1";
    let t = next(expr, "report", None, tuesday_noon());
    assert_eq!(t, Some(utc(2026, 3, 31, 10, 18, 44)));
}

#[test]
fn rule_is_read_in_the_jobs_time_zone() {
    // Berlin is CET (+1) on 2026-03-10: noon UTC is 13:00, Tuesday. Mondays and Thursdays at
    // 14:30 local, BYSECOND from DTSTART (18:35:06 UTC, second 6): Thursday 12th 14:30:06 CET
    // = 13:30:06 UTC.
    let expr = "RRULE:FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=14;BYMINUTE=30";
    let t = next(expr, "nightly", Some("Europe/Berlin"), tuesday_noon());
    assert_eq!(t, Some(utc(2026, 3, 12, 13, 30, 6)));
}

#[test]
fn wall_clock_time_holds_across_dst_in_the_jobs_zone() {
    // Berlin moves to CEST (+2) on 2026-03-29. 14:30:06 local on Monday 30th is 12:30:06 UTC
    // (dsari, at the offset "now" had, would say 13:30:06 UTC: README names the difference).
    let expr = "RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=14;BYMINUTE=30";
    let t = next(
        expr,
        "nightly",
        Some("Europe/Berlin"),
        utc(2026, 3, 28, 12, 0, 0),
    );
    assert_eq!(t, Some(utc(2026, 3, 30, 12, 30, 6)));
}

#[test]
fn successive_fires_are_strictly_later() {
    let s = Schedule::parse("RRULE:FREQ=HOURLY", "report", None).unwrap();
    let first = s.next_after(tuesday_noon()).unwrap();
    let second = s.next_after(first).unwrap();
    assert_eq!(second, utc(2026, 3, 10, 13, 18, 44));
}

#[test]
fn until_ends_the_rule_and_a_naive_until_is_local_time() {
    // UNTIL 2026-03-10T13:00:00 in Berlin is 12:00 UTC: the 12:18:44 occurrence is past it.
    let expr = "rrule:freq=hourly;until=20260310T130000";
    assert_eq!(
        next(
            expr,
            "report",
            Some("Europe/Berlin"),
            utc(2026, 3, 10, 11, 0, 0)
        ),
        Some(utc(2026, 3, 10, 11, 18, 44))
    );
    assert_eq!(
        next(expr, "report", Some("Europe/Berlin"), tuesday_noon()),
        None
    );
    // A rule that ended long ago is accepted (dsari accepts it) and never fires.
    assert_eq!(
        next(
            "RRULE:FREQ=DAILY;UNTIL=19990101T000000Z",
            "backup",
            None,
            tuesday_noon()
        ),
        None
    );
}

#[test]
fn expanded_shows_the_hashed_time_parts() {
    let s = Schedule::parse("RRULE:FREQ=DAILY;BYHOUR=3", "backup", None).unwrap();
    assert_eq!(
        s.expanded(),
        "RRULE:FREQ=DAILY;BYHOUR=3;BYMINUTE=15;BYSECOND=24"
    );
    assert_eq!(s.expr(), "RRULE:FREQ=DAILY;BYHOUR=3");
}

#[test]
fn bad_rules_are_refused_with_a_reason() {
    for (expr, wanted) in [
        ("RRULE:FREQ=SOMETIMES", "SOMETIMES"),
        ("RRULE:FREQ=DAILY;COUNT=3", "COUNT"),
        ("RRULE:FREQ=DAILY;BYHOUR=25", "25"),
        ("RRULE:FREQ=DAILY;UNTIL=tomorrow", "UNTIL"),
        ("RRULE:FREQ=DAILY\nRRULE:FREQ=HOURLY", "one RRULE line"),
    ] {
        let err = Schedule::parse(expr, "job", None).unwrap_err();
        assert!(
            matches!(err, CronError::InvalidRrule { .. }),
            "{expr}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(wanted) && !text.contains('\n'),
            "{expr}: {text}"
        );
    }
}
