//! The end of `rota run`: a table of every run, one line saying how the jobset went, and for
//! failed runs where to look: `rota logs N` against a real coordinator, or the last lines of
//! stderr themselves when the coordinator was in-process (it is gone once `rota run` exits).

use std::collections::VecDeque;
use std::time::Duration;

use rota_proto::{LogStream, LogsRequest, Run};
use serde::Serialize;

use rota_cli::client::{Client, Reply, RpcError};
use rota_cli::output::render::{exit_text, run_duration, STATE_ORDER};
use rota_cli::output::{human_duration, views, Table};

/// How many stderr lines of a failed run an in-process `rota run` prints.
pub const TAIL_LINES: usize = 10;

/// `-o json` of `rota run`.
#[derive(Debug, Serialize)]
pub struct RunOutcomeView {
    pub jobset: String,
    pub all_succeeded: bool,
    pub elapsed_ms: u64,
    pub runs: Vec<views::RunView>,
    /// Last lines of stderr of failed runs, by run number (in-process mode only).
    pub stderr_tails: Vec<StderrTail>,
}

/// The end of a failed run's stderr.
#[derive(Debug, Serialize)]
pub struct StderrTail {
    pub number: u64,
    pub name: String,
    pub stderr: String,
}

/// NUMBER, NAME, STATE, DURATION, EXIT.
pub fn table(runs: &[&Run]) -> String {
    let mut t = Table::new(&["NUMBER", "NAME", "STATE", "DURATION", "EXIT"]);
    for r in runs {
        t.row(vec![
            r.number.to_string(),
            r.name.clone(),
            r.state.clone(),
            run_duration(r),
            exit_text(r.exit_code, r.signal),
        ]);
    }
    t.render()
}

/// `pipeline: 16 runs, 16 succeeded in 7.4s`, or with the other outcomes counted:
/// `pipeline: 16 runs, 13 succeeded, 1 errored, 2 skipped in 7.4s`.
pub fn outcome_line(jobset: &str, runs: &[&Run], elapsed: Duration) -> String {
    let count = |state: &str| runs.iter().filter(|r| r.state == state).count();
    let mut parts = vec![format!("{} succeeded", count("success"))];
    for state in STATE_ORDER.iter().filter(|s| **s != "success") {
        let n = count(state);
        if n > 0 {
            parts.push(format!("{n} {state}"));
        }
    }
    let plural = if runs.len() == 1 { "" } else { "s" };
    format!(
        "{jobset}: {} run{plural}, {} in {}",
        runs.len(),
        parts.join(", "),
        human_duration(elapsed)
    )
}

/// Runs that did not succeed.
pub fn failed<'a>(runs: &[&'a Run]) -> Vec<&'a Run> {
    runs.iter()
        .copied()
        .filter(|r| r.state != "success")
        .collect()
}

/// Whether a failed run may have written stderr worth showing (it was started).
pub fn has_output(run: &Run) -> bool {
    run.started_at_ms > 0 || run.stderr_len > 0
}

/// Hints for a coordinator that outlives `rota run`.
pub fn log_hints(failed: &[&Run]) -> String {
    failed
        .iter()
        .filter(|r| has_output(r))
        .map(|r| {
            format!(
                "#{} {} {}: rota logs {}\n",
                r.number, r.name, r.state, r.number
            )
        })
        .collect()
}

/// The last `TAIL_LINES` lines of a run's stderr, read with the Logs RPC. Only the tail is
/// kept in memory, however long the log.
pub async fn stderr_tail(client: &mut Client, run: &Run) -> anyhow::Result<String> {
    let mut stream = client
        .logs(LogsRequest {
            run: run.id.clone(),
            follow: false,
            stdout: false,
            stderr: true,
            ..Default::default()
        })
        .await
        .reply()?;
    let mut tail = Tail::new(TAIL_LINES);
    while let Some(chunk) = stream.message().await.map_err(RpcError)? {
        if chunk.stream == LogStream::Stderr as i32 {
            tail.push(&chunk.data);
        }
    }
    Ok(tail.text())
}

/// A failed run's header and stderr tail, for the terminal.
pub fn tail_block(run: &Run, stderr: &str) -> String {
    let mut how = run.state.clone();
    let exit = exit_text(run.exit_code, run.signal);
    if !exit.is_empty() {
        how.push_str(&format!(", exit {exit}"));
    }
    if !run.error.is_empty() {
        how.push_str(&format!(", {}", run.error));
    }
    let mut out = format!("--- #{} {} ({how}): stderr ---\n", run.number, run.name);
    if stderr.is_empty() {
        out.push_str("(empty)\n");
    } else {
        out.push_str(stderr);
        if !stderr.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The last N lines of a byte stream, fed chunk by chunk.
#[derive(Debug)]
pub struct Tail {
    max_lines: usize,
    lines: VecDeque<Vec<u8>>,
    /// The current, unterminated line.
    partial: Vec<u8>,
}

/// A single line longer than this is cut (from the front), so one endless line cannot fill
/// memory.
const MAX_LINE: usize = 64 * 1024;

impl Tail {
    pub fn new(max_lines: usize) -> Self {
        Self {
            max_lines,
            lines: VecDeque::new(),
            partial: Vec::new(),
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&data[..=pos]);
            self.lines.push_back(std::mem::take(&mut self.partial));
            if self.lines.len() > self.max_lines {
                self.lines.pop_front();
            }
            data = &data[pos + 1..];
        }
        self.partial.extend_from_slice(data);
        if self.partial.len() > MAX_LINE {
            let cut = self.partial.len() - MAX_LINE;
            self.partial.drain(..cut);
        }
    }

    /// The kept lines as text (invalid UTF-8 replaced), the unterminated last line included.
    pub fn text(&self) -> String {
        let keep_full = if self.partial.is_empty() {
            self.max_lines
        } else {
            self.max_lines.saturating_sub(1)
        };
        let skip = self.lines.len().saturating_sub(keep_full);
        let mut bytes: Vec<u8> = self.lines.iter().skip(skip).flatten().copied().collect();
        bytes.extend_from_slice(&self.partial);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(number: u64, name: &str, state: &str) -> Run {
        Run {
            id: format!("id-{number}"),
            number,
            name: name.into(),
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn outcome_line_for_a_clean_run() {
        let runs: Vec<Run> = (1..=16).map(|n| run(n, "x", "success")).collect();
        let refs: Vec<&Run> = runs.iter().collect();
        assert_eq!(
            outcome_line("pipeline", &refs, Duration::from_millis(7_400)),
            "pipeline: 16 runs, 16 succeeded in 7.4s"
        );
    }

    #[test]
    fn outcome_line_counts_every_other_state() {
        let runs = [
            run(1, "a", "success"),
            run(2, "b", "errored"),
            run(3, "c", "skipped"),
            run(4, "d", "skipped"),
        ];
        let refs: Vec<&Run> = runs.iter().collect();
        assert_eq!(
            outcome_line("p", &refs, Duration::from_secs(75)),
            "p: 4 runs, 1 succeeded, 1 errored, 2 skipped in 1m15s"
        );
        assert_eq!(failed(&refs).len(), 3);
        let one = [run(1, "a", "success")];
        assert_eq!(
            outcome_line("p", &[&one[0]], Duration::from_millis(100)),
            "p: 1 run, 1 succeeded in 0.1s"
        );
    }

    #[test]
    fn summary_table_has_number_name_state_duration_exit() {
        let mut r = run(3, "upload-db1", "errored");
        r.started_at_ms = 1_000;
        r.finished_at_ms = 2_000;
        r.exit_code = Some(1);
        assert_eq!(
            table(&[&r]),
            "NUMBER  NAME        STATE    DURATION  EXIT\n\
             3       upload-db1  errored  1.0s      1\n"
        );
    }

    #[test]
    fn log_hints_skip_runs_that_never_started() {
        let mut started = run(2, "b", "errored");
        started.started_at_ms = 5;
        let skipped = run(3, "c", "skipped");
        assert_eq!(
            log_hints(&[&started, &skipped]),
            "#2 b errored: rota logs 2\n"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines_across_chunk_boundaries() {
        let mut t = Tail::new(3);
        t.push(b"one\ntw");
        t.push(b"o\nthree\nfo");
        t.push(b"ur\nfive\n");
        assert_eq!(t.text(), "three\nfour\nfive\n");
    }

    #[test]
    fn tail_counts_an_unterminated_last_line() {
        let mut t = Tail::new(2);
        t.push(b"a\nb\nc\nno newline");
        assert_eq!(t.text(), "c\nno newline");
        let mut t = Tail::new(2);
        t.push(b"\xffbinary\n");
        assert_eq!(t.text(), "\u{fffd}binary\n");
    }

    #[test]
    fn tail_block_names_the_run_and_how_it_failed() {
        let mut r = run(5, "compress-db1", "errored");
        r.exit_code = Some(1);
        assert_eq!(
            tail_block(&r, "gzip: x: No such file"),
            "--- #5 compress-db1 (errored, exit 1): stderr ---\ngzip: x: No such file\n"
        );
        let mut r = run(6, "nope", "errored");
        r.error = "failed to start \"nope\": No such file or directory (os error 2)".into();
        assert_eq!(
            tail_block(&r, ""),
            "--- #6 nope (errored, failed to start \"nope\": No such file or directory (os error 2)): stderr ---\n(empty)\n"
        );
    }
}
