//! Live progress of `rota run`: the latest state of every submitted run, one line per state
//! change, and on a terminal a one-line status redrawn in place with `\r`. Pure state plus
//! formatting, so it is tested without a coordinator; `mod.rs` feeds it Watch events.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use rota_proto::Run;

use rota_cli::output::render::exit_text;
use rota_cli::output::{human_duration, span_ms};

/// States a run never leaves (unless someone retries it).
pub fn is_finished(state: &str) -> bool {
    matches!(
        state,
        "success" | "errored" | "cancelled" | "skipped" | "retired"
    )
}

/// The latest known version of each run of this `rota run`, in submit order.
#[derive(Debug)]
pub struct Tracker {
    order: Vec<String>,
    runs: HashMap<String, Run>,
    name_width: usize,
    number_width: usize,
}

impl Tracker {
    /// Starts from the runs the Submit answered with.
    pub fn new(runs: Vec<Run>) -> Self {
        let name_width = runs
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0);
        let number_width = runs
            .iter()
            .map(|r| r.number.to_string().len())
            .max()
            .unwrap_or(1);
        Self {
            order: runs.iter().map(|r| r.id.clone()).collect(),
            runs: runs.into_iter().map(|r| (r.id.clone(), r)).collect(),
            name_width,
            number_width,
        }
    }

    /// Records a newer version of a run. Returns it when its state changed, so the caller
    /// prints a line; runs of other `rota` invocations in the same jobset are ignored.
    pub fn update(&mut self, run: Run) -> Option<&Run> {
        let known = self.runs.get_mut(&run.id)?;
        let changed = known.state != run.state;
        *known = run;
        changed.then_some(&*known)
    }

    /// The ids, in submit order.
    pub fn ids(&self) -> Vec<String> {
        self.order.clone()
    }

    /// The runs, in submit order.
    pub fn runs(&self) -> Vec<&Run> {
        self.order.iter().map(|id| &self.runs[id]).collect()
    }

    /// Whether every run has reached a final state.
    pub fn all_finished(&self) -> bool {
        self.runs.values().all(|r| is_finished(&r.state))
    }

    /// Runs still pending, assigned or running, for Ctrl-C to cancel.
    pub fn unfinished_ids(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|id| !is_finished(&self.runs[*id].state))
            .cloned()
            .collect()
    }

    /// `running 3 · pending 9 · success 4 · errored 0`, plus the rarer final states when
    /// they occur. `assigned` counts as running: the agent has it.
    pub fn status_line(&self) -> String {
        let count = |states: &[&str]| {
            self.runs
                .values()
                .filter(|r| states.contains(&r.state.as_str()))
                .count()
        };
        let mut parts = vec![
            format!("running {}", count(&["running", "assigned"])),
            format!("pending {}", count(&["pending"])),
            format!("success {}", count(&["success"])),
            format!("errored {}", count(&["errored"])),
        ];
        for state in ["skipped", "cancelled", "retired"] {
            let n = count(&[state]);
            if n > 0 {
                parts.push(format!("{state} {n}"));
            }
        }
        parts.join(" · ")
    }

    /// One progress line for `run`'s new state, prefixed with `time` (`HH:MM:SS`).
    pub fn change_line(&self, time: &str, run: &Run) -> String {
        let mut line = format!(
            "{time}  #{:<nw$}  {:<w$}  {:<9}",
            run.number,
            run.name,
            run.state,
            nw = self.number_width,
            w = self.name_width
        );
        let detail = change_detail(run);
        if !detail.is_empty() {
            line.push_str("  ");
            line.push_str(&detail);
        }
        rota_cli::output::one_line(line.trim_end())
    }
}

/// What is worth knowing about a run in its new state: why it waits, where it runs, how it
/// ended.
fn change_detail(run: &Run) -> String {
    let mut parts: Vec<String> = Vec::new();
    match run.state.as_str() {
        "pending" => {
            if run.attempt > 1 {
                parts.push(format!("attempt {}", run.attempt));
            }
            parts.push(run.waiting_reason.clone());
        }
        "assigned" | "running" => {
            parts.push(run.agent.clone());
            if !run.concurrency_group.is_empty() {
                parts.push(format!("group {}", run.concurrency_group));
            }
            if run.attempt > 1 {
                parts.push(format!("attempt {}", run.attempt));
            }
        }
        _ => {
            parts.push(run.agent.clone());
            if let Some(ms) = span_ms(run.started_at_ms, run.finished_at_ms) {
                parts.push(human_duration(Duration::from_millis(ms)));
            }
            match (run.exit_code, run.signal) {
                (Some(_), _) => parts.push(format!("exit {}", exit_text(run.exit_code, None))),
                (None, Some(_)) => parts.push(format!("signal {}", run.signal.unwrap_or(0))),
                (None, None) => {}
            }
            if run.state != "success" {
                let why = if run.error.is_empty() {
                    &run.waiting_reason
                } else {
                    &run.error
                };
                parts.push(why.clone());
            }
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join("  ")
}

/// Writes progress lines to stdout; on a terminal, keeps the status line under them, redrawn
/// in place (`\r` + clear line), so the scrollback holds only the change lines.
#[derive(Debug)]
pub struct Display {
    status: bool,
}

impl Display {
    /// `status`: draw the status line (stdout is a terminal and output is a table).
    pub fn new(status: bool) -> Self {
        Self { status }
    }

    /// Prints a change line, then redraws the status line under it.
    pub fn line(&mut self, line: &str, status: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.status {
            write!(out, "\r\x1b[2K{line}\n{status}")?;
        } else {
            writeln!(out, "{line}")?;
        }
        out.flush()
    }

    /// Redraws only the status line.
    pub fn status(&mut self, status: &str) -> io::Result<()> {
        if !self.status {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        write!(out, "\r\x1b[2K{status}")?;
        out.flush()
    }

    /// Removes the status line before the summary is printed.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.status {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        write!(out, "\r\x1b[2K")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, number: u64, name: &str, state: &str) -> Run {
        Run {
            id: id.into(),
            number,
            name: name.into(),
            state: state.into(),
            ..Default::default()
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(vec![
            run("a", 9, "dump-db1", "pending"),
            run("b", 10, "compress-db1", "pending"),
        ])
    }

    #[test]
    fn only_state_changes_of_our_runs_are_reported() {
        let mut t = tracker();
        assert!(t.update(run("a", 9, "dump-db1", "pending")).is_none());
        assert!(t.update(run("zz", 1, "other", "running")).is_none());
        let changed = t
            .update(run("a", 9, "dump-db1", "running"))
            .map(|r| r.state.clone());
        assert_eq!(changed.as_deref(), Some("running"));
        assert!(!t.all_finished());
        assert_eq!(t.unfinished_ids(), ["a", "b"]);
    }

    #[test]
    fn all_finished_once_every_run_is_final() {
        let mut t = tracker();
        t.update(run("a", 9, "dump-db1", "success"));
        t.update(run("b", 10, "compress-db1", "skipped"));
        assert!(t.all_finished());
        assert!(t.unfinished_ids().is_empty());
        t.update(run("b", 10, "compress-db1", "pending"));
        assert!(!t.all_finished(), "a retried run is unfinished again");
    }

    #[test]
    fn status_line_counts_assigned_as_running_and_shows_rare_states_only_when_present() {
        let mut t = Tracker::new(vec![
            run("a", 1, "a", "assigned"),
            run("b", 2, "b", "running"),
            run("c", 3, "c", "pending"),
            run("d", 4, "d", "success"),
        ]);
        assert_eq!(
            t.status_line(),
            "running 2 · pending 1 · success 1 · errored 0"
        );
        t.update(run("c", 3, "c", "skipped"));
        assert_eq!(
            t.status_line(),
            "running 2 · pending 0 · success 1 · errored 0 · skipped 1"
        );
    }

    #[test]
    fn change_lines_align_and_say_where_and_how_a_run_ended() {
        let t = tracker();
        let mut r = run("b", 10, "compress-db1", "running");
        r.agent = "local".into();
        r.concurrency_group = "db".into();
        assert_eq!(
            t.change_line("12:00:01", &r),
            "12:00:01  #10  compress-db1  running    local  group db"
        );

        let mut r = run("a", 9, "dump-db1", "errored");
        r.agent = "local".into();
        r.started_at_ms = 1_000;
        r.finished_at_ms = 3_500;
        r.exit_code = Some(2);
        r.error = "exit status 2".into();
        assert_eq!(
            t.change_line("12:00:04", &r),
            "12:00:04  #9   dump-db1      errored    local  2.5s  exit 2  exit status 2"
        );

        let mut r = run("a", 9, "dump-db1", "success");
        r.agent = "local".into();
        r.started_at_ms = 1_000;
        r.finished_at_ms = 1_400;
        r.exit_code = Some(0);
        assert_eq!(
            t.change_line("12:00:05", &r),
            "12:00:05  #9   dump-db1      success    local  0.4s  exit 0"
        );
    }

    #[test]
    fn pending_lines_say_why_and_which_attempt() {
        let t = tracker();
        let mut r = run("a", 9, "dump-db1", "pending");
        r.attempt = 2;
        r.waiting_reason = "retrying after agent lost".into();
        assert_eq!(
            t.change_line("t", &r),
            "t  #9   dump-db1      pending    attempt 2  retrying after agent lost"
        );
    }

    #[test]
    fn killed_and_skipped_runs_show_signal_and_reason() {
        let t = tracker();
        let mut r = run("a", 9, "dump-db1", "cancelled");
        r.signal = Some(15);
        r.error = "cancelled".into();
        assert_eq!(
            t.change_line("t", &r),
            "t  #9   dump-db1      cancelled  signal 15  cancelled"
        );
        let mut r = run("b", 10, "compress-db1", "skipped");
        r.waiting_reason = "dependency dump-db1 errored".into();
        assert_eq!(
            t.change_line("t", &r),
            "t  #10  compress-db1  skipped    dependency dump-db1 errored"
        );
    }
}
