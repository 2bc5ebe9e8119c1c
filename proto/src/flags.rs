//! Flag parsing for the daemons (`rota-coordinator`, `rota-agent`): a usage error is one line
//! naming the program and the problem, then exit 2, so a unit's journal or a pod's log shows
//! the mistake without clap's multi-line usage block. `--help` and `--version` print as usual.
//! (The `rota` CLI keeps clap's full errors: a person at a prompt reads those.)

/// Parses the process's arguments into `T`, or prints `PROGRAM: problem` and exits 2.
pub fn parse_or_exit<T: clap::Parser>(program: &str) -> T {
    T::try_parse().unwrap_or_else(|err| {
        if !err.use_stderr() {
            err.exit();
        }
        eprintln!("{program}: {}", one_line(&err.to_string()));
        std::process::exit(2);
    })
}

/// The first line of a clap error, without its `error: ` prefix.
fn one_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clap_error_becomes_its_first_line_without_the_prefix() {
        assert_eq!(
            one_line("error: unexpected argument '--x' found\n\nUsage: rota-agent"),
            "unexpected argument '--x' found"
        );
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(one_line(""), "");
    }
}
