//! Every request is checked here, at the service edge, before it reaches the engine: run
//! references, numbers, names, enum values, lengths and durations. A request from the network
//! is untrusted; one the engine could not store (a run number beyond SQLite's signed 64-bit
//! integers) or an agent could not act on (a timeout past `Instant`'s range) is refused with
//! INVALID_ARGUMENT or NOT_FOUND naming the problem, and changes nothing.

use rota_proto as pb;

use crate::error::{check_name, Error, Result};
use crate::store::RUN_STATES;

/// The largest run number there can be: the store keeps numbers as SQLite's signed 64-bit
/// integers.
pub const MAX_RUN_NUMBER: u64 = i64::MAX as u64;

/// The longest duration a request may name (a run's timeout or kill grace, a drain timeout):
/// ten years. Longer ones overflow a deadline computed on an agent.
pub const MAX_DURATION_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

/// Runs one Submit may carry (one message, one transaction; 100,000 is the benchmarked size).
pub const MAX_SUBMIT_RUNS: usize = 1_000_000;

/// Run references one Wait may name.
pub const MAX_WAIT_RUNS: usize = 100_000;

/// Longest run id (ids are UUIDs, 36 characters).
const MAX_ID_LEN: usize = 64;

/// Longest free-form string a request may carry where no other rule applies (a run name, an
/// `after` entry, a label, a file name).
const MAX_TEXT_LEN: usize = 4096;

/// Longest error text an agent may report for a run.
const MAX_ERROR_LEN: usize = 64 << 10;

/// A string for an error message: quoted, and cut short when long, so a huge request does
/// not make a huge reply.
fn shown(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}… ({} bytes)", s.len())
    }
}

/// A run reference (`12`, `#12`, or a run id), normalised for the engine: a number within the
/// store's range, or a string that can be a run id. A number no run can have is NOT_FOUND.
pub fn run_ref(raw: &str) -> Result<String> {
    let r = raw.trim().trim_start_matches('#');
    if r.is_empty() {
        return Err(Error::InvalidArgument(
            "a run id or number is needed".into(),
        ));
    }
    if r.bytes().all(|c| c.is_ascii_digit()) {
        return match r.parse::<u64>() {
            Ok(n) if (1..=MAX_RUN_NUMBER).contains(&n) => Ok(n.to_string()),
            _ => {
                // Only ASCII digits: any byte index is a char boundary.
                let n = if r.len() > 40 {
                    format!("{}…", &r[..40])
                } else {
                    r.to_string()
                };
                Err(Error::NotFound(format!(
                    "no run {n} (run numbers go from 1 to {MAX_RUN_NUMBER})"
                )))
            }
        };
    }
    if r.len() <= MAX_ID_LEN && r.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        return Ok(r.to_string());
    }
    Err(Error::InvalidArgument(format!(
        "not a run id or number: {}",
        shown(raw)
    )))
}

/// A jobset name when given (empty: none, or the default where the request says so).
fn optional_jobset(name: &str) -> Result<()> {
    if name.is_empty() {
        Ok(())
    } else {
        check_name("jobset", name)
    }
}

/// Free text: bounded, and without NUL (which no file name, argument or variable can hold).
fn text(what: &str, s: &str) -> Result<()> {
    if s.len() > MAX_TEXT_LEN {
        return Err(Error::InvalidArgument(format!(
            "{what} {} is longer than {MAX_TEXT_LEN} bytes",
            shown(s)
        )));
    }
    no_nul(what, s)
}

fn no_nul(what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "{what} {} contains a NUL byte",
            shown(s)
        )));
    }
    Ok(())
}

fn duration(what: &str, ms: u64) -> Result<()> {
    if ms > MAX_DURATION_MS {
        return Err(Error::InvalidArgument(format!(
            "{what} {ms} ms is longer than the {MAX_DURATION_MS} ms (ten years) allowed"
        )));
    }
    Ok(())
}

/// Environment variables as a process can receive them: a non-empty name without `=` or NUL,
/// a value without NUL.
fn env<'a>(vars: impl IntoIterator<Item = (&'a String, &'a String)>) -> Result<()> {
    for (k, v) in vars {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(Error::InvalidArgument(format!(
                "invalid environment variable name {} (must be non-empty, without = or NUL)",
                shown(k)
            )));
        }
        no_nul(&format!("environment variable {k}"), v)?;
    }
    Ok(())
}

fn store_len(what: &str, n: u64) -> Result<()> {
    if n > MAX_RUN_NUMBER {
        return Err(Error::InvalidArgument(format!(
            "{what} {n} is beyond {MAX_RUN_NUMBER}"
        )));
    }
    Ok(())
}

pub fn submit(req: &pb::SubmitRequest) -> Result<()> {
    optional_jobset(&req.jobset)?;
    if req.runs.len() > MAX_SUBMIT_RUNS {
        return Err(Error::InvalidArgument(format!(
            "a submit of {} runs: at most {MAX_SUBMIT_RUNS} per submit",
            req.runs.len()
        )));
    }
    for spec in &req.runs {
        run_spec(spec)?;
    }
    Ok(())
}

fn run_spec(spec: &pb::RunSpec) -> Result<()> {
    text("run name", &spec.name)?;
    for arg in &spec.command {
        no_nul("command argument", arg)?;
    }
    env(&spec.env)?;
    for g in &spec.groups {
        check_name("concurrency group", g)?;
    }
    for a in &spec.after {
        text("after", a)?;
    }
    duration("max_execution_ms", spec.max_execution_ms)?;
    duration("kill_grace_ms", spec.kill_grace_ms)
}

pub fn jobset_name(name: &str) -> Result<()> {
    check_name("jobset", name)
}

/// A jobset takes at most this many webhooks.
const MAX_NOTIFY_TARGETS: usize = 32;

pub fn notify_targets(targets: &[pb::NotifyTarget]) -> Result<()> {
    if targets.len() > MAX_NOTIFY_TARGETS {
        return Err(Error::InvalidArgument(format!(
            "{} notify targets given, at most {MAX_NOTIFY_TARGETS} are accepted",
            targets.len()
        )));
    }
    for t in targets {
        crate::notify::Target::from_proto(t).map_err(Error::InvalidArgument)?;
    }
    Ok(())
}

/// Run numbers and times are SQLite integers: above `i64::MAX` is out of range.
fn store_integer(what: &str, value: u64) -> Result<()> {
    if value > MAX_RUN_NUMBER {
        return Err(Error::InvalidArgument(format!(
            "{what} {value} is out of range (at most {MAX_RUN_NUMBER})"
        )));
    }
    Ok(())
}

pub fn list_notifications(req: &pb::ListNotificationsRequest) -> Result<()> {
    store_integer("run", req.run)
}

pub fn list_audit(req: &pb::ListAuditRequest) -> Result<()> {
    store_integer("run", req.run)?;
    store_integer("since_ms", req.since_ms)
}

pub fn list_runs(req: &pb::ListRunsRequest) -> Result<()> {
    optional_jobset(&req.jobset)?;
    if !req.state.is_empty() && !RUN_STATES.contains(&req.state.as_str()) {
        return Err(Error::InvalidArgument(format!(
            "unknown run state {} (one of {})",
            shown(&req.state),
            RUN_STATES.join(", ")
        )));
    }
    if req.after_number > MAX_RUN_NUMBER {
        return Err(Error::InvalidArgument(format!(
            "after_number {} is beyond the largest run number {MAX_RUN_NUMBER}",
            req.after_number
        )));
    }
    Ok(())
}

/// A Logs request, with its run reference normalised.
pub fn logs(mut req: pb::LogsRequest) -> Result<pb::LogsRequest> {
    req.run = run_ref(&req.run)?;
    store_len("stdout_offset", req.stdout_offset)?;
    store_len("stderr_offset", req.stderr_offset)?;
    Ok(req)
}

/// A Retry request, with its run reference normalised.
pub fn retry(mut req: pb::RetryRequest) -> Result<pb::RetryRequest> {
    if !req.run.is_empty() {
        req.run = run_ref(&req.run)?;
    }
    if req.runs.len() > MAX_WAIT_RUNS {
        return Err(Error::InvalidArgument(format!(
            "retry names {} runs, at most {MAX_WAIT_RUNS} are allowed (use --jobset --failed)",
            req.runs.len()
        )));
    }
    req.runs = req.runs.iter().map(|r| run_ref(r)).collect::<Result<_>>()?;
    optional_jobset(&req.jobset)?;
    Ok(req)
}

/// A Wait request, with its run references normalised.
pub fn wait(mut req: pb::WaitRequest) -> Result<pb::WaitRequest> {
    if req.runs.len() > MAX_WAIT_RUNS {
        return Err(Error::InvalidArgument(format!(
            "wait names {} runs, at most {MAX_WAIT_RUNS} are allowed (wait for a jobset instead)",
            req.runs.len()
        )));
    }
    optional_jobset(&req.jobset)?;
    req.runs = req.runs.iter().map(|r| run_ref(r)).collect::<Result<_>>()?;
    Ok(req)
}

pub fn watch(req: &pb::WatchRequest) -> Result<()> {
    optional_jobset(&req.jobset)
}

pub fn drain(req: &pb::DrainRequest) -> Result<()> {
    check_name("agent", &req.agent)?;
    duration("drain timeout_ms", req.timeout_ms)
}

pub fn set_group_max(req: &pb::SetGroupMaxRequest) -> Result<()> {
    check_name("concurrency group", &req.name)
}

pub fn apply(req: &pb::ApplyRequest) -> Result<()> {
    text("config path", &req.path)
}

pub fn trigger(req: &pb::TriggerRequest) -> Result<()> {
    check_name("job", &req.job)?;
    env(&req.env)
}

/// Runs per `ImportRuns` request.
pub const MAX_IMPORT_RUNS: usize = 1000;

/// Output bytes per `ImportRuns` request: a longer history comes in more requests.
pub const MAX_IMPORT_BYTES: usize = 8 << 20;

/// Finished runs from another system: ids the log store can name, names, environment, times
/// and output pieces that fit together, within the request bounds.
pub fn import_runs(req: &pb::ImportRunsRequest) -> Result<()> {
    if req.runs.len() > MAX_IMPORT_RUNS {
        return Err(Error::InvalidArgument(format!(
            "an import of {} runs: at most {MAX_IMPORT_RUNS} per request",
            req.runs.len()
        )));
    }
    let bytes: usize = req.runs.iter().map(|r| r.output.len()).sum();
    if bytes > MAX_IMPORT_BYTES {
        return Err(Error::InvalidArgument(format!(
            "an import of {bytes} output bytes: at most {MAX_IMPORT_BYTES} per request"
        )));
    }
    for r in &req.runs {
        if crate::logs::RunId::parse(&r.id).is_none() {
            return Err(Error::InvalidArgument(format!(
                "imported run id {} is not a lowercase hyphenated UUID",
                shown(&r.id)
            )));
        }
        check_name("job", &r.job)?;
        text("trigger type", &r.trigger_type)?;
        env(&r.env)?;
        if r.return_data.len() > rota_proto::MAX_RETURN_DATA {
            return Err(Error::InvalidArgument(format!(
                "imported run {}: return data of {} bytes, at most {}",
                r.id,
                r.return_data.len(),
                rota_proto::MAX_RETURN_DATA
            )));
        }
        if !r.return_data.is_empty() {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&r.return_data) {
                return Err(Error::InvalidArgument(format!(
                    "imported run {}: return data is not JSON: {e}",
                    r.id
                )));
            }
        }
        let end = r.output_offset.checked_add(r.output.len() as u64);
        if end.is_none_or(|end| end > r.output_len) || r.output_len > MAX_RUN_NUMBER {
            return Err(Error::InvalidArgument(format!(
                "imported run {}: output piece at {} of {} bytes goes past its length {}",
                r.id,
                r.output_offset,
                r.output.len(),
                r.output_len
            )));
        }
        for (what, ms) in [
            ("schedule_time_ms", r.schedule_time_ms),
            ("start_time_ms", r.start_time_ms),
            ("stop_time_ms", r.stop_time_ms),
        ] {
            store_len(&format!("imported run {}: {what}", r.id), ms)?;
        }
        if r.stop_time_ms < r.start_time_ms {
            return Err(Error::InvalidArgument(format!(
                "imported run {}: stop_time_ms {} is before start_time_ms {}",
                r.id, r.stop_time_ms, r.start_time_ms
            )));
        }
    }
    Ok(())
}

/// An agent's Hello (the engine checks its slots).
pub fn hello(h: &pb::Hello) -> Result<()> {
    check_name("agent", &h.name)?;
    for g in &h.groups {
        check_name("concurrency group", g)?;
    }
    for (k, v) in &h.labels {
        text("label", k)?;
        text(&format!("label {k}"), v)?;
    }
    text("session id", &h.session_id)
}

/// An agent's report that a run ended: lengths the store can hold, a bounded error text.
/// An artifact chunk: a path inside RUN_DIR, a digest that can name a file, a size in bounds
/// and data inside it.
pub fn artifact_chunk(c: &pb::ArtifactChunk) -> Result<()> {
    artifact_file(&c.run_id, &c.path, &c.sha256, c.size)?;
    let end = c.offset.checked_add(c.data.len() as u64);
    if c.data.len() > rota_proto::ARTIFACT_CHUNK || end.is_none_or(|end| end > c.size) {
        return Err(Error::InvalidArgument(format!(
            "run {}: artifact {}: {} bytes at offset {} do not fit its size {}",
            shown(&c.run_id),
            shown(&c.path),
            c.data.len(),
            c.offset,
            c.size
        )));
    }
    Ok(())
}

/// An artifact a chunk, a result or an upload (`rota artifact upload`) names.
pub fn artifact_file(run_id: &str, path: &str, sha256: &str, size: u64) -> Result<()> {
    if !rota_proto::is_artifact_path(path) {
        return Err(Error::InvalidArgument(format!(
            "run {}: artifact path {} is not a relative path inside RUN_DIR",
            shown(run_id),
            shown(path)
        )));
    }
    if !crate::artifacts::is_sha256(sha256) {
        return Err(Error::InvalidArgument(format!(
            "run {}: artifact {}: digest {} is not a lowercase hex SHA-256",
            shown(run_id),
            shown(path),
            shown(sha256)
        )));
    }
    if size > rota_proto::MAX_ARTIFACT_BYTES {
        return Err(Error::InvalidArgument(format!(
            "run {}: artifact {} of {size} bytes is larger than {}",
            shown(run_id),
            shown(path),
            rota_proto::MAX_ARTIFACT_BYTES
        )));
    }
    Ok(())
}

pub fn finished(f: &pb::RunFinished) -> Result<()> {
    if f.artifacts.len() > rota_proto::MAX_ARTIFACTS_PER_RUN {
        return Err(Error::InvalidArgument(format!(
            "run {}: {} artifacts, more than {}",
            shown(&f.run_id),
            f.artifacts.len(),
            rota_proto::MAX_ARTIFACTS_PER_RUN
        )));
    }
    for a in &f.artifacts {
        artifact_file(&f.run_id, &a.path, &a.sha256, a.size)?;
    }
    store_len("stdout_len", f.stdout_len)?;
    store_len("stderr_len", f.stderr_len)?;
    if f.error.len() > MAX_ERROR_LEN {
        return Err(Error::InvalidArgument(format!(
            "run {}: error text of {} bytes is longer than {MAX_ERROR_LEN}",
            shown(&f.run_id),
            f.error.len()
        )));
    }
    let file = &f.return_data_file;
    if !file.is_empty() && !rota_proto::RETURN_DATA_FILES.contains(&file.as_str()) {
        return Err(Error::InvalidArgument(format!(
            "run {}: return data file {} is not one of {:?}",
            shown(&f.run_id),
            shown(file),
            rota_proto::RETURN_DATA_FILES
        )));
    }
    if f.return_data.len() + f.return_data_problem.len() > rota_proto::MAX_RETURN_DATA {
        return Err(Error::InvalidArgument(format!(
            "run {}: return data of {} bytes is longer than {}",
            shown(&f.run_id),
            f.return_data.len() + f.return_data_problem.len(),
            rota_proto::MAX_RETURN_DATA
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(Error::InvalidArgument(_)))
    }

    fn is_not_found<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(Error::NotFound(_)))
    }

    #[test]
    fn run_numbers_beyond_the_store_are_not_found_and_named() {
        for n in [
            "0",
            "9223372036854775808",
            "18446744073709551615",
            "99999999999999999999999",
        ] {
            let err = run_ref(n).unwrap_err();
            assert!(matches!(err, Error::NotFound(_)), "{n}: {err:?}");
            assert!(err.to_string().contains(n), "{n}: {err}");
        }
        assert_eq!(
            run_ref(" #9223372036854775807 ").unwrap(),
            "9223372036854775807"
        );
        assert_eq!(run_ref("007").unwrap(), "7");
    }

    #[test]
    fn run_ids_are_ids_and_nothing_else() {
        let id = "0b6e2b9c-7f7e-4c7a-a1f2-9b1b2f0c6a11";
        assert_eq!(run_ref(id).unwrap(), id);
        for bad in [
            "",
            "  ",
            "#",
            "../../etc/passwd",
            "/tmp/x",
            "a\0b",
            "ü",
            &"a".repeat(65),
        ] {
            assert!(is_invalid(run_ref(bad)), "{bad:?}");
        }
    }

    #[test]
    fn imports_with_bad_ids_names_pieces_or_sizes_are_refused() {
        let good = || pb::ImportedRun {
            id: "0b6e2b9c-7f7e-4c7a-a1f2-9b1b2f0c6a11".into(),
            job: "backup".into(),
            start_time_ms: 10,
            stop_time_ms: 20,
            output: b"abc".to_vec(),
            output_offset: 2,
            output_len: 5,
            ..Default::default()
        };
        let one = |r: pb::ImportedRun| pb::ImportRunsRequest { runs: vec![r] };
        import_runs(&one(good())).unwrap();
        let mut with_data = good();
        with_data.return_data = r#"{"rows": 3}"#.into();
        import_runs(&one(with_data)).unwrap();
        let bad: [fn(&mut pb::ImportedRun); 9] = [
            |r| r.return_data = "{not json".into(),
            |r| r.return_data = format!("\"{}\"", "x".repeat(rota_proto::MAX_RETURN_DATA)),
            |r| r.id = "../../etc".into(),
            |r| r.id = r.id.to_uppercase(),
            |r| r.job = "a/b".into(),
            |r| r.output_len = 4,
            |r| r.output_offset = u64::MAX,
            |r| r.stop_time_ms = 5,
            |r| {
                r.env.insert("A=B".into(), "x".into());
            },
        ];
        for change in bad {
            let mut r = good();
            change(&mut r);
            assert!(is_invalid(import_runs(&one(r.clone()))), "{r:?}");
        }
        let many = pb::ImportRunsRequest {
            runs: vec![good(); MAX_IMPORT_RUNS + 1],
        };
        assert!(is_invalid(import_runs(&many)));
        let mut big = good();
        big.output = vec![0; MAX_IMPORT_BYTES + 1];
        big.output_offset = 0;
        big.output_len = big.output.len() as u64;
        assert!(is_invalid(import_runs(&one(big))));
    }

    #[test]
    fn a_huge_reference_is_cut_short_in_the_message() {
        let huge = "x/".repeat(1 << 20);
        let msg = run_ref(&huge).unwrap_err().to_string();
        assert!(msg.len() < 300, "{} bytes", msg.len());
    }

    #[test]
    fn list_runs_refuses_unknown_states_and_numbers_past_the_store() {
        let ok = pb::ListRunsRequest {
            state: "pending".into(),
            after_number: MAX_RUN_NUMBER,
            ..Default::default()
        };
        list_runs(&ok).unwrap();
        for req in [
            pb::ListRunsRequest {
                state: "bogus".into(),
                ..Default::default()
            },
            pb::ListRunsRequest {
                after_number: MAX_RUN_NUMBER + 1,
                ..Default::default()
            },
            pb::ListRunsRequest {
                jobset: "../x".into(),
                ..Default::default()
            },
        ] {
            assert!(is_invalid(list_runs(&req)), "{req:?}");
        }
    }

    #[test]
    fn submits_with_nul_bytes_bad_env_or_endless_timeouts_are_refused() {
        let spec = |f: fn(&mut pb::RunSpec)| {
            let mut s = pb::RunSpec {
                command: vec!["true".into()],
                ..Default::default()
            };
            f(&mut s);
            pb::SubmitRequest {
                runs: vec![s],
                ..Default::default()
            }
        };
        submit(&spec(|_| {})).unwrap();
        for req in [
            spec(|s| s.command = vec!["a\0b".into()]),
            spec(|s| {
                s.env.insert("A=B".into(), "x".into());
            }),
            spec(|s| {
                s.env.insert(String::new(), "x".into());
            }),
            spec(|s| s.max_execution_ms = u64::MAX),
            spec(|s| s.kill_grace_ms = MAX_DURATION_MS + 1),
            spec(|s| s.groups = vec!["a/b".into()]),
        ] {
            assert!(is_invalid(submit(&req)), "{req:?}");
        }
    }

    #[test]
    fn wait_normalises_references_and_refuses_impossible_ones() {
        let req = pb::WaitRequest {
            runs: vec!["#3".into()],
            jobset: String::new(),
        };
        assert_eq!(wait(req).unwrap().runs, ["3"]);
        let req = pb::WaitRequest {
            runs: vec!["3".into(), "9223372036854775808".into()],
            jobset: String::new(),
        };
        assert!(is_not_found(wait(req)));
    }

    #[test]
    fn agent_reports_past_the_store_are_refused() {
        let f = pb::RunFinished {
            stdout_len: u64::MAX,
            ..Default::default()
        };
        assert!(is_invalid(finished(&f)));
        let h = pb::Hello {
            groups: vec!["../g".into()],
            ..Default::default()
        };
        assert!(is_invalid(hello(&h)));
    }
}
