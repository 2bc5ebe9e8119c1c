//! Config errors: one line each, naming the file, the job (or group) and the key, so a person
//! can fix the file without reading rota's source.

use std::fmt;

use crate::cron::CronError;

/// Where in the file an error is: the top level, or inside one named entry. Display is the
/// prefix of the message (`job "x": `), empty at the top level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A top-level key.
    File,
    /// Inside `jobs.NAME` (or a job expanded from a group, for its name).
    Job(String),
    /// Inside `job_groups.NAME`: keys shared by all its jobs.
    JobGroup(String),
    /// Inside `concurrency_groups.NAME`.
    ConcurrencyGroup(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::File => Ok(()),
            Scope::Job(name) => write!(f, "job \"{name}\": "),
            Scope::JobGroup(name) => write!(f, "job group \"{name}\": "),
            Scope::ConcurrencyGroup(name) => write!(f, "concurrency group \"{name}\": "),
        }
    }
}

/// Why a config file was refused. `path` is the file as the user named it.
///
/// Fields carrying causes are not named `source`, so an error chain printed with `{:#}` does not
/// repeat the cause that Display already shows.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// Not valid JSON/YAML, or not a mapping at the top; `message` carries line and column.
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    /// A key rota does not know: most often a typo, never silently dropped.
    #[error("{path}: {scope}unknown key \"{key}\"")]
    UnknownKey {
        path: String,
        scope: Scope,
        key: String,
    },
    /// A required key is absent (`command`, `job_names`).
    #[error("{path}: {scope}missing key \"{key}\"")]
    MissingKey {
        path: String,
        scope: Scope,
        key: String,
    },
    /// A key whose value has the wrong type or form.
    #[error("{path}: {scope}{key}: {message}")]
    InvalidValue {
        path: String,
        scope: Scope,
        key: String,
        message: String,
    },
    /// The name of a job, job group or concurrency group breaks dsari's naming rule.
    #[error(
        "{path}: {scope}invalid name (must match ^[- A-Za-z0-9_+.:@]+$, at most 64 characters, \
         not . or ..)"
    )]
    InvalidName { path: String, scope: Scope },
    /// A job is defined twice (in `jobs` and a job group, or in two job groups).
    #[error("{path}: job \"{job}\": {detail}")]
    Duplicate {
        path: String,
        job: String,
        detail: String,
    },
    /// `after` names a job that is not in the file.
    #[error("{path}: job \"{job}\": after: no job named \"{target}\"")]
    UnknownAfter {
        path: String,
        job: String,
        target: String,
    },
    /// `after` edges form a loop; `cycle` starts and ends with the same job.
    #[error("{path}: cycle in after: {}", .cycle.join(" -> "))]
    Cycle { path: String, cycle: Vec<String> },
    /// The schedule does not parse (`scope` is the job, or the job group it came from).
    #[error("{path}: {scope}schedule: {error}")]
    Schedule {
        path: String,
        scope: Scope,
        error: CronError,
    },
}
