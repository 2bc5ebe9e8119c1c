//! The POST body. The engine stores what the result says (at commit, from the record); the
//! sender adds what it must read from disk or from the listener (the log tails, the link) at
//! send time, off the engine's thread, and renders the chosen format.

use serde_json::{json, Value};

use super::{Event, Format};
use crate::logs::{LogHub, Stream};
use crate::store::RunRecord;
use crate::time::format_millis;

/// Lines of each stream a body carries.
pub const TAIL_LINES: usize = 20;

/// Bytes read from the end of a log for its tail: twenty long lines, not a 1 GiB file.
const TAIL_BYTES: u64 = 64 << 10;

fn time(ms: u64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::String(format_millis(ms))
    }
}

/// What the outbox row of a run's event holds.
pub fn run(rec: &RunRecord, event: Event) -> Value {
    json!({
        "event": event.as_str(),
        "number": rec.number,
        "id": rec.id,
        "name": rec.name,
        "jobset": rec.jobset,
        "state": rec.state,
        "exit_code": rec.exit_code,
        "signal": rec.signal,
        "error": rec.error,
        "attempt": rec.attempt,
        "agent": rec.agent,
        "group": rec.group,
        "submitted_at": time(rec.submitted_at),
        "started_at": time(rec.started_at),
        "finished_at": time(rec.finished_at),
    })
}

/// What the outbox row of a jobset's end holds.
pub fn jobset(js: &rota_proto::Jobset, now: u64) -> Value {
    json!({
        "event": Event::JobsetFinished.as_str(),
        "jobset": js.name,
        "state": js.state,
        "counts": js.counts,
        "created_at": time(js.created_at_ms),
        "finished_at": time(now),
    })
}

/// The last [`TAIL_LINES`] lines of one stream of an attempt; empty when it has no log.
fn tail(logs: &LogHub, run: &str, attempt: u32, stream: Stream) -> Vec<String> {
    // Read as `rota logs` reads it: checked, and from the database's copy when another
    // coordinator received it (a delivery retried after a takeover).
    let Ok(mut reader) = logs.reader(run, attempt, stream) else {
        return vec![];
    };
    let len = reader.stored_len();
    let start = len.saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    while (start + bytes.len() as u64) < len {
        match reader.read_at(
            start + bytes.len() as u64,
            (len - start) as usize - bytes.len(),
        ) {
            Ok(piece) if !piece.is_empty() => bytes.extend_from_slice(&piece),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        // The first line read is probably cut.
        lines.remove(0);
    }
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..].iter().map(|l| l.to_string()).collect()
}

/// The body as sent: the stored part, the link to the run's page and (for runs) the tails
/// of its last attempt's streams, in `format`.
pub fn render(stored: &Value, base_url: &str, logs: &LogHub, format: Format) -> Vec<u8> {
    let mut body = stored.clone();
    let number = stored["number"].as_u64();
    let base = base_url.trim_end_matches('/');
    if let (Some(number), Some(map)) = (number, body.as_object_mut()) {
        let id = stored["id"].as_str().unwrap_or_default();
        let attempt = stored["attempt"].as_u64().unwrap_or(1) as u32;
        map.insert("url".into(), format!("{base}/runs/{number}").into());
        map.insert(
            "stdout".into(),
            tail(logs, id, attempt, Stream::Stdout).into(),
        );
        map.insert(
            "stderr".into(),
            tail(logs, id, attempt, Stream::Stderr).into(),
        );
    }
    let body = match format {
        Format::Json => body,
        Format::Slack => json!({ "text": text(&body) }),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One line for a chat message: what ended, how, and where to look.
fn text(body: &Value) -> String {
    let s = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    if let Some(number) = body["number"].as_u64() {
        let how = match (body["exit_code"].as_i64(), body["signal"].as_i64()) {
            (Some(code), _) => format!(" (exit {code})"),
            (None, Some(sig)) => format!(" (signal {sig})"),
            _ => String::new(),
        };
        let error = match s("error") {
            e if e.is_empty() => String::new(),
            e => format!(": {e}"),
        };
        let mut line = format!(
            "rota: run #{number} {} in jobset {} {}{how}{error}",
            s("name"),
            s("jobset"),
            s("state")
        );
        let agent = s("agent");
        if !agent.is_empty() {
            line.push_str(&format!(" on {agent}"));
        }
        line.push_str(&format!(" <{}>", s("url")));
        line
    } else {
        format!("rota: jobset {} finished: {}", s("jobset"), s("state"))
    }
}

/// `sha256=HEX` of HMAC-SHA256 over `body` with `key`: the value of X-Rota-Signature-256, made
/// as GitHub's X-Hub-Signature-256, so receivers can reuse their check.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, body);
    let mut out = String::from("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" page.
        assert_eq!(
            signature(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn slack_text_names_run_state_exit_and_link() {
        let body = json!({"number": 7, "name": "build", "jobset": "ci", "state": "errored",
            "exit_code": 2, "signal": null, "error": "", "agent": "host-a",
            "url": "http://c/runs/7"});
        assert_eq!(
            text(&body),
            "rota: run #7 build in jobset ci errored (exit 2) on host-a <http://c/runs/7>"
        );
    }
}
