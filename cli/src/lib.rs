//! The `rota` command line as a library: flags, the client, output and every command that
//! only talks to a coordinator. The thin `rota` binary (`main.rs`) is this and nothing more: it
//! links no coordinator or agent code, so a call starts near the process-spawn floor. The
//! commands that need the coordinator's libraries on this side (`run`, which can start a
//! coordinator and an agent in-process, and `apply`, which reads config files the coordinator's
//! way) live in `rota-local` (cli/local/), which `rota` executes for them ([`companion`]).

pub mod args;
pub mod client;
pub mod commands;
pub mod companion;
pub mod output;
pub mod reconnect;

use std::io;
use std::process::ExitCode;

/// The exit code of a finished command, after printing its error as one line (docs/style.md
/// rule 5); shared by `rota` and `rota-local` so both end alike.
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
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
