//! Behaviour of [`Schedule`]: parsing, hashing, macros, time zones and DST, all with injected
//! instants.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};

use super::{CronError, Schedule};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// The first `n` fire times after `t`.
fn fires(schedule: &Schedule, mut t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for _ in 0..n {
        t = schedule.next_after(t).expect("schedule fires");
        out.push(t);
    }
    out
}

fn parse(expr: &str, job: &str) -> Schedule {
    Schedule::parse(expr, job, None).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

#[test]
fn five_fields_fire_at_the_jobs_hashed_second() {
    // dsari appends " H" to a 5-field schedule; for "hello" the second hashes to 32.
    let s = parse("35 6 * * *", "hello");
    assert_eq!(s.expanded(), "35 6 * * * 32");
    assert_eq!(
        fires(&s, utc(2020, 1, 1, 0, 0, 0), 2),
        [utc(2020, 1, 1, 6, 35, 32), utc(2020, 1, 2, 6, 35, 32)]
    );
}

#[test]
fn the_sixth_field_is_the_second() {
    let s = parse("0 12 * * * 15", "any");
    assert_eq!(
        s.next_after(utc(2024, 5, 1, 0, 0, 0)),
        Some(utc(2024, 5, 1, 12, 0, 15))
    );
}

#[test]
fn hashed_daily_matches_dsari() {
    // dsari's test_hash_daily / test_hash_second: "H H * * *" for "hello" is 11:10(:32).
    let s = parse("H H * * *", "hello");
    assert_eq!(s.expanded(), "10 11 * * * 32");
    assert_eq!(
        s.next_after(utc(2020, 1, 1, 0, 0, 0)),
        Some(utc(2020, 1, 1, 11, 10, 32))
    );
}

#[test]
fn macros_expand_like_dsari() {
    let epoch = utc(2020, 1, 1, 0, 0, 0);
    let next = |expr: &str| parse(expr, "hello").next_after(epoch).unwrap();
    assert_eq!(next("@hourly"), utc(2020, 1, 1, 0, 10, 32));
    assert_eq!(next("@daily"), utc(2020, 1, 1, 11, 10, 32));
    // @midnight hashes the hour into 0-2.
    assert_eq!(next("@midnight"), utc(2020, 1, 1, 2, 10, 32));
    // Weekday 5 (Friday): croniter's weekday range is 0-6 (56691304 % 7 = 5).
    assert_eq!(next("@weekly"), utc(2020, 1, 3, 11, 10, 32));
    // dsari's test_hash_word_monthly / _yearly: day 1 (226765217 % 31 + 1), September
    // (113382608 % 12 + 1 = 9).
    assert_eq!(next("@monthly"), utc(2020, 1, 1, 11, 10, 32));
    assert_eq!(next("@yearly"), utc(2020, 9, 1, 11, 10, 32));
    assert_eq!(next("@annually"), next("@yearly"));
}

#[test]
fn macro_intervals_are_one_period() {
    let epoch = utc(2021, 3, 3, 0, 0, 0);
    let gap = |expr: &str| {
        let f = fires(&parse(expr, "job"), epoch, 2);
        f[1] - f[0]
    };
    assert_eq!(gap("@hourly"), chrono::Duration::hours(1));
    assert_eq!(gap("@daily"), chrono::Duration::days(1));
    assert_eq!(gap("@weekly"), chrono::Duration::weeks(1));
}

#[test]
fn hash_is_stable_for_a_name() {
    let a = parse("H H * * *", "dump-db1");
    let b = parse("H H * * *", "dump-db1");
    assert_eq!(a.expanded(), b.expanded());
}

#[test]
fn hash_spreads_names_over_the_hour() {
    let minutes: BTreeSet<u32> = (0..100)
        .map(|i| {
            let s = parse("H * * * *", &format!("job-{i}"));
            s.next_after(utc(2024, 1, 1, 0, 0, 0)).unwrap().minute()
        })
        .collect();
    assert!(
        minutes.len() >= 40,
        "only {} distinct minutes",
        minutes.len()
    );
}

#[test]
fn hash_range_stays_within_its_bounds() {
    let mut hours = BTreeSet::new();
    for i in 0..200 {
        let s = parse("0 H(2-5) * * *", &format!("n{i}"));
        for t in fires(&s, utc(2024, 1, 1, 0, 0, 0), 3) {
            assert!((2..=5).contains(&t.hour()), "{t}");
            hours.insert(t.hour());
        }
    }
    assert_eq!(hours.into_iter().collect::<Vec<_>>(), [2, 3, 4, 5]);
}

#[test]
fn hash_step_fires_every_step_from_a_hashed_offset() {
    for i in 0..50 {
        let s = parse("H/15 * * * * 0", &format!("n{i}"));
        let f = fires(&s, utc(2023, 12, 31, 23, 59, 59), 8);
        // dsari picks the offset in 0..=15, so an hour holds three or four runs.
        assert!(f[0].minute() <= 15, "{f:?}");
        for pair in f.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap == chrono::Duration::minutes(15) || pair[1].minute() == f[0].minute());
        }
    }
}

#[test]
fn hash_range_with_step_stays_in_range() {
    let s = parse("H(30-59)/10 * * * * 0", "hello");
    for t in fires(&s, utc(2024, 1, 1, 0, 0, 0), 9) {
        assert!((30..=59).contains(&t.minute()), "{t}");
    }
}

#[test]
fn next_after_is_strictly_after() {
    let s = parse("*/5 * * * * 0", "x");
    let at = utc(2024, 1, 1, 10, 5, 0);
    assert_eq!(s.next_after(at), Some(utc(2024, 1, 1, 10, 10, 0)));
    let just_before = at - chrono::Duration::milliseconds(1);
    assert_eq!(s.next_after(just_before), Some(at));
}

#[test]
fn restricted_day_of_month_and_weekday_match_either() {
    // croniter (and Vixie cron): the 13th, and every Friday.
    let s = parse("0 0 13 * 5 0", "x");
    let f = fires(&s, utc(2025, 6, 1, 0, 0, 0), 6);
    let days: Vec<u32> = f.iter().map(chrono::Datelike::day).collect();
    assert_eq!(days, [6, 13, 20, 27, 4, 11]);
    // With the weekday a star, only the 13th.
    let s = parse("0 0 13 * * 0", "x");
    assert_eq!(
        fires(&s, utc(2025, 6, 1, 0, 0, 0), 2),
        [utc(2025, 6, 13, 0, 0, 0), utc(2025, 7, 13, 0, 0, 0)]
    );
}

#[test]
fn leap_day_is_found_years_ahead() {
    let s = parse("0 0 29 2 * 0", "x");
    assert_eq!(
        s.next_after(utc(2025, 1, 1, 0, 0, 0)),
        Some(utc(2028, 2, 29, 0, 0, 0))
    );
}

#[test]
fn a_weekday_rule_on_one_date_is_found_eleven_years_ahead() {
    // The weekday nearest 15 February when that is its third Friday: only when the 15th is a
    // Friday, 2019 and then 2030 (dsari finds the same).
    let s = parse("0 0 15W 2 5#3 0", "x");
    assert_eq!(
        s.next_after(utc(2019, 3, 1, 0, 0, 0)),
        Some(utc(2030, 2, 15, 0, 0, 0))
    );
}

#[test]
fn timezone_shifts_the_wall_clock() {
    let s = Schedule::parse("0 9 * * * 0", "x", Some("America/New_York")).unwrap();
    // 09:00 EST = 14:00 UTC in January.
    assert_eq!(
        s.next_after(utc(2024, 1, 10, 0, 0, 0)),
        Some(utc(2024, 1, 10, 14, 0, 0))
    );
    assert_eq!(s.timezone(), chrono_tz::America::New_York);
}

/// Europe/Berlin springs forward on 2025-03-30 (02:00 CET -> 03:00 CEST, 01:00 UTC): 02:30 does
/// not exist that day, so the daily 02:30 job runs once, at 03:00 CEST.
#[test]
fn daily_job_in_the_spring_forward_gap_runs_once_at_the_end_of_the_gap() {
    let s = Schedule::parse("30 2 * * * 0", "x", Some("Europe/Berlin")).unwrap();
    assert_eq!(
        fires(&s, utc(2025, 3, 29, 0, 0, 0), 3),
        [
            utc(2025, 3, 29, 1, 30, 0), // 02:30 CET
            utc(2025, 3, 30, 1, 0, 0),  // 03:00 CEST, the first instant after the gap
            utc(2025, 3, 31, 0, 30, 0), // 02:30 CEST
        ]
    );
}

/// In the gap the job keeps its hashed second, as in dsari: crc32("a") = 3904355907,
/// >> 5 = 122011122, % 60 = 42, so 02:30:42 CET on 2026-03-29 fires at 03:00:42 CEST.
#[test]
fn a_hashed_job_in_the_spring_forward_gap_keeps_its_second() {
    let s = Schedule::parse("30 2 * * *", "a", Some("Europe/Berlin")).unwrap();
    assert_eq!(
        fires(&s, utc(2026, 3, 28, 20, 0, 0), 2),
        [utc(2026, 3, 29, 1, 0, 42), utc(2026, 3, 30, 0, 30, 42)]
    );
}

/// Europe/Berlin falls back on 2025-10-26 (03:00 CEST -> 02:00 CET, 01:00 UTC): 02:30 happens
/// twice that day, and the daily job runs only at the first.
#[test]
fn daily_job_in_the_fall_back_fold_runs_once_at_the_first_occurrence() {
    let s = Schedule::parse("30 2 * * * 0", "x", Some("Europe/Berlin")).unwrap();
    assert_eq!(
        fires(&s, utc(2025, 10, 25, 0, 0, 0), 3),
        [
            utc(2025, 10, 25, 0, 30, 0), // 02:30 CEST
            utc(2025, 10, 26, 0, 30, 0), // 02:30 CEST, first pass
            utc(2025, 10, 27, 1, 30, 0), // 02:30 CET; the second pass on the 26th is skipped
        ]
    );
    // Asked during the second pass (02:10 CET), it does not run again that day.
    assert_eq!(
        s.next_after(utc(2025, 10, 26, 1, 10, 0)),
        Some(utc(2025, 10, 27, 1, 30, 0))
    );
}

#[test]
fn interval_job_keeps_its_rhythm_across_fall_back() {
    let s = Schedule::parse("*/15 * * * * 0", "x", Some("Europe/Berlin")).unwrap();
    // 02:40 CEST: the runs go on every 15 minutes through both passes of 02:xx.
    let f = fires(&s, utc(2025, 10, 26, 0, 40, 0), 10);
    assert_eq!(f[0], utc(2025, 10, 26, 0, 45, 0));
    for pair in f.windows(2) {
        assert_eq!(pair[1] - pair[0], chrono::Duration::minutes(15), "{f:?}");
    }
}

#[test]
fn interval_job_skips_the_missing_hour_at_spring_forward() {
    let s = Schedule::parse("*/15 * * * * 0", "x", Some("Europe/Berlin")).unwrap();
    let f = fires(&s, utc(2025, 3, 30, 0, 40, 0), 3);
    // 01:45 CET, then 03:00 CEST and 03:15 CEST: still 15 minutes apart in real time.
    assert_eq!(
        f,
        [
            utc(2025, 3, 30, 0, 45, 0),
            utc(2025, 3, 30, 1, 0, 0),
            utc(2025, 3, 30, 1, 15, 0)
        ]
    );
}

#[test]
fn invalid_expressions_name_the_field() {
    let err = |expr: &str| Schedule::parse(expr, "x", None).unwrap_err().to_string();
    assert_eq!(
        err("61 * * * *"),
        "invalid cron \"61 * * * *\": minute: invalid \"61\" (number out of bounds; values are 0-59)"
    );
    assert_eq!(
        err("* * * *"),
        "invalid cron \"* * * *\": expected 5 or 6 fields (minute hour day-of-month month \
         day-of-week [second]), got 4"
    );
    assert!(err("@fortnightly").starts_with("invalid cron \"@fortnightly\": unknown macro"));
    assert_eq!(
        err("0 0 30 2 *"),
        "invalid cron \"0 0 30 2 *\": no date ever matches its day-of-month, month and day-of-week"
    );
    let foo = err("* * * * MON-FOO");
    assert!(
        foo.starts_with("invalid cron \"* * * * MON-FOO\": day-of-week: invalid \"MON-FOO\" ("),
        "{foo}"
    );
    assert!(foo.ends_with("; values are 0-7 or names)"), "{foo}");
    assert!(
        err("0 L * * *").starts_with("invalid cron \"0 L * * *\": hour: \"L\" in \"L\""),
        "{}",
        err("0 L * * *")
    );
    assert!(err("0 0 * * 5#3,1").contains("cannot be mixed"));
}

#[test]
fn unknown_timezone_is_an_error() {
    assert_eq!(
        Schedule::parse("* * * * *", "x", Some("Mars/Olympus")).unwrap_err(),
        CronError::UnknownTimezone("Mars/Olympus".into())
    );
}

#[test]
fn times_outside_years_1_to_9990_have_no_next_fire_and_do_not_panic() {
    let s = Schedule::parse("* * * * * *", "x", Some("Europe/Berlin")).unwrap();
    assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert_eq!(s.next_after(DateTime::<Utc>::MIN_UTC), None);
    let year_one = utc(1, 1, 1, 0, 0, 0);
    assert_eq!(
        s.next_after(year_one),
        Some(year_one + chrono::Duration::seconds(1))
    );
}

/// Fire times computed by dsari itself (its `get_next_schedule_time`, croniter 7.0.0, naive UTC
/// times, after 2026-01-01 00:00:00) for each `H` form in each field, the macros and croniter's
/// day syntax; each value also follows by hand from the arithmetic in `cron/hash.rs`'s tests
/// (crc32("hello") = 907060870). dsari also adds crc / 0xFFFFFFFF of a second, which rota does
/// not: rota's times are whole seconds.
#[test]
fn fire_times_match_dsari() {
    let cases: &[(&str, &str, [&str; 3])] = &[
        ("H * * * *", "hello", ["00:10:32", "01:10:32", "02:10:32"]),
        (
            "H/15 * * * *",
            "hello",
            ["00:06:32", "00:21:32", "00:36:32"],
        ),
        // crc32("job-1") % 16 = 15: 15-59/15; second (1279408703 >> 5) % 60 = 41.
        (
            "H/15 * * * *",
            "job-1",
            ["00:15:41", "00:30:41", "00:45:41"],
        ),
        (
            "H(30-59)/10 * * * *",
            "hello",
            ["00:31:32", "00:41:32", "00:51:32"],
        ),
        // 40-35/10 wraps to 0,10,...,50 (see hash.rs).
        (
            "H(30-35)/10 * * * *",
            "job-8",
            ["00:00:32", "00:10:32", "00:20:32"],
        ),
        (
            "H(5-0) * * * *",
            "hello",
            ["00:50:32", "01:50:32", "02:50:32"],
        ),
        (
            "0 H(0-5) * * *",
            "hello",
            ["05:00:32", "1T05:00:32", "2T05:00:32"],
        ),
        ("0 H/7 * * *", "hello", ["03:00:32", "10:00:32", "17:00:32"]),
        (
            "0 0 * * * H/15",
            "hello",
            ["00:00:04", "00:00:19", "00:00:34"],
        ),
        (
            "0 0 * * * H(2-5)",
            "hello",
            ["00:00:02", "1T00:00:02", "2T00:00:02"],
        ),
        (
            "@midnight",
            "hello",
            ["02:10:32", "1T02:10:32", "2T02:10:32"],
        ),
    ];
    let start = utc(2026, 1, 1, 0, 0, 0);
    for (expr, name, want) in cases {
        let got: Vec<String> = fires(&parse(expr, name), start, 3)
            .iter()
            .map(|t| {
                let day = t.day() - 1;
                let hms = t.format("%H:%M:%S").to_string();
                if day == 0 {
                    hms
                } else {
                    format!("{day}T{hms}")
                }
            })
            .collect();
        assert_eq!(got, want, "{expr} for {name}");
    }
    // Dates, at 00:00 plus the job's hashed second.
    type Ymd = (i32, u32, u32);
    let dated: &[(&str, &str, [Ymd; 3])] = &[
        // crc32("job-16") >> 2 = 719619396; % 31 + 1 = 29: February is skipped.
        (
            "0 0 H * *",
            "job-16",
            [(2026, 1, 29), (2026, 3, 29), (2026, 4, 29)],
        ),
        (
            "0 0 H/7 * *",
            "hello",
            [(2026, 1, 1), (2026, 1, 8), (2026, 1, 15)],
        ),
        (
            "0 0 H(2-5) * *",
            "hello",
            [(2026, 1, 3), (2026, 2, 3), (2026, 3, 3)],
        ),
        (
            "0 0 H(10-20)/5 * *",
            "hello",
            [(2026, 1, 13), (2026, 1, 18), (2026, 2, 13)],
        ),
        (
            "0 0 1 H/5 *",
            "hello",
            [(2026, 4, 1), (2026, 9, 1), (2027, 4, 1)],
        ),
        (
            "0 0 1 H(2-12)/4 *",
            "hello",
            [(2026, 3, 1), (2026, 7, 1), (2026, 11, 1)],
        ),
        (
            "0 0 * * H",
            "hello",
            [(2026, 1, 2), (2026, 1, 9), (2026, 1, 16)],
        ),
        (
            "0 0 * * H/3",
            "hello",
            [(2026, 1, 3), (2026, 1, 4), (2026, 1, 7)],
        ),
        (
            "0 0 * * H(1-5)/2",
            "hello",
            [(2026, 1, 1), (2026, 1, 6), (2026, 1, 8)],
        ),
        (
            "@yearly",
            "hello",
            [(2026, 9, 1), (2027, 9, 1), (2028, 9, 1)],
        ),
        (
            "0 0 L * * 0",
            "x",
            [(2026, 1, 31), (2026, 2, 28), (2026, 3, 31)],
        ),
        (
            "0 0 * * L5 0",
            "x",
            [(2026, 1, 30), (2026, 2, 27), (2026, 3, 27)],
        ),
        (
            "0 0 * * 5#3 0",
            "x",
            [(2026, 1, 16), (2026, 2, 20), (2026, 3, 20)],
        ),
        (
            "0 0 15W * * 0",
            "x",
            [(2026, 1, 15), (2026, 2, 16), (2026, 3, 16)],
        ),
        (
            "0 0 31W * * 0",
            "x",
            [(2026, 1, 30), (2026, 2, 27), (2026, 3, 31)],
        ),
        // croniter's day rule (cron/days.rs): `*/2` is no star, so odd days or Mondays...
        (
            "0 0 */2 * 1 0",
            "x",
            [(2026, 1, 3), (2026, 1, 5), (2026, 1, 7)],
        ),
        // ...`#` and `W` stay on both sides of the "or"...
        (
            "0 0 1 * fri#1 0",
            "x",
            [(2026, 1, 2), (2026, 2, 6), (2026, 3, 6)],
        ),
        (
            "0 0 15W * 1 0",
            "x",
            [(2026, 1, 15), (2026, 2, 16), (2026, 3, 16)],
        ),
        // ...a full day-of-month is a star when day-of-week's text has a `*`...
        (
            "0 0 1-31 * */2 0",
            "x",
            [(2026, 1, 3), (2026, 1, 4), (2026, 1, 6)],
        ),
        // ...and `L` is an ordinary day: the last day or Fridays.
        (
            "0 0 L * 5 0",
            "x",
            [(2026, 1, 2), (2026, 1, 9), (2026, 1, 16)],
        ),
        (
            "0 0 ? * 1 0",
            "x",
            [(2026, 1, 5), (2026, 1, 12), (2026, 1, 19)],
        ),
    ];
    for (expr, name, want) in dated {
        let s = parse(expr, name);
        let got: Vec<Ymd> = fires(&s, start, 3)
            .iter()
            .map(|t| (t.year(), t.month(), t.day()))
            .collect();
        assert_eq!(&got, want, "{expr} for {name}");
    }
}
