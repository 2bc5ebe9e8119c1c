//! `rota`, the command line of rota. Thin on purpose (docs/style.md rule 1): parse the flags, set up
//! tracing, run the command, print its error as one line, and turn the outcome into the exit
//! code (0 ok, 1 error or failed runs, 2 usage via clap, 130 interrupted).

mod args;
mod client;
mod commands;
mod output;
mod reconnect;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_tracing(cli.verbose);
    match commands::dispatch(cli).await {
        Ok(code) => code,
        // `rota runs | head`: the reader left; that is not an error worth a message.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rota: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr so they never mix with output; `-v` picks the default level (warn, info,
/// debug, trace), `RUST_LOG` overrides it. The embedded coordinator and agent of `rota run`
/// log through the same subscriber, quiet unless asked.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(colour(&io::stderr()))
        .init();
}

/// Colour only for a person at a terminal, and never when NO_COLOR is set to anything
/// (<https://no-color.org>): escape codes in a log file or a pipe are noise. (clap's own help
/// and errors already follow the same rule.)
fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
