//! `rota-local`, the companion of the thin `rota`: the commands that need the coordinator's
//! own libraries on this side (`run`, which may start a coordinator and an agent in this
//! process, and `apply`, which reads a config and its `config_d` the coordinator's way) are
//! served by a second binary, so that every other call starts without loading them. `rota`
//! replaces itself with it (exec: same pid, arguments, terminal and signals, its exit code),
//! found beside `rota` under `rota`'s own name plus `-local`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::args::Command;

/// Suffix of the companion's file name after this binary's (`rota` → `rota-local`).
pub const SUFFIX: &str = "-local";

/// Whether `command` is one the companion serves.
pub fn serves(command: &Command) -> bool {
    matches!(command, Command::Run(_) | Command::Apply(_))
}

/// Where the companion of the running binary is.
pub fn path() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    let mut name: OsString = exe.file_name().map(Into::into).unwrap_or_default();
    name.push(SUFFIX);
    Ok(exe.with_file_name(name))
}

/// Replaces this process with the companion, given this process's own arguments. Returns
/// only if it could not be started: why, and what to do.
pub fn exec() -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    let path = path()?;
    let error = std::process::Command::new(&path)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(anyhow::anyhow!(
        "this command is served by rota-local, which could not be started from {}: {error} \
         (build it with `cargo build -p rota-local`, or install it beside rota)",
        path.display()
    ))
}
