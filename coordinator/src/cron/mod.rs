//! Cron schedules as dsari reads them: 5 or 6 fields, Jenkins' `H`, `@daily` and friends, and a
//! time zone per job. The field syntax is parsed by the `croner` crate (`field.rs`); `H` and the
//! macros (`hash.rs`) and the DST-aware search (`search.rs`) are rota's.
//!
//! # Format
//!
//! `MIN HOUR DOM MON DOW [SEC]`: the optional sixth field is the *second* (dsari's order, not
//! Quartz's). When it is missing it is `H`, as in dsari: each job fires at its own hashed second
//! of the minute, so `* * * * *` on many jobs does not start them all at :00. Each field takes
//! `*`, `N`, `A-B`, `/STEP`, lists and names (`JAN`, `MON`); weekday 7 is Sunday. The day fields
//! also take croniter's `L`, `15W`, `5#3`, `L5` and `?`, and combine as croniter combines them
//! (`cron/days.rs`). `H` picks a value from a CRC-32 of the job name, so it is the same on every
//! run and machine; `H(a-b)`, `H/n`, `H(a-b)/n` and the `@` macros are dsari's exactly, and
//! dsari's random `R` forms are taken too (`cron/hash.rs`).
//!
//! # Time zones and daylight saving
//!
//! Fields are matched against the wall clock of the schedule's zone (UTC when none is given).
//! Around a DST change the rule depends on whether the schedule names particular hours:
//! - It names particular hours (e.g. `30 2 * * *`): a wall-clock time skipped by spring-forward
//!   fires once, in the first minute after the gap at the schedule's first second (02:30 in
//!   Europe/Berlin on the last Sunday of March fires at 03:00 CEST, plus the job's hashed
//!   second, as in dsari); a time repeated by fall-back fires once, at its first occurrence
//!   (02:30 CEST, not again at 02:30 CET, where dsari fires in both). A daily job runs exactly
//!   once every day.
//! - It runs in every hour (e.g. `*/15 * * * *`): it follows the wall clock, so skipped times do
//!   not fire and repeated times fire in both passes; the interval between runs stays as written.
//!
//! # RRULE
//!
//! A schedule starting with `RRULE:` is an RFC 5545 recurrence rule (`cron/rrule.rs`), with
//! dsari's hashing of the parts it leaves out.
//!
//! Time is always passed in: [`Schedule::next_after`] never reads the clock, so schedules are
//! tested with fixed instants.

mod days;
mod field;
mod hash;
mod rrule;
#[cfg(test)]
mod rrule_tests;
mod search;
#[cfg(test)]
mod tests;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Why a schedule or its time zone was refused. Display is one line that names the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression itself is wrong; `reason` names the field at fault.
    #[error("invalid cron \"{expr}\": {reason}")]
    Invalid { expr: String, reason: String },
    /// An `RRULE:` schedule the rrule crate refuses, or that uses what dsari does not (COUNT).
    #[error("invalid RRULE \"{expr}\": {reason}")]
    InvalidRrule { expr: String, reason: String },
    /// The zone is not an IANA name known to chrono-tz.
    #[error("unknown timezone \"{0}\" (expected an IANA name such as \"Europe/Berlin\")")]
    UnknownTimezone(String),
}

/// A job's schedule: cron fields or an RFC 5545 rule, bound to one time zone.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Cron),
    Rrule(Box<rrule::Rrule>),
}

impl Schedule {
    /// `expr` as dsari accepts it: an `RRULE:` rule (any case, as dsari tests it) or cron fields
    /// (see the module docs), hashed by `job_name`; `tz` is an IANA zone name, `None` for UTC.
    pub fn parse(expr: &str, job_name: &str, tz: Option<&str>) -> Result<Schedule, CronError> {
        let zone = match tz {
            None => chrono_tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| CronError::UnknownTimezone(name.into()))?,
        };
        if rrule::is_rrule(expr) {
            return rrule::Rrule::parse(expr, job_name, zone).map(|r| Schedule::Rrule(Box::new(r)));
        }
        Cron::parse(expr, job_name, zone).map(Schedule::Cron)
    }

    /// The first fire time strictly after `t`, `None` when there is none (an RRULE past its
    /// UNTIL, or a cron `t` outside years 1-9990).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(c) => search::next_after(c, t),
            Schedule::Rrule(r) => r.next_after(t),
        }
    }

    /// The expression as written in the config.
    pub fn expr(&self) -> &str {
        match self {
            Schedule::Cron(c) => &c.expr,
            Schedule::Rrule(r) => r.expr(),
        }
    }

    /// What `rota jobs` shows so a person sees when a hashed job really runs: the six cron fields
    /// after `H` expansion, or the rule with its hashed BYHOUR/BYMINUTE/BYSECOND filled in.
    pub fn expanded(&self) -> &str {
        match self {
            Schedule::Cron(c) => &c.expanded,
            Schedule::Rrule(r) => r.expanded(),
        }
    }

    /// The zone the schedule is read in.
    pub fn timezone(&self) -> Tz {
        match self {
            Schedule::Cron(c) => c.tz,
            Schedule::Rrule(r) => r.timezone(),
        }
    }
}

/// A parsed, hash-expanded cron schedule bound to one time zone.
///
/// Fields are bitsets so that matching a date or a time costs a few instructions; the search for
/// the next fire time walks days, then hours, minutes and seconds, never second by second.
#[derive(Debug, Clone)]
pub struct Cron {
    expr: String,
    expanded: String,
    tz: Tz,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// croniter's `L`, `W`, `#` and its rule for combining the two day fields (`days.rs`).
    days: days::DayRules,
    /// Every hour is allowed: DST gaps are skipped and folds fire twice (see the module docs).
    every_hour: bool,
}

impl Cron {
    /// `expr` as dsari accepts it (see the module docs), `H` hashed by `job_name` so each job gets
    /// its own stable minute/second; `tz` is an IANA zone name, `None` for UTC.
    ///
    /// An expression that can never fire (`0 0 30 2 *`) is an error too, so a config that
    /// validates always schedules something.
    fn parse(expr: &str, job_name: &str, tz: Tz) -> Result<Cron, CronError> {
        let invalid = |reason: String| CronError::Invalid {
            expr: expr.to_string(),
            reason,
        };
        let trimmed = expr.trim();
        let six_fields = if trimmed.starts_with('@') {
            hash::expand_macro(trimmed)
                .ok_or_else(|| {
                    invalid(format!(
                        "unknown macro \"{trimmed}\" (expected @hourly, @daily, @midnight, \
                         @weekly, @monthly, @yearly or @annually)"
                    ))
                })?
                .to_string()
        } else {
            match trimmed.split_whitespace().count() {
                5 => format!("{trimmed} H"),
                6 => trimmed.to_string(),
                n => {
                    return Err(invalid(format!(
                        "expected 5 or 6 fields (minute hour day-of-month month day-of-week \
                         [second]), got {n}"
                    )))
                }
            }
        };

        let crc = hash::crc32(job_name.as_bytes());
        let mut expanded = Vec::with_capacity(6);
        for (position, text) in six_fields.split_whitespace().enumerate() {
            let spec = &field::FIELDS[position];
            expanded.push(hash::expand_field(text, position, spec, crc).map_err(invalid)?);
        }
        let (bits, days) = field::parse_fields(&expanded).map_err(invalid)?;
        let [minutes, hours, days_of_month, months, days_of_week, seconds] = bits;
        let schedule = Cron {
            expr: expr.to_string(),
            days,
            expanded: expanded.join(" "),
            tz,
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            every_hour: hours == (1 << 24) - 1,
        };
        let probe = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        if search::next_after(&schedule, probe).is_none() {
            return Err(invalid(
                "no date ever matches its day-of-month, month and day-of-week".into(),
            ));
        }
        Ok(schedule)
    }
}
