//! `rota`, the command line of rota. Thin on purpose (docs/style.md rule 1): parse the flags, set up
//! tracing, run the command, print its error as one line, and turn the outcome into the exit
//! code (0 ok, 1 error or failed runs, 2 usage via clap, 130 interrupted).

mod args;
mod client;
mod commands;
mod output;
mod reconnect;

use std::io;
use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    rota_proto::logging::init_tracing(cli.verbose);
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
