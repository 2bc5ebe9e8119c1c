//! The file format as plain serde structs (`deny_unknown_fields`, every key optional), and the
//! one function that reads them from the document with errors naming scope and key.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

use super::error::{ConfigError, Scope};
use super::node::Node;

/// Top-level keys. `jobs`, `job_groups` and `concurrency_groups` are walked from the document
/// itself (to keep file order); they are listed here so the unknown-key check knows them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTop {
    #[allow(dead_code)] // read from the document in file order, see above
    pub jobs: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub job_groups: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub concurrency_groups: Option<IgnoredAny>,
    /// Variables for every run; a job's own `environment` wins over these.
    pub environment: Option<BTreeMap<String, Scalar>>,
    /// rota: the jobset `rota run` creates (default: the file's stem).
    pub jobset: Option<String>,
    /// rota: the jobset's parallel limit for `rota run`; 0 = unlimited.
    pub parallel: Option<u32>,
    /// rota: webhooks for every run this coordinator ends, and every jobset's end.
    pub notify: Option<Vec<RawNotify>>,
    /// rota: how long finished runs are kept, for every job that sets none (and ad hoc runs).
    pub retention: Option<RawRetention>,
    /// dsari's daemon and report settings: accepted so a dsari config applies unchanged, with
    /// one warning each (see [`NO_EFFECT_TOP`]); rota's coordinator has its own flags for data
    /// dir and shutdown and renders no HTML reports.
    #[allow(dead_code)]
    pub data_dir: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub template_dir: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub report_html_gz: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub report_output_limit: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub report_run_output_start: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub report_run_output_end: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub shutdown_kill_runs: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub shutdown_kill_grace: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub database: Option<IgnoredAny>,
    /// Read before validation (`sources.rs`): more files merged into this one.
    #[allow(dead_code)]
    pub config_d: Option<String>,
}

/// Top-level keys accepted for dsari compatibility that change nothing in rota: each present
/// one gives a warning naming it.
pub(super) const NO_EFFECT_TOP: &[&str] = &[
    "data_dir",
    "database",
    "template_dir",
    "report_html_gz",
    "report_output_limit",
    "report_run_output_start",
    "report_run_output_end",
    "shutdown_kill_runs",
    "shutdown_kill_grace",
];

/// Job keys accepted for dsari compatibility that change nothing in rota (one warning for all
/// the jobs that set one).
pub(super) const NO_EFFECT_JOB: &[&str] = &["render_reports"];

/// One concurrency group.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConcurrencyGroup {
    /// How many runs of the group may run at once; dsari's default is 1.
    pub max: Option<u32>,
}

/// One job, or one job group (which adds `job_names`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJob {
    /// argv, or a string split like a shell would (run under `/bin/sh -c` with `shell`).
    pub command: Option<Command>,
    pub shell: Option<bool>,
    /// dsari: append the job name and the run id as two extra arguments.
    pub command_append_run: Option<bool>,
    pub schedule: Option<String>,
    pub schedule_timezone: Option<String>,
    pub environment: Option<BTreeMap<String, Scalar>>,
    pub concurrency_groups: Option<Vec<String>>,
    pub max_execution: Option<DurationValue>,
    pub max_execution_grace: Option<DurationValue>,
    pub concurrent_runs: Option<bool>,
    pub priority: Option<PriorityValue>,
    pub after: Option<Vec<String>>,
    pub retries: Option<u32>,
    pub jobset: Option<String>,
    /// Bytes each stream of a run keeps at most (head and tail).
    pub max_log_bytes: Option<u64>,
    /// rota: `keep` (default) or `stop`, what the agent does with a run when it loses contact.
    pub on_disconnect: Option<String>,
    /// rota: start on the agent that ran this job (added to `after`), in its `RUN_DIR`.
    pub same_agent_as: Option<String>,
    /// rota: `sticky` is `same_agent_as` the first of `after` (for a whole job group);
    /// `none` (the default) places runs freely.
    pub affinity: Option<String>,
    /// rota: globs (relative to `RUN_DIR`) of files kept as artifacts when a run succeeds.
    pub artifacts: Option<Vec<String>>,
    /// rota: webhooks for this job's runs, besides the top-level ones.
    pub notify: Option<Vec<RawNotify>>,
    /// rota: how long this job's finished runs are kept; its fields win over the file's.
    pub retention: Option<RawRetention>,
    /// dsari: sets `JOB_GROUP`; filled in by job group expansion, may be written by hand.
    pub job_group: Option<String>,
    /// Only in `job_groups`: the jobs the group expands to.
    pub job_names: Option<Vec<String>>,
    /// dsari-render's switch: accepted for dsari compatibility with a warning (rota renders no
    /// HTML).
    #[allow(dead_code)]
    pub render_reports: Option<bool>,
    /// dsari's Jenkins variables (`BUILD_ID`, `BUILD_NUMBER`, `BUILD_TAG`, `WORKSPACE`...).
    pub jenkins_environment: Option<bool>,
}

/// One `notify` entry: a webhook (checked by `notify::Target::new`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    /// http:// or https:// URL the POST goes to.
    pub url: String,
    /// failure (default), success, retired, cancelled, jobset_finished, or any.
    pub events: Option<Vec<String>>,
    /// A file on the coordinator's machine whose content is the HMAC-SHA256 key of the
    /// `X-Rota-Signature-256` header.
    pub secret_file: Option<String>,
    /// json (default) or slack (`{"text": ...}`, which Teams takes too).
    pub format: Option<String>,
}

/// `retention: {max_age: 30d, keep_last: 1000, keep_failed_for: 90d}`, every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    /// Finished runs are deleted this long after they finished.
    pub max_age: Option<DurationValue>,
    /// Only the newest N finished runs are kept (per job; per jobset for ad hoc runs).
    pub keep_last: Option<u64>,
    /// Errored runs are kept at least this long, whatever the other two say.
    pub keep_failed_for: Option<DurationValue>,
}

/// `command`: a list is argv as it is; a string is split (or, with `shell`, run by `/bin/sh`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a list of strings or a string")]
pub(super) enum Command {
    Argv(Vec<Scalar>),
    Line(String),
}

/// `max_execution` and its grace: dsari's number of seconds, or a string like `"5m"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a number of seconds or a string such as \"90s\""
)]
pub(super) enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    /// The duration, through the one grammar of `rota_proto::duration`.
    pub fn to_duration(&self) -> Result<std::time::Duration, String> {
        match self {
            DurationValue::Seconds(s) => rota_proto::duration::seconds_to_duration(*s),
            DurationValue::Text(t) => rota_proto::duration::parse_duration(t),
        }
    }
}

/// `priority`: a word or an integer.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected high, normal, low or an integer")]
pub(super) enum PriorityValue {
    Number(i64),
    Word(String),
}

/// An argv word or environment value: YAML reads `[sleep, 90]` and `PORT: 5432` as numbers, so
/// numbers and booleans are taken as their text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a string, number or boolean")]
pub(super) enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    pub fn into_string(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Reads `T` from a mapping's entries. Keys `T` does not declare, and keys in `deny` (valid
/// elsewhere, not here), are [`ConfigError::UnknownKey`]; a bad value is
/// [`ConfigError::InvalidValue`] naming its key.
pub(super) fn from_map<T: DeserializeOwned>(
    path: &str,
    scope: &Scope,
    entries: &[(String, Node)],
    deny: &[&str],
) -> Result<T, ConfigError> {
    let fields = struct_fields::<T>();
    if let Some((key, _)) = entries
        .iter()
        .find(|(k, _)| !fields.contains(&k.as_str()) || deny.contains(&k.as_str()))
    {
        return Err(ConfigError::UnknownKey {
            path: path.into(),
            scope: scope.clone(),
            key: key.clone(),
        });
    }
    let whole = Node::Map(entries.to_vec()).to_json();
    serde_json::from_value(whole).map_err(|error| {
        // serde's error does not say which key; every key is optional, so the one that fails
        // on its own is the culprit.
        for (key, value) in entries {
            let single =
                serde_json::Value::Object([(key.clone(), value.to_json())].into_iter().collect());
            if let Err(e) = serde_json::from_value::<T>(single) {
                return ConfigError::InvalidValue {
                    path: path.into(),
                    scope: scope.clone(),
                    key: key.clone(),
                    message: e.to_string(),
                };
            }
        }
        ConfigError::Syntax {
            path: path.into(),
            message: format!("{scope}{error}"),
        }
    })
}

/// The field names serde derived for `T`, so the unknown-key check can never drift from the
/// struct. Found by handing `T::deserialize` a probe that records what `deserialize_struct`
/// is given and then stops.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};

    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("probe"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Self::Error::custom("probe"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_from_the_struct() {
        let fields = struct_fields::<RawConcurrencyGroup>();
        assert_eq!(fields, ["max"]);
        assert!(struct_fields::<RawJob>().contains(&"command_append_run"));
        assert!(struct_fields::<RawTop>().contains(&"shutdown_kill_runs"));
    }
}
