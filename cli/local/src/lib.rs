//! `rota-local`: rota's command line plus what the thin `rota` leaves out, the commands that
//! need the coordinator's own libraries on this side. `rota run FILE` parses the file as the
//! coordinator does and, without `--coordinator`, runs a coordinator and an agent in this
//! process ([`cluster`], the one place they are wired together, also used by the tests);
//! `rota apply` reads a config and its `config_d` files the coordinator's way. `rota` executes
//! this binary for them (`rota_cli::companion`); every other command is `rota_cli`'s own.

mod apply;
pub mod cluster;
mod run;

use std::process::ExitCode;

use rota_cli::args::{Cli, Command};
use rota_cli::commands::{self, Context};

/// Runs the parsed command: `run` and `apply` here, anything else as `rota` would.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if !rota_cli::companion::serves(&cli.command) {
        return commands::dispatch(cli).await;
    }
    let ctx = Context::from_cli(&cli)?;
    match cli.command {
        Command::Run(args) => run::run(&ctx, args).await,
        Command::Apply(args) => {
            apply::apply(&ctx, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        _ => unreachable!("companion::serves names only run and apply"),
    }
}
