//! Reading one trigger file (`DATA_DIR/trigger/JOB/trigger.{json,yaml}`) as dsari reads it:
//! a map, with an optional `environment` map of strings (numbers become their text) and an
//! optional `schedule_time` (Unix seconds, or an ISO 8601 time read in `schedule_timezone`,
//! UTC when none). Other keys (dsari's `type`, `description`) are allowed and unused.
//!
//! The data dir is untrusted input: a file is read only if it is a regular file (a symlink is
//! refused, never followed) of at most [`MAX_TRIGGER_BYTES`].

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// Larger than any trigger a person or script writes; bounds what one file costs to read.
pub const MAX_TRIGGER_BYTES: u64 = 64 << 10;

/// The names dsari looks for, in its order of preference (JSON over YAML).
pub const NAMES: [&str; 2] = ["trigger.json", "trigger.yaml"];

/// What a trigger file asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub env: BTreeMap<String, String>,
    /// When the run is meant to start (ms since the epoch); `None`: the file's mtime, now.
    pub schedule_time_ms: Option<u64>,
}

/// Reads and parses `path`; `Err` is the one-line reason it is refused.
pub fn read(path: &Path) -> Result<Trigger, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("not a regular file (symlinks are not followed)".into());
    }
    if meta.len() > MAX_TRIGGER_BYTES {
        return Err(format!(
            "{} bytes is larger than the {MAX_TRIGGER_BYTES} a trigger file may have",
            meta.len()
        ));
    }
    let mut text = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?
        .take(MAX_TRIGGER_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    let yaml = path.extension().is_some_and(|e| e == "yaml");
    parse(&text, yaml)
}

/// Parses the text of a trigger file (YAML when `yaml`, else JSON).
pub fn parse(text: &str, yaml: bool) -> Result<Trigger, String> {
    let value: Value = if yaml {
        serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?
    } else {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    };
    // An empty YAML document is null; dsari needs a map ("Data must be a dict").
    let Value::Object(map) = value else {
        return Err("the trigger must be a map (e.g. {})".into());
    };
    let mut env = BTreeMap::new();
    match map.get("environment") {
        None => {}
        Some(Value::Object(vars)) => {
            for (k, v) in vars {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => {
                        return Err(format!(
                            "environment {k}: a value must be a string or a number, not {other}"
                        ))
                    }
                };
                env.insert(k.clone(), v);
            }
        }
        Some(_) => return Err("environment must be a map".into()),
    }
    let zone = match map.get("schedule_timezone") {
        None => None,
        Some(Value::String(name)) => Some(
            name.parse::<chrono_tz::Tz>()
                .map_err(|_| format!("schedule_timezone {name:?} is not an IANA zone name"))?,
        ),
        Some(other) => {
            return Err(format!(
                "schedule_timezone must be a zone name, not {other}"
            ))
        }
    };
    let schedule_time_ms = match map.get("schedule_time") {
        None => None,
        Some(v) => Some(schedule_time(v, zone)?),
    };
    Ok(Trigger {
        env,
        schedule_time_ms,
    })
}

fn schedule_time(v: &Value, zone: Option<chrono_tz::Tz>) -> Result<u64, String> {
    let bad = || format!("schedule_time {v} is not Unix seconds or an ISO 8601 time");
    let instant: DateTime<Utc> = match v {
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(bad)?;
            if !(0.0..=253_402_300_799.0).contains(&secs) {
                return Err(format!(
                    "schedule_time {v} is out of range (years 1970-9999)"
                ));
            }
            DateTime::from_timestamp_millis((secs * 1000.0).round() as i64).ok_or_else(bad)?
        }
        Value::String(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => {
                let naive = [
                    "%Y-%m-%dT%H:%M:%S%.f",
                    "%Y-%m-%d %H:%M:%S%.f",
                    "%Y-%m-%dT%H:%M",
                ]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .ok_or_else(bad)?;
                zone.unwrap_or(chrono_tz::UTC)
                    .from_local_datetime(&naive)
                    .earliest()
                    .ok_or_else(|| format!("schedule_time {s:?} does not exist in its zone"))?
                    .with_timezone(&Utc)
            }
        },
        _ => return Err(bad()),
    };
    u64::try_from(instant.timestamp_millis())
        .map_err(|_| format!("schedule_time {v} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_map_is_a_trigger_for_now() {
        let t = parse("{}", false).unwrap();
        assert!(t.env.is_empty() && t.schedule_time_ms.is_none());
    }

    #[test]
    fn environment_numbers_become_text_as_in_dsari() {
        let t = parse("environment: {A: x, B: 3, C: 1.5}\ntype: git\n", true).unwrap();
        let want: BTreeMap<String, String> = [("A", "x"), ("B", "3"), ("C", "1.5")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(t.env, want);
    }

    #[test]
    fn schedule_time_is_epoch_seconds_or_iso_in_its_zone() {
        let epoch = parse(r#"{"schedule_time": 1473546507}"#, false).unwrap();
        assert_eq!(epoch.schedule_time_ms, Some(1_473_546_507_000));
        // 14:28:27 PDT (-7) is 21:28:27 UTC = 1473542907.
        let iso = parse(
            r#"{"schedule_time": "2016-09-10T14:28:27", "schedule_timezone": "America/Los_Angeles"}"#,
            false,
        )
        .unwrap();
        assert_eq!(iso.schedule_time_ms, Some(1_473_542_907_000));
    }

    #[test]
    fn bad_triggers_say_why_in_one_line() {
        for (text, yaml, wanted) in [
            ("{", false, "not valid JSON"),
            ("[1]", false, "must be a map"),
            ("", true, "must be a map"),
            (
                r#"{"environment": [1]}"#,
                false,
                "environment must be a map",
            ),
            (r#"{"environment": {"A": true}}"#, false, "environment A"),
            (r#"{"schedule_time": "soon"}"#, false, "schedule_time"),
            (r#"{"schedule_time": -5}"#, false, "out of range"),
            (
                r#"{"schedule_timezone": "Mars/Base", "schedule_time": 1}"#,
                false,
                "Mars/Base",
            ),
        ] {
            let err = parse(text, yaml).unwrap_err();
            assert!(err.contains(wanted) && !err.contains('\n'), "{text}: {err}");
        }
    }
}
