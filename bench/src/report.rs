//! The one table and the JSON file: each row a figure of rota, its baseline where there is one,
//! the ratio, the target and whether it was met.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// What a figure must reach (issue 5's table).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    /// rota / baseline must be at least this.
    RatioAtLeast(f64),
    AtLeast(f64),
    AtMost(f64),
    /// A yes/no figure (1 = yes) that must be yes.
    Yes,
    /// Shown for context; no target.
    None,
    /// rota / baseline must be at most this (a time against a floor).
    RatioAtMost(f64),
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub rota: Option<f64>,
    pub baseline: Option<f64>,
    pub ratio: Option<f64>,
    pub target: Target,
    /// None when there is no target or the figure could not be measured.
    pub pass: Option<bool>,
    /// Set when the workload could not run; the row then carries no figures.
    pub error: Option<String>,
    pub note: String,
}

impl Row {
    /// A measured figure; `baseline` gives the ratio.
    pub fn new(workload: &str, metric: &str, unit: &str, rota: f64, target: Target) -> Row {
        Row {
            workload: workload.into(),
            metric: metric.into(),
            unit: unit.into(),
            rota: Some(rota),
            baseline: None,
            ratio: None,
            target,
            pass: None,
            error: None,
            note: String::new(),
        }
        .judged()
    }

    /// A yes/no figure.
    pub fn flag(workload: &str, metric: &str, yes: bool) -> Row {
        Row::new(
            workload,
            metric,
            "",
            if yes { 1.0 } else { 0.0 },
            Target::Yes,
        )
    }

    /// A workload that could not run, with the reason.
    pub fn failed(workload: &str, error: String) -> Row {
        Row {
            workload: workload.into(),
            metric: "-".into(),
            unit: String::new(),
            rota: None,
            baseline: None,
            ratio: None,
            target: Target::None,
            pass: None,
            error: Some(error),
            note: String::new(),
        }
    }

    pub fn baseline(mut self, baseline: f64) -> Row {
        self.baseline = Some(baseline);
        self.ratio = self.rota.map(|r| r / baseline);
        self.judged()
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    fn judged(mut self) -> Row {
        self.pass = match (self.target, self.rota, self.ratio) {
            (Target::RatioAtLeast(t), _, Some(ratio)) => Some(ratio >= t),
            (Target::RatioAtMost(t), _, Some(ratio)) => Some(ratio <= t),
            (Target::AtLeast(t), Some(v), _) => Some(v >= t),
            (Target::AtMost(t), Some(v), _) => Some(v <= t),
            (Target::Yes, Some(v), _) => Some(v == 1.0),
            _ => None,
        };
        self
    }

    fn value(&self, v: Option<f64>) -> String {
        match (v, self.target) {
            (None, _) => "-".into(),
            (Some(v), Target::Yes) => if v == 1.0 { "yes" } else { "no" }.into(),
            (Some(v), _) => format!("{} {}", number(v), self.unit).trim().to_string(),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::RatioAtLeast(t) => format!(">= {}x baseline", number(t)),
            Target::RatioAtMost(t) => format!("<= {}x baseline", number(t)),
            Target::AtLeast(t) => format!(">= {} {}", number(t), self.unit),
            Target::AtMost(t) => format!("<= {} {}", number(t), self.unit),
            Target::Yes => "yes".into(),
            Target::None => "-".into(),
        }
    }

    fn result_text(&self) -> String {
        match (&self.error, self.pass) {
            (Some(_), _) => "NOT RUN".into(),
            (None, Some(true)) => "pass".into(),
            (None, Some(false)) => "FAIL".into(),
            (None, None) => "info".into(),
        }
    }
}

/// The nearest-rank percentile of sorted values (0 when there are none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Three significant digits or so, without noise.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The table as text: aligned columns, then the errors and notes below it.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "workload", "metric", "rota", "baseline", "ratio", "target", "result",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.workload.clone(),
                r.metric.clone(),
                r.value(r.rota),
                r.baseline.map_or("-".into(), |_| r.value(r.baseline)),
                r.ratio.map_or("-".into(), |x| format!("{}x", number(x))),
                r.target_text(),
                r.result_text(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        let text: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", text.join(" | "));
    };
    line(&mut out, &header.map(String::from));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(&mut out, row);
    }
    for r in rows {
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{}: could not run: {e}", r.workload);
        }
        if !r.note.is_empty() {
            let _ = writeln!(out, "{} {}: {}", r.workload, r.metric, r.note);
        }
    }
    out
}

/// Everything `bench-results.json` holds.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub started_at_unix: u64,
    pub quick: bool,
    pub rows: Vec<Row>,
    /// Per workload: raw figures behind the rows (percentiles, timelines, load average).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(())
    }
}

/// Where the figures came from.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub kernel: String,
    pub load_average_at_start: Option<f64>,
    pub build: &'static str,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split(':').nth(1))
                .unwrap_or("unknown")
                .trim()
                .to_string(),
            memory_mib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            load_average_at_start: crate::procfs::load_average(),
            build: if cfg!(debug_assertions) {
                "debug (figures are not representative: use --release)"
            } else {
                "release"
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn a_ratio_target_is_judged_against_the_baseline() {
        let row = Row::new("W1", "runs/s", "runs/s", 900.0, Target::RatioAtLeast(0.5));
        assert_eq!(row.pass, None, "no baseline yet");
        assert_eq!(row.clone().baseline(1600.0).pass, Some(true));
        assert_eq!(row.baseline(2000.0).pass, Some(false));
    }

    #[test]
    fn absolute_targets_pass_at_their_bound() {
        assert_eq!(
            Row::new("W2", "p99", "ms", 5.0, Target::AtMost(5.0)).pass,
            Some(true)
        );
        assert_eq!(
            Row::new("W4", "submits/s", "/s", 19_999.0, Target::AtLeast(20_000.0)).pass,
            Some(false)
        );
        assert_eq!(Row::flag("W3", "byte-exact", false).pass, Some(false));
    }

    #[test]
    fn the_table_shows_every_row_and_says_what_could_not_run() {
        let rows = vec![
            Row::new("W1", "runs/s", "runs/s", 900.0, Target::RatioAtLeast(0.5)).baseline(1650.0),
            Row::failed("W6 fan-in", "too many open files".into()),
        ];
        let text = table(&rows);
        assert!(text.contains("| W1 "));
        assert!(text.contains("0.545x"));
        assert!(text.contains("pass"));
        assert!(text.contains("NOT RUN"));
        assert!(text.contains("W6 fan-in: could not run: too many open files"));
    }
}
