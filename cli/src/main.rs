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
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            return rota_cli::exit_code(Err(
                anyhow::Error::new(e).context("cannot start the async runtime")
            ))
        }
    };
    let asked = cli.coordinator_url();
    let result = runtime.block_on(commands::dispatch(cli));
    // A standby refused the command before doing anything and named the active coordinator:
    // run it there, once.
    if let Some(active) = result
        .as_ref()
        .err()
        .and_then(|e| rota_cli::client::standby_redirect(e, &asked))
    {
        eprintln!("rota: {asked} is a standby; asking the active coordinator at {active}");
        let mut cli = args::Cli::parse();
        cli.coordinator = Some(active);
        return rota_cli::exit_code(runtime.block_on(commands::dispatch(cli)));
    }
    rota_cli::exit_code(result)
}
