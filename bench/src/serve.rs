//! The hidden subcommands that make this binary a coordinator or an agent process, set up like
//! the real `rota-coordinator` and `rota-agent` binaries (same library calls, same defaults,
//! same runtime), so the figures are those of the real programs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

/// The first stdout line of a coordinator, as `rota-coordinator` prints it.
pub const LISTENING: &str = "rota-coordinator listening on ";

/// Flags of `serve-coordinator`, a subset of `rota-coordinator`'s with the same defaults.
#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Seconds an agent may be silent before it is lost.
    #[arg(long, default_value_t = 15.0)]
    pub lease: f64,
    /// Seconds between agent heartbeats.
    #[arg(long, default_value_t = 5.0)]
    pub heartbeat: f64,
    /// As `rota-coordinator --keep-last`.
    #[arg(long)]
    pub keep_last: Option<u64>,
    /// As `rota-coordinator --store`: the store in this PostgreSQL database.
    #[arg(long)]
    pub store: Option<String>,
}

/// Flags of `serve-agent`, a subset of `rota-agent`'s.
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[arg(long)]
    pub coordinator: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub slots: u32,
    #[arg(long)]
    pub spool_dir: PathBuf,
    #[arg(long = "group")]
    pub groups: Vec<String>,
}

/// Runs a coordinator until SIGTERM, like `rota-coordinator` (tracing at `warn` by default).
pub fn coordinator(args: CoordinatorArgs) -> anyhow::Result<()> {
    init_tracing("warn");
    runtime()?.block_on(async move {
        let mut config = rota_coordinator::CoordinatorConfig::new(args.data_dir);
        config.lease = Duration::from_secs_f64(args.lease);
        config.heartbeat_interval = Duration::from_secs_f64(args.heartbeat);
        config.retention.keep_last = args.keep_last;
        config.postgres = args.store;
        // As rota-coordinator: bound once the store is open (a standby on PostgreSQL waits
        // here for the lease, not listening).
        let opened = rota_coordinator::open(config).await?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        println!("{LISTENING}{}", listener.local_addr()?);
        opened.serve(listener, terminated()?).await
    })
}

/// Runs an agent until SIGTERM (then drains), like `rota-agent` (tracing at `info`).
pub fn agent(args: AgentArgs) -> anyhow::Result<()> {
    init_tracing("info");
    runtime()?.block_on(async move {
        let config = rota_agent::AgentConfig {
            coordinator: args.coordinator,
            name: args.name,
            groups: args.groups,
            slots: args.slots,
            labels: BTreeMap::new(),
            work_dir: rota_agent::workdir::default_for(&args.spool_dir, false),
            keep_run_dirs: Duration::from_secs(3600),
            spool_dir: args.spool_dir,
            drain_timeout: Duration::from_secs(600),
            access: Default::default(),
            run_as: None,
        };
        rota_agent::run(config, terminated()?).await
    })
}

/// The runtime `#[tokio::main]` builds, as in the real binaries.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves at SIGTERM.
fn terminated() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        term.recv().await;
    })
}
