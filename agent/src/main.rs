//! `rota-agent`: parses flags, sets up tracing, turns SIGTERM/SIGINT into a drain and calls
//! [`rota_agent::run`]. All behaviour lives in the library.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use rota_proto::signals::StopSignals;

/// Runs the commands a rota coordinator assigns to this machine.
#[derive(Debug, Parser)]
#[command(name = "rota-agent", version, about)]
struct Flags {
    /// Coordinator URL; several, comma-separated, for coordinators on one PostgreSQL store
    /// (the agent uses the active one and moves on by itself when it stops answering).
    #[arg(
        long,
        env = "ROTA_COORDINATOR",
        default_value = "http://127.0.0.1:7878"
    )]
    coordinator: String,
    /// Agent name [default: the hostname].
    #[arg(long)]
    name: Option<String>,
    /// A concurrency group this agent serves (repeatable).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// Runs at once [default: the number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    slots: Option<u32>,
    /// A label shown by `rota agents` (repeatable).
    #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Where output is spooled [default: $XDG_STATE_HOME/rota-agent/NAME, else $TMPDIR or /tmp: rota-agent-NAME].
    #[arg(long)]
    spool_dir: Option<PathBuf>,
    /// Where each run gets its own empty directory (RUN_DIR, under runs/) and each job a
    /// lasting one (JOB_DIR, under jobs/) [default: SPOOL_DIR/work; with --run-as
    /// SPOOL_DIR-work, as the spool is closed to that user].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// How long a run's RUN_DIR is kept after the run ended: 0, 90s, 10m, 1h.
    #[arg(long, default_value = "1h", value_parser = rota_proto::duration::parse_duration)]
    keep_run_dirs: Duration,
    /// How long a drain (SIGTERM) waits for running runs before cancelling them: 90, 90s, 10m, 1h.
    #[arg(long, default_value = "10m", value_parser = rota_proto::duration::parse_duration)]
    drain_timeout: Duration,
    /// The coordinator's token, as the first line of this file [default: ROTA_TOKEN]. Runs
    /// of the agent's own user can read this file: use --run-as, or ROTA_TOKEN.
    #[arg(long, env = "ROTA_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Start runs as this user (its uid, gid and groups; HOME, USER and LOGNAME set to
    /// match), so they cannot read the token file or the agent's memory. Needs root.
    #[arg(long, env = "ROTA_RUN_AS", value_name = "USER")]
    run_as: Option<String>,
    /// Also trust this CA certificate (PEM) for an https:// coordinator.
    #[arg(long, env = "ROTA_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// More logging: -v info, -vv debug, -vvv trace (default warn); RUST_LOG overrides.
    #[arg(short, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line, causes joined: what is wrong and with which file or address.
            eprintln!("rota-agent: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    // Before anything else, so a run of this user can neither read our environment (the
    // token) through /proc/PID/environ nor our memory through /proc/PID/mem or ptrace, and no
    // core dump holds the token. Runs are not affected: exec makes a process dumpable again.
    // The watchdog, a fork of this process, inherits it.
    nix::sys::prctl::set_dumpable(false)
        .context("cannot make the agent undumpable (prctl PR_SET_DUMPABLE)")?;
    let flags = rota_proto::flags::parse_or_exit::<Flags>("rota-agent");
    rota_proto::logging::init_tracing(flags.verbose);
    let run_as = flags
        .run_as
        .as_deref()
        .map(rota_agent::run_as::RunAs::lookup)
        .transpose()?
        .map(std::sync::Arc::new);
    if run_as.is_none() && nix::unistd::geteuid().is_root() {
        tracing::warn!("runs start as root, like the agent: they can read its token and memory; use --run-as USER");
    } else if run_as.is_none() && flags.token_file.is_some() {
        tracing::warn!("runs start as the agent's own user and can read --token-file: use --run-as USER (or ROTA_TOKEN)");
    }
    let name = match flags.name {
        Some(name) => name,
        None => hostname::get()
            .context("cannot read the hostname; pass --name")?
            .to_string_lossy()
            .into_owned(),
    };
    let slots = flags.slots.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
    });
    let spool_dir = flags.spool_dir.unwrap_or_else(|| default_spool_dir(&name));
    let work_dir = flags
        .work_dir
        .unwrap_or_else(|| rota_agent::workdir::default_for(&spool_dir, run_as.is_some()));
    let config = rota_agent::AgentConfig {
        coordinator: flags.coordinator,
        name,
        groups: flags.groups,
        slots,
        labels: flags.labels.into_iter().collect::<BTreeMap<_, _>>(),
        spool_dir,
        work_dir,
        keep_run_dirs: flags.keep_run_dirs,
        drain_timeout: flags.drain_timeout,
        access: rota_proto::access::Access::load(flags.token_file.as_deref(), flags.ca.as_deref())
            .map_err(anyhow::Error::msg)?,
        run_as,
    };
    let shutdown = shutdown_signal().context("cannot install signal handlers")?;
    rota_agent::run(config, shutdown).await
}

/// Resolves at the first SIGTERM or SIGINT (the agent then drains). A second one means the
/// operator does not want to wait: exit at once (runs die with us through PDEATHSIG).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut stop = StopSignals::install()?;
    Ok(async move {
        stop.next().await;
        tokio::spawn(async move {
            stop.next().await;
            tracing::warn!("second signal: exiting without waiting for the drain");
            std::process::exit(130);
        });
    })
}

fn default_spool_dir(name: &str) -> PathBuf {
    match std::env::var_os("XDG_STATE_HOME").filter(|dir| !dir.is_empty()) {
        Some(state) => PathBuf::from(state).join("rota-agent").join(name),
        None => std::env::temp_dir().join(format!("rota-agent-{name}")),
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected K=V, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_label("zone=eu=1"),
            Ok(("zone".to_owned(), "eu=1".to_owned()))
        );
        assert!(parse_label("novalue").is_err());
        assert!(parse_label("=v").is_err());
    }

    #[test]
    fn flags_parse_repeatable_groups_and_labels() {
        let flags = Flags::try_parse_from([
            "rota-agent",
            "--group",
            "db",
            "--group",
            "gpu",
            "--label",
            "zone=eu",
            "--drain-timeout",
            "30s",
            "-vv",
        ])
        .unwrap();
        assert_eq!(flags.groups, ["db", "gpu"]);
        assert_eq!(flags.labels, [("zone".to_owned(), "eu".to_owned())]);
        assert_eq!(flags.drain_timeout, Duration::from_secs(30));
        assert_eq!(flags.verbose, 2);
    }
}
