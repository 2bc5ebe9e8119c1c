//! `rota-bench`: measures rota against the fork/exec limit with real processes (issue 5).
//!
//! One binary holds everything: the workloads drive a coordinator and agents that are this same
//! binary re-executed in hidden subcommands (`serve-coordinator`, `serve-agent`), so what is
//! measured is real processes talking gRPC over loopback, built from the same sources, with no
//! separate install step. `gen` is a helper the W3 run executes.
//!
//! `cargo run --release -p rota-bench -- all` runs every workload, prints one table and writes
//! `bench-results.json`.

mod client;
mod cluster;
mod data;
mod fleet;
mod hook;
mod procfs;
mod report;
mod serve;
mod spawn;
mod workloads;

use clap::{Parser, Subcommand};

/// Benchmarks rota (real coordinator and agent processes on loopback) against baselines.
#[derive(Debug, Parser)]
#[command(name = "rota-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every workload: W1 to W7, W11, W12, W8, W9, W2'.
    All(workloads::Options),
    /// W1 throughput: 2,000 runs of `true` on one agent with 4 slots, vs `xargs -P 4`.
    W1(workloads::Options),
    /// W2 latency: 1,000 runs submitted one at a time on an idle agent, submit → started.
    W2(workloads::Options),
    /// W3 log volume: one run writing 200 MB to stdout, vs the same command into a file.
    W3(workloads::Options),
    /// W4 queue scale: 100,000 pending runs in one Submit batch, RSS, first page latency.
    W4(workloads::Options),
    /// W5 live limit: jobset parallel 2 → 8, time to 8 running.
    W5(workloads::Options),
    /// W6 agent fan-in: 1,000 idle agents heartbeating; coordinator CPU and RSS.
    W6(workloads::Options),
    /// W7 restart: kill -9 with 100,000 pending and 50 running; time to dispatching again.
    W7(workloads::Options),
    /// W11 metrics: a /metrics scrape with 100,000 pending; W1 scraped every second vs not.
    W11(workloads::Options),
    /// W12 dashboard: the jobset page with 100,000 pending runs; W1 with 20 dashboards open.
    W12(workloads::Options),
    /// W10 soak (not part of `all`): 1,000,000 runs of `true` with keep_last 1,000 (`--runs N`
    /// for fewer); RSS and data-dir size after a tenth and at the end, W1 while pruning.
    W10(workloads::Options),
    /// W13 PostgreSQL (not part of `all`): W1 and W4 on `--store postgres://` against SQLite,
    /// and the time from kill -9 of the active coordinator to the standby's first dispatch.
    W13(workloads::Options),
    /// W8 CLI call: 2,000 sequential `rota submit` (no agent) vs `tsp true` and /usr/bin/true.
    W8(workloads::Options),
    /// W9 CLI read: `rota runs --limit 20` on a 100,000-run queue, p50 vs the spawn floor.
    W9(workloads::Options),
    /// W2': 200 x `rota submit -- sleep 0.05`, one call each, 8 slots; vs tsp and xargs.
    W2cli(workloads::Options),
    /// (internal) A coordinator process, as `rota-coordinator`.
    #[command(hide = true)]
    ServeCoordinator(serve::CoordinatorArgs),
    /// (internal) An agent process, as `rota-agent`.
    #[command(hide = true)]
    ServeAgent(serve::AgentArgs),
    /// (internal) Writes BYTES deterministic bytes to stdout (the W3 run).
    #[command(hide = true)]
    Gen { bytes: u64 },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let selected = match cli.command {
        Command::ServeCoordinator(args) => return serve::coordinator(args),
        Command::ServeAgent(args) => return serve::agent(args),
        Command::Gen { bytes } => return data::generate(bytes),
        Command::All(o) => (workloads::ALL.to_vec(), o),
        Command::W1(o) => (vec!["w1"], o),
        Command::W2(o) => (vec!["w2"], o),
        Command::W3(o) => (vec!["w3"], o),
        Command::W4(o) => (vec!["w4"], o),
        Command::W5(o) => (vec!["w5"], o),
        Command::W6(o) => (vec!["w6"], o),
        Command::W7(o) => (vec!["w7"], o),
        Command::W11(o) => (vec!["w11"], o),
        Command::W12(o) => (vec!["w12"], o),
        Command::W10(o) => (vec!["w10"], o),
        Command::W13(o) => (vec!["w13"], o),
        Command::W8(o) => (vec!["w8"], o),
        Command::W9(o) => (vec!["w9"], o),
        Command::W2cli(o) => (vec!["w2cli"], o),
    };
    let (names, options) = selected;
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(workloads::run(&names, options))
}

/// The bench's own diagnostics: warnings only, `RUST_LOG` overrides; stderr, so the table on
/// stdout stays clean.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
