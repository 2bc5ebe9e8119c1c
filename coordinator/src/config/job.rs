//! One job's raw keys turned into a [`JobDef`], checking every value on the way.

use std::collections::BTreeMap;

use chrono_tz::Tz;

use super::error::{ConfigError, Scope};
use super::model::JobDef;
use super::names::{is_valid_name, NAME_RULE};
use super::raw::{Command, DurationValue, PriorityValue, RawJob, RawNotify, Scalar};
use super::shell::split_shell_words;
use crate::cron::{CronError, Schedule};
use rota_proto::priority::parse_priority;

/// Builds job `name` from `raw`. Errors are reported in `scope`: the job itself, or the job group
/// whose keys it was expanded from (that is where the mistake is written). `group` is the job
/// group that produced it, if any.
pub(super) fn build_job(
    path: &str,
    scope: &Scope,
    name: &str,
    group: Option<&str>,
    raw: RawJob,
) -> Result<JobDef, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::InvalidValue {
        path: path.into(),
        scope: scope.clone(),
        key: key.into(),
        message,
    };
    let shell = raw.shell.unwrap_or(false);
    let command = match raw.command {
        None => {
            return Err(ConfigError::MissingKey {
                path: path.into(),
                scope: scope.clone(),
                key: "command".into(),
            })
        }
        Some(Command::Argv(_)) if shell => {
            return Err(invalid(
                "command",
                "with shell: true, command must be a string".into(),
            ))
        }
        Some(Command::Argv(argv)) => argv.into_iter().map(Scalar::into_string).collect(),
        Some(Command::Line(line)) if shell => {
            if line.trim().is_empty() {
                Vec::new()
            } else {
                vec!["/bin/sh".into(), "-c".into(), line]
            }
        }
        Some(Command::Line(line)) => split_shell_words(&line).map_err(|e| invalid("command", e))?,
    };
    if command.first().is_none_or(|program| program.is_empty()) {
        return Err(invalid("command", "must name a program".into()));
    }
    // exec takes C strings: a NUL byte would fail every run of the job at spawn, so refuse it
    // here, where the mistake is written.
    if command.iter().any(|word| word.contains('\0')) {
        return Err(invalid("command", "contains a NUL byte".into()));
    }

    let timezone = match raw.schedule_timezone {
        Some(tz) if tz.parse::<Tz>().is_err() => {
            return Err(invalid(
                "schedule_timezone",
                CronError::UnknownTimezone(tz).to_string(),
            ))
        }
        tz => tz,
    };
    let schedule =
        match &raw.schedule {
            Some(text) => Some(Schedule::parse(text, name, timezone.as_deref()).map_err(
                |error| ConfigError::Schedule {
                    path: path.into(),
                    scope: scope.clone(),
                    error,
                },
            )?),
            None => None,
        };

    let duration = |key: &str, value: Option<DurationValue>| {
        value
            .map(|v| v.to_duration())
            .transpose()
            .map_err(|e| invalid(key, e))
    };
    // dsari treats a max_execution of 0 as "no limit".
    let max_execution = duration("max_execution", raw.max_execution)?.filter(|d| !d.is_zero());
    let max_execution_grace = duration("max_execution_grace", raw.max_execution_grace)?;
    if raw.max_log_bytes.is_some_and(|n| n < 2) {
        return Err(invalid(
            "max_log_bytes",
            "must be at least 2 (a head and a tail byte)".to_string(),
        ));
    }

    let priority = match raw.priority {
        None => 0,
        Some(PriorityValue::Number(n)) => i32::try_from(n)
            .map_err(|_| invalid("priority", format!("{n} does not fit in 32 bits")))?,
        Some(PriorityValue::Word(word)) => {
            parse_priority(&word).map_err(|e| invalid("priority", e))?
        }
    };

    let mut concurrency_groups: Vec<String> = Vec::new();
    for g in raw.concurrency_groups.unwrap_or_default() {
        if !is_valid_name(&g) {
            return Err(invalid(
                "concurrency_groups",
                format!("invalid name \"{g}\" (must match {NAME_RULE})"),
            ));
        }
        if !concurrency_groups.contains(&g) {
            concurrency_groups.push(g);
        }
    }
    let mut after: Vec<String> = Vec::new();
    for a in raw.after.unwrap_or_default() {
        if !after.contains(&a) {
            after.push(a);
        }
    }
    if let Some(jobset) = &raw.jobset {
        if !is_valid_name(jobset) {
            return Err(invalid(
                "jobset",
                format!("invalid name \"{jobset}\" (must match {NAME_RULE})"),
            ));
        }
    }
    let same_agent_as = match (raw.same_agent_as, raw.affinity.as_deref()) {
        (Some(_), Some("sticky")) => {
            return Err(invalid(
                "affinity",
                "sticky picks the agent of the first after; same_agent_as names it: use one".into(),
            ))
        }
        (Some(target), _) => {
            if !after.contains(&target) {
                after.push(target.clone());
            }
            Some(target)
        }
        (None, Some("sticky")) => match after.first() {
            Some(first) => Some(first.clone()),
            None => {
                return Err(invalid(
                    "affinity",
                    "sticky needs an after: it runs on the agent of the first one".into(),
                ))
            }
        },
        (None, None | Some("none")) => None,
        (None, Some(other)) => {
            return Err(invalid(
                "affinity",
                format!("expected sticky or none, got \"{other}\""),
            ))
        }
    };
    let artifacts = raw.artifacts.unwrap_or_default();
    if let Some(bad) = artifacts.iter().find(|g| !rota_proto::is_artifact_path(g)) {
        return Err(invalid(
            "artifacts",
            format!(
                "{bad:?} must be a relative path or glob inside RUN_DIR (no '..', not absolute)"
            ),
        ));
    }
    let stop_on_disconnect = match raw.on_disconnect.as_deref() {
        None | Some("keep") => false,
        Some("stop") => true,
        Some(other) => {
            return Err(invalid(
                "on_disconnect",
                format!("expected keep or stop, got \"{other}\""),
            ))
        }
    };
    let job_group = match (group, raw.job_group) {
        (Some(g), _) => Some(g.to_string()),
        (None, Some(g)) if !is_valid_name(&g) => {
            return Err(invalid(
                "job_group",
                format!("invalid name \"{g}\" (must match {NAME_RULE})"),
            ))
        }
        (None, by_hand) => by_hand,
    };

    Ok(JobDef {
        name: name.to_string(),
        job_group,
        command,
        shell,
        command_append_run: raw.command_append_run.unwrap_or(false),
        jenkins_environment: raw.jenkins_environment.unwrap_or(false),
        environment: environment(path, scope, raw.environment)?,
        concurrency_groups,
        schedule,
        schedule_text: raw.schedule,
        schedule_timezone: timezone,
        max_execution,
        max_execution_grace,
        concurrent_runs: raw.concurrent_runs.unwrap_or(false),
        priority,
        after,
        retries: raw.retries.unwrap_or(0),
        jobset: raw.jobset,
        max_log_bytes: raw.max_log_bytes,
        stop_on_disconnect,
        same_agent_as,
        artifacts,
        notify: notify(path, scope, raw.notify)?,
        retention: super::retention::policy(raw.retention.as_ref(), invalid)?,
    })
}

/// A `notify` list as checked webhook targets; a bad entry names the key and the problem.
pub(super) fn notify(
    path: &str,
    scope: &Scope,
    raw: Option<Vec<RawNotify>>,
) -> Result<Vec<crate::notify::Target>, ConfigError> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|n| {
            crate::notify::Target::new(
                &n.url,
                &n.events.unwrap_or_default(),
                n.secret_file.as_deref().unwrap_or_default(),
                n.format.as_deref().unwrap_or_default(),
            )
            .map_err(|message| ConfigError::InvalidValue {
                path: path.into(),
                scope: scope.clone(),
                key: "notify".into(),
                message,
            })
        })
        .collect()
}

/// An `environment` map as strings, refusing names a process environment cannot hold.
pub(super) fn environment(
    path: &str,
    scope: &Scope,
    raw: Option<BTreeMap<String, Scalar>>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (key, value) in raw.unwrap_or_default() {
        let value = value.into_string();
        let problem = if key.is_empty() || key.contains(['=', '\0']) {
            Some(format!("invalid variable name \"{key}\""))
        } else if value.contains('\0') {
            Some(format!("variable \"{key}\" contains a NUL byte"))
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(ConfigError::InvalidValue {
                path: path.into(),
                scope: scope.clone(),
                key: "environment".into(),
                message,
            });
        }
        out.insert(key, value);
    }
    Ok(out)
}
