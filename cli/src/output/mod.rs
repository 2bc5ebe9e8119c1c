//! What commands print: aligned tables for people, pretty JSON for programs. prost messages
//! have no serde, so JSON goes through the view structs in [`views`]; tables are built in
//! [`render`]. Both are pure functions of proto messages, so they are tested without a
//! coordinator.

pub mod notify;
pub mod render;
pub mod views;

use std::io::{self, Write};
use std::time::Duration;

use chrono::{DateTime, Local, SecondsFormat, Utc};
use serde::Serialize;

/// `-o table|json|id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for a terminal.
    Table,
    /// Pretty JSON with stable field names; times as unix ms and RFC 3339.
    Json,
    /// Only the key of each object, one per line, for scripts: run numbers, or the names of
    /// jobs, agents, groups and jobsets.
    Id,
}

/// What `-o id` prints of an output: the keys of the objects it holds, in order.
pub trait Ids {
    fn ids(&self) -> Vec<String>;
}

impl<T: Ids> Ids for Vec<T> {
    fn ids(&self) -> Vec<String> {
        self.iter().flat_map(Ids::ids).collect()
    }
}

/// The `-o id` text: one key per line, nothing at all for no objects.
pub fn id_lines(value: &impl Ids) -> String {
    value.ids().into_iter().map(|id| id + "\n").collect()
}

/// Prints `json` as pretty JSON, its keys, or the text `table` builds, whichever was asked
/// for; the table closure is only run when needed. The one place that decides the format.
pub fn emit<T: Serialize + Ids>(
    format: OutputFormat,
    json: &T,
    table: impl FnOnce() -> String,
) -> io::Result<()> {
    let mut text = match format {
        OutputFormat::Json => to_json(json),
        OutputFormat::Table => table(),
        OutputFormat::Id => id_lines(json),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    print(&text)
}

/// Writes to stdout and flushes. Unlike `print!` it returns the error instead of panicking,
/// so a closed pipe (`rota runs | head`) ends the command quietly.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Pretty JSON. Serializing the plain view structs cannot fail.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("view structs always serialize")
}

/// A table with a header row; columns are padded to their widest cell and separated by two
/// spaces, the last column is not padded (no trailing blanks).
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names (upper case, like `kubectl` and `pueue`).
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; control characters (a newline in a waiting reason) become spaces so a
    /// row stays one line.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows
            .push(cells.into_iter().map(|c| one_line(&c)).collect());
    }

    /// The table as text, one line per row, each ending in `\n`.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Replaces control characters with spaces.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Unix milliseconds as RFC 3339 in UTC; `None` for 0, which the proto uses for "not yet".
pub fn rfc3339(ms: u64) -> Option<String> {
    if ms == 0 {
        return None;
    }
    DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).ok()?)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Unix milliseconds as local wall-clock time for tables; `-` for 0.
pub fn local_time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .filter(|&ms| ms > 0)
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".to_string())
}

/// Durations the way people read them: `0.4s`, `7.4s`, `2m03s`, `1h02m`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// Byte counts the way people read them: `512 B`, `4.0 KiB`, `12.3 MiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `finished - started` when both are known.
pub fn span_ms(started_ms: u64, finished_ms: u64) -> Option<u64> {
    (started_ms > 0 && finished_ms >= started_ms).then(|| finished_ms - started_ms)
}

/// The first 8 characters of a UUID: unique enough to read in a table.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// An argv as a person would type it: words with blanks or quotes get single quotes.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_blanks() {
        let mut t = Table::new(&["NAME", "STATE", "EXIT"]);
        t.row(vec!["dump-db1".into(), "success".into(), "0".into()]);
        t.row(vec!["x".into(), "errored".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NAME      STATE    EXIT\n\
             dump-db1  success  0\n\
             x         errored\n"
        );
    }

    struct Keys(Vec<&'static str>);
    impl Ids for Keys {
        fn ids(&self) -> Vec<String> {
            self.0.iter().map(|k| k.to_string()).collect()
        }
    }

    #[test]
    fn id_output_is_one_key_per_line_and_nothing_for_none() {
        assert_eq!(
            id_lines(&vec![Keys(vec!["12"]), Keys(vec!["13", "14"])]),
            "12\n13\n14\n"
        );
        assert_eq!(id_lines(&Vec::<Keys>::new()), "");
    }

    #[test]
    fn table_cells_stay_on_one_line() {
        let mut t = Table::new(&["A"]);
        t.row(vec!["two\nlines".into()]);
        assert_eq!(t.render(), "A\ntwo lines\n");
    }

    #[test]
    fn zero_times_are_absent() {
        assert_eq!(rfc3339(0), None);
        assert_eq!(
            rfc3339(1_700_000_000_123).as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(local_time(0), "-");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(human_duration(Duration::from_millis(7_440)), "7.4s");
        assert_eq!(human_duration(Duration::from_secs(123)), "2m03s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(span_ms(1000, 2500), Some(1500));
        assert_eq!(span_ms(0, 2500), None);
        assert_eq!(span_ms(1000, 0), None);
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(12_897_485), "12.3 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn argv_is_quoted_only_where_needed() {
        let argv: Vec<String> = ["sh", "-c", "echo 'hi' there", ""]
            .map(String::from)
            .to_vec();
        assert_eq!(shell_join(&argv), r#"sh -c 'echo '\''hi'\'' there' ''"#);
    }

    #[test]
    fn short_ids_tolerate_short_input() {
        assert_eq!(short_id("0123456789abcdef"), "01234567");
        assert_eq!(short_id("42"), "42");
    }
}
