//! `rota-local`: `rota run` and `rota apply`, which the thin `rota` executes this binary for;
//! any other rota command works here too. Takes exactly `rota`'s flags. A multi-thread runtime:
//! `rota run` may host a coordinator and an agent with its runs.

use std::process::ExitCode;

use clap::Parser;
use rota_cli::args::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    rota_proto::logging::init_tracing(cli.verbose);
    rota_cli::exit_code(rota_local::dispatch(cli).await)
}
