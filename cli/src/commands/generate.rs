//! `rota completions SHELL` and `rota man`: text generated from the clap definition in
//! `args.rs`, so completions and the man page always list exactly the flags the binary takes.

use clap::CommandFactory;

use crate::args::Cli;
use crate::output;

/// Prints the completion script of `shell` (clap_complete).
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rota", &mut script);
    output::print(&String::from_utf8(script)?)?;
    Ok(())
}

/// Prints the rota(1) man page as roff (clap_mangen).
pub fn man() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    output::print(&String::from_utf8(page)?)?;
    Ok(())
}
