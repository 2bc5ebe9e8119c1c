//! A webhook target as config files, `rota jobset create --notify` and the store hold it, and
//! its checks: the same rules for every source, so a bad entry is refused with one line
//! naming it wherever it comes from.

use serde::{Deserialize, Serialize};

use rota_proto as pb;

/// What a target may ask to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A run errored for good: non-zero exit, signal, timeout or agent lost after its retries.
    Failure,
    Success,
    Retired,
    Cancelled,
    /// The last unfinished run of a jobset ended.
    JobsetFinished,
}

/// Every event, in the order messages list them.
pub const EVENTS: &[Event] = &[
    Event::Failure,
    Event::Success,
    Event::Retired,
    Event::Cancelled,
    Event::JobsetFinished,
];

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failure => "failure",
            Event::Success => "success",
            Event::Retired => "retired",
            Event::Cancelled => "cancelled",
            Event::JobsetFinished => "jobset_finished",
        }
    }

    /// `any` is every event; otherwise one of [`EVENTS`] by name.
    pub fn parse(s: &str) -> Result<Vec<Event>, String> {
        if s == "any" {
            return Ok(EVENTS.to_vec());
        }
        EVENTS
            .iter()
            .copied()
            .find(|e| e.as_str() == s)
            .map(|e| vec![e])
            .ok_or_else(|| {
                format!(
                    "unknown notify event {s:?}: expected any, failure, success, retired, cancelled or jobset_finished"
                )
            })
    }

    /// The event a run's final state is, if any (`skipped` runs never ran: no event).
    pub fn of_run_state(state: &str) -> Option<Event> {
        match state {
            "errored" => Some(Event::Failure),
            "success" => Some(Event::Success),
            "retired" => Some(Event::Retired),
            "cancelled" => Some(Event::Cancelled),
            _ => None,
        }
    }
}

/// The body's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// rota's JSON body (see `payload`).
    #[default]
    Json,
    /// `{"text": "..."}`, which Slack and Teams incoming webhooks take.
    Slack,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "" | "json" => Ok(Format::Json),
            "slack" => Ok(Format::Slack),
            _ => Err(format!(
                "unknown notify format {s:?}: expected json or slack"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
        }
    }
}

/// One webhook: checked by [`Target::new`], stored as JSON with its jobset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub url: String,
    pub events: Vec<Event>,
    /// File whose content (trimmed) is the HMAC key; read at each send, so a rotated secret
    /// applies without a restart.
    #[serde(default)]
    pub secret_file: Option<String>,
    #[serde(default)]
    pub format: Format,
}

/// A URL a webhook may POST to: at most this long.
const MAX_URL: usize = 2048;

impl Target {
    /// Checks every part; no events means `failure`, the event people ask for first.
    pub fn new(
        url: &str,
        events: &[String],
        secret_file: &str,
        format: &str,
    ) -> Result<Target, String> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("notify url {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "notify url {url:?} must be http:// or https:// with a host"
            ));
        }
        if url.len() > MAX_URL {
            return Err(format!("notify url is longer than {MAX_URL} bytes"));
        }
        let mut parsed_events = Vec::new();
        for e in events {
            for e in Event::parse(e)? {
                if !parsed_events.contains(&e) {
                    parsed_events.push(e);
                }
            }
        }
        if parsed_events.is_empty() {
            parsed_events.push(Event::Failure);
        }
        if secret_file.contains('\0') {
            return Err("notify secret_file holds a NUL byte".into());
        }
        Ok(Target {
            url: url.to_string(),
            events: parsed_events,
            secret_file: (!secret_file.is_empty()).then(|| secret_file.to_string()),
            format: Format::parse(format)?,
        })
    }

    pub fn from_proto(t: &pb::NotifyTarget) -> Result<Target, String> {
        Target::new(&t.url, &t.events, &t.secret_file, &t.format)
    }

    pub fn wants(&self, event: Event) -> bool {
        self.events.contains(&event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_events_means_failure_and_any_means_all() {
        let t = Target::new("http://h/x", &[], "", "").unwrap();
        assert_eq!(t.events, [Event::Failure]);
        let t = Target::new("https://h/x", &["any".into()], "", "slack").unwrap();
        assert_eq!(t.events, EVENTS);
        assert_eq!(t.format, Format::Slack);
    }

    #[test]
    fn bad_entries_are_refused_naming_the_part() {
        let err = Target::new("ftp://h/x", &[], "", "").unwrap_err();
        assert!(err.contains("http://"), "{err}");
        let err = Target::new("nope", &[], "", "").unwrap_err();
        assert!(err.contains("not a URL"), "{err}");
        let err = Target::new("http://h", &["sometimes".into()], "", "").unwrap_err();
        assert!(err.contains("\"sometimes\""), "{err}");
        let err = Target::new("http://h", &[], "", "xml").unwrap_err();
        assert!(err.contains("\"xml\""), "{err}");
    }
}
