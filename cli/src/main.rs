//! `rota`, the command line of rota. Thin on purpose (docs/style.md rule 1): parse the flags, set up
//! tracing, run the command, print its error as one line, and turn the outcome into the exit
//! code (0 ok, 1 error or failed runs, 2 usage via clap, 130 interrupted).
//!
//! One call is one short-lived process, so what it costs before and after its one RPC matters
//! (issue 14): no coordinator code linked (`run` and `apply` go to `rota-local`), and a
//! current-thread runtime — one call needs no worker threads to start, park and join.

use std::process::ExitCode;

use clap::Parser;
use rota_cli::{args, commands, companion};

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    if companion::serves(&cli.command) {
        // Only returns when it could not be started.
        return rota_cli::exit_code(companion::exec());
    }
    rota_proto::logging::init_tracing(cli.verbose);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    rota_cli::exit_code(match runtime {
        Ok(runtime) => runtime.block_on(commands::dispatch(cli)),
        Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
    })
}
