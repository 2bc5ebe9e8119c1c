//! The one tracing setup of `rota-coordinator`, `rota-agent` and `rota`, so `-v` means the
//! same in all three and their logs look alike.
//!
//! Level by count of `-v`: none warn, `-v` info, `-vv` debug, `-vvv` (or more) trace.
//! `RUST_LOG` (an `EnvFilter` directive such as `rota_coordinator=debug`) overrides it. Logs go
//! to stderr so they never mix with a command's output. ANSI colour only when stderr is a
//! terminal and `NO_COLOR` is unset (<https://no-color.org>): a journal, a pipe or a log file
//! gets plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The default level for `verbose` counted `-v` flags.
pub fn level(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Whether to colour stderr: a terminal, and `NO_COLOR` unset or empty (as no-color.org says).
pub fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init_tracing(verbose: u8) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level(verbose)));
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn each_v_raises_one_level() {
        assert_eq!(
            (0..=4).map(level).collect::<Vec<_>>(),
            ["warn", "info", "debug", "trace", "trace"]
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }
}
