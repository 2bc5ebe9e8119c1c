//! `rota-coordinator`: flags, tracing, signals; the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rota_proto::access::{Access, Credentials, TOKEN_ENV};
use rota_proto::duration::parse_duration;
use rota_proto::signals::StopSignals;

/// The rota coordinator: holds the queue, the jobsets and the groups; agents and the CLI
/// connect to it over gRPC.
#[derive(Debug, Parser)]
#[command(name = "rota-coordinator", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:7878", env = "ROTA_LISTEN")]
    listen: SocketAddr,
    /// Directory of the SQLite store and the logs.
    #[arg(long, default_value = "rota-data", env = "ROTA_DATA_DIR")]
    data_dir: PathBuf,
    /// Keep runs, jobsets, groups and definitions in this PostgreSQL database instead of
    /// SQLite in --data-dir (which still holds the logs): postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    #[arg(long, env = "ROTA_STORE", value_name = "URL")]
    store: Option<String>,
    /// Job definitions to apply at start (with the files of its `config_d`); SIGHUP re-reads
    /// and applies them, as `rota apply` does.
    #[arg(long)]
    config: Option<PathBuf>,
    /// How long an agent may be silent before it is lost: seconds, or 90s, 5m, 500ms.
    #[arg(long, default_value = "15", value_name = "DUR", value_parser = parse_duration)]
    lease: Duration,
    /// Time between agent heartbeats; shorter than --lease.
    #[arg(long, default_value = "5", value_name = "DUR", value_parser = parse_duration)]
    heartbeat: Duration,
    /// The first retry back-off (doubling per attempt).
    #[arg(long, default_value = "1", value_name = "DUR", value_parser = parse_duration)]
    retry_backoff: Duration,
    /// Time between the SIGTERM and the SIGKILL of `rota cancel`, for runs whose job sets no
    /// `max_execution_grace`.
    #[arg(long, default_value = "10", value_name = "DUR", value_parser = parse_duration)]
    cancel_grace: Duration,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "ROTA_TLS_CERT", requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "ROTA_TLS_KEY", requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Require this one shared token (first line of the file) from agents and the CLI, allowed
    /// everything: the weakest set-up with a token. Without it the token is taken from
    /// ROTA_TOKEN; with neither (and no --credentials), anyone who reaches the port may submit.
    #[arg(long, env = "ROTA_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Tokens by role: a YAML list of {name, role: agent|read|admin, token_sha256 or
    /// token_file}. Agents' tokens may only connect, read tokens only look.
    #[arg(
        long,
        env = "ROTA_CREDENTIALS",
        value_name = "FILE",
        conflicts_with = "token_file"
    )]
    credentials: Option<PathBuf>,
    /// Start with an empty store although the data dir's logs/ holds runs: rota.db was lost
    /// and cannot be restored. Without it such a start is refused.
    #[arg(long)]
    fresh: bool,
    /// MiB of free space to keep on the data dir's filesystem: below it new submits are
    /// refused (RESOURCE_EXHAUSTED), below half of it log bytes are not stored (agents keep
    /// and resend them), so results, acknowledgements and cancels can still be recorded; work
    /// resumes by itself once space is freed.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    reserve_mib: u64,
    /// Bytes each stream of a run keeps at most: past it, the first and last halves are kept
    /// with a "[rota: N bytes cut]" marker between. A job's `max_log_bytes` overrides it.
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(2..))]
    max_log_bytes: u64,
    /// The coordinator's address as people reach it, for the links in webhook bodies
    /// (`URL/runs/N`) [default: http(s)://the listen address].
    #[arg(long, env = "ROTA_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// The first retry delay of a failed webhook POST; it doubles per try up to an hour, for
    /// up to a day.
    #[arg(long, default_value = "1", value_name = "DUR", value_parser = parse_duration)]
    notify_backoff: Duration,
    /// Delete finished runs this long after they finished (30d, 12h, ...). Default: never.
    /// The config file's `retention` wins over it, a job's over the file's.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    keep_max_age: Option<Duration>,
    /// Keep only the newest N finished runs of each job (of each jobset, for ad hoc runs).
    /// Default: all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    keep_last: Option<u64>,
    /// Keep errored runs at least this long after they finished, whatever --keep-max-age and
    /// --keep-last say.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    keep_failed_for: Option<Duration>,
    /// More logging: -v info, -vv debug, -vvv trace (default warn); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Copy a data dir (store and logs) into a new directory while its coordinator runs; start
    /// a coordinator with `--data-dir` on the copy to restore it.
    Backup {
        /// The data dir to back up.
        #[arg(long, env = "ROTA_DATA_DIR", value_name = "DIR")]
        data_dir: PathBuf,
        /// The new directory to write (it must not exist).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Copy a stopped coordinator's SQLite store into an empty PostgreSQL database, counting
    /// every table on both sides; then start it with `--data-dir DIR --store URL` (the logs
    /// stay in DIR).
    Migrate {
        /// The data dir whose store (rota.db) is copied; no coordinator may run on it.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL database to copy into: postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line, causes joined: what is wrong and with which file or address.
            eprintln!("rota-coordinator: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args = rota_proto::flags::parse_or_exit::<Args>("rota-coordinator");
    rota_proto::logging::init_tracing(args.verbose);
    if let Some(Sub::Migrate { from, to }) = &args.command {
        let copied = rota_coordinator::migrate::migrate(from, to)?;
        let total: Vec<String> = copied
            .rows
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        println!(
            "copied {} from {} and checked the counts, the logs of {} finished attempts ({} bytes) and {} artifact contents ({} bytes), checked against their checksums; start the coordinator with --store URL (and --data-dir {} on this machine, where logs of unfinished runs go on)",
            total.join(", "),
            from.display(),
            copied.log_attempts,
            copied.log_bytes,
            copied.artifacts,
            copied.artifact_bytes,
            from.display()
        );
        return Ok(());
    }
    if let Some(Sub::Backup { data_dir, to }) = &args.command {
        let done = rota_coordinator::backup::backup(data_dir, to)?;
        println!(
            "backed up {} runs and {} log files ({} bytes) into {}",
            done.runs,
            done.log_files,
            done.log_bytes,
            to.display()
        );
        return Ok(());
    }
    // A failed PostgreSQL batch starts this process over in place (see `restart`).
    rota_coordinator::restart::enable();
    let mut config = rota_coordinator::CoordinatorConfig::new(&args.data_dir);
    config.postgres = args.store.clone();
    config.config_file = args.config.clone();
    config.reload_on_sighup = true;
    config.lease = args.lease;
    config.heartbeat_interval = args.heartbeat;
    config.retry_backoff = args.retry_backoff;
    config.cancel_grace = args.cancel_grace;
    config.notify_backoff = args.notify_backoff;
    config.public_url = args.public_url.clone();
    config.check()?;
    config.credentials = credentials(&args)?;
    config.fresh = args.fresh;
    config.max_log_bytes = args.max_log_bytes;
    config.reserve_bytes = args.reserve_mib.saturating_mul(1 << 20);
    config.retention = rota_coordinator::retention::Policy {
        max_age: args.keep_max_age,
        keep_last: args.keep_last,
        keep_failed_for: args.keep_failed_for,
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let tls = rota_coordinator::TlsIdentity {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        };
        tls.check()
            .with_context(|| format!("{} / {}", cert.display(), key.display()))?;
        config.tls = Some(tls);
    }
    if config.credentials.is_open() && !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "no token: anyone who reaches this port can run commands on every agent (use --credentials, or at least ROTA_TOKEN)");
    } else if config.tls.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "tokens travel in clear text: serve TLS (--tls-cert, --tls-key) beyond a private network");
    }
    if config.credentials.is_shared() {
        tracing::warn!("one shared token allowed everything: every agent's machine can submit work and read every log; use --credentials to give agents, readers and admins their own tokens");
    }
    let mut stop = StopSignals::install().context("cannot install signal handlers")?;
    // Started over after a failed store batch: where the predecessor listened (see `restart`).
    let listen = rota_coordinator::restart::listen_again().unwrap_or(args.listen);
    let bind = || async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        rota_coordinator::restart::bound(listener.local_addr()?);
        anyhow::Ok(listener)
    };
    // Announced only once every file was read and the data dir locked, the store opened and
    // written to, so a caller that waits for the address never talks to a coordinator about
    // to exit on a bad flag or an unusable store. With SQLite the port is bound then too; with
    // PostgreSQL it is bound first, and answered as a standby until the store's lease is held.
    let (opened, listener) = if config.postgres.is_some() {
        let listener = bind().await?;
        tokio::select! {
            opened = rota_coordinator::server::open_listening(config, &listener) => (opened?, listener),
            _ = stop.next() => {
                // A standby holds nothing but its data dir's lock; the thread waiting for the
                // lease cannot be joined, so the process ends here.
                eprintln!("rota-coordinator: stopped while standing by");
                std::process::exit(0);
            }
        }
    } else {
        let opened = rota_coordinator::open(config).await?;
        (opened, bind().await?)
    };
    println!("rota-coordinator listening on {}", listener.local_addr()?);
    opened
        .serve(listener, async move { stop.next().await })
        .await
}

/// `--credentials FILE`, else the one shared token of `--token-file` or `ROTA_TOKEN`, else
/// none.
fn credentials(args: &Args) -> anyhow::Result<Credentials> {
    if let Some(path) = &args.credentials {
        if std::env::var_os(TOKEN_ENV).is_some_and(|token| !token.is_empty()) {
            anyhow::bail!("{TOKEN_ENV} is set and --credentials is given: use one of them");
        }
        return rota_coordinator::credentials::load(path);
    }
    let access = Access::load(args.token_file.as_deref(), None).map_err(anyhow::Error::msg)?;
    match access.token {
        Some(token) => Credentials::shared(&token).map_err(anyhow::Error::from),
        None => Ok(Credentials::open()),
    }
}
