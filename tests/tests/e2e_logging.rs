//! The real coordinator's log colours: ANSI escapes only when stderr is a terminal and
//! `NO_COLOR` is unset, so a journal, a pipe or a log file gets plain text. A pseudo-terminal
//! (openpty) stands in for the operator's terminal and shows the check can see colour at all.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rota_tests::bins;

const ESC: &str = "\x1b[";

/// Starts the coordinator (one shared token, so it logs a warning at the default level)
/// with stderr on `stderr`, stops it with SIGTERM once it listens, and returns its exit code.
fn run_coordinator(stderr: Stdio, no_color: Option<&str>) -> Option<i32> {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bins!().coordinator);
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("ROTA_TOKEN", "t0ken-for-tests")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let mut child = cmd.spawn().expect("start rota-coordinator");
    // The listen line comes after the start-up warnings: once it is read, they are written.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read listen line");
    assert!(
        line.contains("127.0.0.1:"),
        "unexpected first line {line:?}"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().expect("wait").code()
}

/// What the coordinator wrote to a pipe.
fn log_to_pipe(no_color: Option<&str>) -> String {
    let (reader, writer) = std::io::pipe().unwrap();
    let code = run_coordinator(writer.into(), no_color);
    let mut text = String::new();
    BufReader::new(reader).read_to_string(&mut text).unwrap();
    assert_eq!(code, Some(0), "coordinator failed: {text}");
    text
}

/// What the coordinator wrote to a pseudo-terminal.
fn log_to_terminal(no_color: Option<&str>) -> String {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let code = run_coordinator(pty.slave.into(), no_color);
    // Every slave end is closed now (ours moved into the child's Stdio, dropped at spawn;
    // the child exited), so the master reads what is buffered and then fails with EIO.
    let mut master = std::fs::File::from(pty.master);
    let mut bytes = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => panic!("read pty: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert_eq!(code, Some(0), "coordinator failed: {text}");
    text
}

fn assert_logged_plain(text: &str) {
    assert!(
        text.contains("one shared token"),
        "the warning was not logged: {text:?}"
    );
    assert!(!text.contains(ESC), "ANSI escapes in the log: {text:?}");
}

#[test]
fn a_pipe_gets_no_colour() {
    assert_logged_plain(&log_to_pipe(None));
}

#[test]
fn a_pipe_with_no_color_gets_no_colour() {
    assert_logged_plain(&log_to_pipe(Some("1")));
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let coloured = log_to_terminal(None);
    assert!(
        coloured.contains("one shared token"),
        "the warning was not logged: {coloured:?}"
    );
    assert!(
        coloured.contains(ESC),
        "no colour on a terminal: {coloured:?}"
    );
    assert_logged_plain(&log_to_terminal(Some("1")));
}
