//! `RRULE:` schedules (RFC 5545 recurrence rules), expanded by the `rrule` crate, which fills
//! missing parts from DTSTART as python-dateutil does, so dsari's rules mean the same here.
//!
//! A config gives no DTSTART; dsari makes one (`utils.get_next_schedule_time`): the latest
//! instant at or before "now" whose Unix time is `crc32(job name)` modulo one day. Every part a
//! rule leaves out is taken from it, as dateutil takes it: BYSECOND, BYMINUTE and BYHOUR (below
//! the rule's FREQ) are the job's hashed time of day, so `RRULE:FREQ=DAILY` runs every job at its
//! own second of the day, like `H H * * *`. WEEKLY without BYDAY, MONTHLY without BYMONTHDAY and
//! YEARLY without BYMONTH take the weekday/day/month of that DTSTART, i.e. of the day the next
//! time is computed, as in dsari. INTERVAL counts from it too. rota reads the rule in the job's
//! `schedule_timezone` (UTC when none); dsari reads it at the offset "now" has, so across a DST
//! change rota keeps the wall-clock time where dsari shifts by an hour.
//!
//! dsari refuses COUNT (a DTSTART that moves with "now" makes it meaningless); so does rota. A
//! naive UNTIL is a wall-clock time in the job's zone, as dsari reads it in its own.

use ::rrule::{RRule, RRuleError, RRuleSet, Unvalidated, ValidationError};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{hash, CronError};

const DAY: i64 = 86_400;

/// Whether `expr` is an RRULE schedule rather than cron fields (dsari: `upper().startswith`).
pub(super) fn is_rrule(expr: &str) -> bool {
    expr.trim()
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("RRULE:"))
}

/// One job's parsed rule and the hash that places its DTSTART.
#[derive(Debug, Clone)]
pub struct Rrule {
    expr: String,
    expanded: String,
    tz: Tz,
    crc: u32,
    rule: RRule<Unvalidated>,
}

impl Rrule {
    /// Parses `expr` (`RRULE:` and the rule's parts, one line) for `job_name` in `tz`.
    pub(super) fn parse(expr: &str, job_name: &str, tz: Tz) -> Result<Rrule, CronError> {
        // Escaped, so the error stays one line whatever the config holds.
        let invalid = |reason: String| CronError::InvalidRrule {
            expr: expr.escape_debug().to_string(),
            reason,
        };
        let body = expr.trim()[6..].to_ascii_uppercase();
        if body.contains(['\n', '\r']) {
            return Err(invalid(
                "one RRULE line only (DTSTART, EXDATE and further rules are not taken)".into(),
            ));
        }
        let mut parts = Vec::new();
        for part in body.split(';').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            match key {
                "COUNT" => {
                    return Err(invalid(
                        "COUNT is not supported (as in dsari): the rule restarts each time the \
                         next run is computed; use UNTIL"
                            .into(),
                    ))
                }
                "UNTIL" => parts.push(format!(
                    "UNTIL={}",
                    until_in_utc(value, tz).map_err(invalid)?
                )),
                _ => parts.push(part.to_string()),
            }
        }
        let text = parts.join(";");
        let rule: RRule<Unvalidated> = format!("RRULE:{text}")
            .parse()
            .map_err(|e: RRuleError| invalid(reason(&e)))?;
        let mut schedule = Rrule {
            expr: expr.to_string(),
            expanded: String::new(),
            tz,
            crc: hash::crc32(job_name.as_bytes()),
            rule,
        };
        // Validate once against a DTSTART such as a run would get, so a rule that could never
        // expand is a config error; one that has merely ended (UNTIL passed) is accepted and
        // never fires, as dsari accepts it.
        let probe = schedule.dtstart(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap());
        let hashed = match schedule.rule.clone().validate(probe) {
            Ok(valid) => Some(valid),
            Err(RRuleError::ValidationError(ValidationError::UntilBeforeStart { .. })) => None,
            Err(e) => return Err(invalid(reason(&e))),
        };
        schedule.expanded = expanded(&text, hashed.as_ref());
        Ok(schedule)
    }

    /// dsari's DTSTART for a next time after `t`: the latest instant at or before `t` whose Unix
    /// time is the job's CRC modulo a day, in whole seconds.
    fn dtstart(&self, t: DateTime<Utc>) -> DateTime<::rrule::Tz> {
        let secs = t.timestamp();
        let start = secs - (secs - i64::from(self.crc)).rem_euclid(DAY);
        ::rrule::Tz::Tz(self.tz)
            .timestamp_opt(start, 0)
            .single()
            .expect("a Unix time has one instant in any zone")
    }

    /// The first occurrence strictly after `t` (the rule's times are whole seconds, so "at or
    /// after the next whole second").
    pub(super) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.dtstart(t);
        let rule = self.rule.clone().validate(start).ok()?;
        let from = DateTime::<Utc>::from_timestamp(t.timestamp() + 1, 0)?;
        let first = RRuleSet::new(start)
            .rrule(rule)
            .after(from.with_timezone(&::rrule::Tz::Tz(self.tz)))
            .all(1)
            .dates
            .into_iter()
            .next()?;
        Some(first.with_timezone(&Utc))
    }

    pub(super) fn expr(&self) -> &str {
        &self.expr
    }

    pub(super) fn expanded(&self) -> &str {
        &self.expanded
    }

    pub(super) fn timezone(&self) -> Tz {
        self.tz
    }
}

/// The crate's message without its "RRule parsing error:" prefix: the config error already
/// says it is an RRULE.
fn reason(e: &RRuleError) -> String {
    match e {
        RRuleError::ParserError(p) => p.to_string(),
        RRuleError::ValidationError(v) => v.to_string(),
        RRuleError::IterError(s) => s.clone(),
    }
}

/// UNTIL as the crate wants it beside a zoned DTSTART: in UTC (`…Z`). A naive value is a wall
/// time in `tz` (its earlier instant in a fall-back fold, the end of a spring-forward gap).
fn until_in_utc(value: &str, tz: Tz) -> Result<String, String> {
    if value.ends_with('Z') {
        return Ok(value.to_string());
    }
    let naive = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S")
        .or_else(|_| {
            NaiveDate::parse_from_str(value, "%Y%m%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap())
        })
        .map_err(|_| format!("UNTIL \"{value}\" is not YYYYMMDD or YYYYMMDDTHHMMSS[Z]"))?;
    let instant = tz
        .from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            let later = naive + chrono::Duration::hours(1);
            tz.from_local_datetime(&later).earliest()
        })
        .ok_or_else(|| format!("UNTIL \"{value}\" does not exist in {tz}"))?;
    Ok(instant
        .with_timezone(&Utc)
        .format("%Y%m%dT%H%M%SZ")
        .to_string())
}

/// The rule with the hashed BYHOUR/BYMINUTE/BYSECOND it would be given, for `rota jobs`.
/// (The hour is the one in winter for zones with DST; the day parts follow the current day and
/// are not shown.)
fn expanded(text: &str, valid: Option<&RRule>) -> String {
    let mut out = format!("RRULE:{text}");
    let Some(valid) = valid else {
        return out;
    };
    let given = |key: &str| text.split(';').any(|p| p.starts_with(&format!("{key}=")));
    let list = |v: &[u8]| v.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
    for (key, values) in [
        ("BYHOUR", valid.get_by_hour()),
        ("BYMINUTE", valid.get_by_minute()),
        ("BYSECOND", valid.get_by_second()),
    ] {
        if !given(key) && !values.is_empty() {
            out.push_str(&format!(";{key}={}", list(values)));
        }
    }
    out
}
