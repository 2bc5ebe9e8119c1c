//! Config files: a superset of dsari's JSON/YAML job configuration, validated as a whole.
//!
//! # Format
//!
//! Top level:
//! - `jobs`: name -> job.
//! - `job_groups`: name -> job keys plus `job_names: [..]`; expands to one job per name, each
//!   with `job_group` set to the group's name (and `JOB_GROUP` in its environment).
//! - `concurrency_groups`: name -> `{max: N}` (a group only named by jobs has max 1).
//! - `environment`: variables for every run.
//! - rota: `jobset` (the jobset `rota run` creates; default: the file's stem) and `parallel`
//!   (its limit; default 0 = unlimited).
//! - rota: `notify`: webhooks for every run and every jobset's end, a list of `{url, events,
//!   secret_file, format}` (events: `failure` (default), `success`, `retired`, `cancelled`,
//!   `jobset_finished` or `any`; format `json` or `slack`); see [`crate::notify`].
//! - `config_d`: a directory (relative to the file; default `config.d` beside it) whose
//!   `*.yaml`, then `*.json` files, each in name order, are merged over the file as dsari
//!   merges them (`sources.rs`).
//! - dsari daemon and report keys (`data_dir`, `template_dir`, `report_html_gz`,
//!   `report_output_limit`, `report_run_output_start`, `report_run_output_end`,
//!   `shutdown_kill_runs`, `shutdown_kill_grace`, `database`): accepted with one warning each
//!   ([`Definitions::warnings`]), no effect.
//!
//! Job keys: `command` (argv list, or a string split like a shell would; with `shell: true` the
//! string runs under `/bin/sh -c`), `shell`, `schedule` (see [`crate::cron`]),
//! `schedule_timezone` (IANA), `environment`, `concurrency_groups`, `max_execution` and
//! `max_execution_grace` (seconds, or `"90s"`, `"5m"`, `"1h"`, `"500ms"`), `concurrent_runs`,
//! `command_append_run` (dsari: append job name and run id), `jenkins_environment` (dsari's
//! `BUILD_ID`, `BUILD_NUMBER`, `BUILD_TAG`, `BUILD_URL`, `EXECUTOR_NUMBER`, `NODE_NAME`,
//! `WORKSPACE`), `max_log_bytes` (bytes each stream of a run keeps: head and tail around a
//! marker), `job_group`, `priority` (`high`/`normal`/`low`/integer), `after` (job names in
//! the same file), `retries`, `jobset`,
//! rota's `on_disconnect` (`keep`, the default, or `stop`: see `rota_proto::OnDisconnect`),
//! rota's `notify` (webhooks for this job's runs, as the top-level key). dsari's `render_reports` is accepted with one warning
//! for all the jobs that set it.
//!
//! # Errors
//!
//! Unknown keys are errors, never dropped. Every error is one line naming the file, the job or
//! group, and the key: `cfg.yaml: job "dump-db1": unknown key "comand"`. Validation covers names,
//! keys, value types, `after` targets and cycles, cron expressions, time zones, durations, and
//! jobs defined twice (in `jobs` and a job group, or in two job groups).

mod error;
mod job;
mod load;
mod model;
mod names;
mod node;
mod raw;
mod retention;
mod shell;
mod sources;
#[cfg(test)]
mod tests;
mod validate;

pub use error::{ConfigError, Scope};
pub use load::{load_file, load_sources, load_str};
pub use model::{Definitions, JobDef, DEFAULT_KILL_GRACE};
pub use names::{is_valid_name, NAME_RULE};
pub use rota_proto::duration::parse_duration;
pub use rota_proto::priority::parse_priority;
pub use shell::split_shell_words;
pub use sources::{read_sources, SourceFile};
