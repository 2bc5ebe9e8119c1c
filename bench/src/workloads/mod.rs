//! The workloads of issue 5, one file each, and the loop that runs the selected ones in their
//! own directories, turns a failure into a "not run" row, prints the table and writes the JSON.

mod w10_soak;
mod w11_metrics;
mod w12_dashboard;
mod w13_postgres;
mod w1_throughput;
mod w2_latency;
mod w2cli_calls;
mod w3_log_volume;
mod w4_queue_scale;
mod w5_live_limit;
mod w6_fan_in;
mod w7_restart;
mod w8_cli_call;
mod w9_cli_read;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;

use crate::cluster::Site;
use crate::report::{self, Machine, Report, Row};

/// Every workload, in the order `all` runs them.
pub const ALL: [&str; 12] = [
    "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w11", "w12", "w8", "w9", "w2cli",
];

/// Flags shared by every workload command.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results.json")]
    pub out: PathBuf,
    /// A tenth of every size, for a quick check that everything works (figures not comparable).
    #[arg(long)]
    pub quick: bool,
    /// Keep the working directory (stores, logs, spools) and print where it is.
    #[arg(long)]
    pub keep: bool,
    /// W10: this many runs instead of 1,000,000 (at least 10,000).
    #[arg(long, value_name = "N")]
    pub runs: Option<u64>,
}

/// What a workload function gets.
pub struct Ctx {
    pub site: Site,
    pub quick: bool,
    /// `--runs`, for W10.
    pub runs: Option<u64>,
}

impl Ctx {
    /// `full`, or a tenth of it with `--quick`.
    pub fn size(&self, full: u64) -> u64 {
        if self.quick {
            (full / 10).max(1)
        } else {
            full
        }
    }
}

/// What a workload measured: its rows, and the raw figures behind them for the JSON.
pub struct Outcome {
    pub rows: Vec<Row>,
    pub details: serde_json::Value,
}

fn title(name: &str) -> &'static str {
    match name {
        "w1" => "W1 throughput",
        "w2" => "W2 latency",
        "w3" => "W3 log volume",
        "w4" => "W4 queue scale",
        "w5" => "W5 live limit",
        "w6" => "W6 agent fan-in",
        "w7" => "W7 restart",
        "w11" => "W11 metrics",
        "w12" => "W12 dashboard",
        "w10" => "W10 soak",
        "w13" => "W13 PostgreSQL",
        "w8" => "W8 CLI call",
        "w9" => "W9 CLI read",
        "w2cli" => "W2' CLI per run",
        _ => "unknown",
    }
}

async fn run_one(name: &str, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let w = title(name);
    match name {
        "w1" => w1_throughput::run(ctx, w).await,
        "w2" => w2_latency::run(ctx, w).await,
        "w3" => w3_log_volume::run(ctx, w).await,
        "w4" => w4_queue_scale::run(ctx, w).await,
        "w5" => w5_live_limit::run(ctx, w).await,
        "w6" => w6_fan_in::run(ctx, w).await,
        "w7" => w7_restart::run(ctx, w).await,
        "w11" => w11_metrics::run(ctx, w).await,
        "w12" => w12_dashboard::run(ctx, w).await,
        "w10" => w10_soak::run(ctx, w, ctx.runs).await,
        "w13" => w13_postgres::run(ctx, w).await,
        "w8" => w8_cli_call::run(ctx, w).await,
        "w9" => w9_cli_read::run(ctx, w).await,
        "w2cli" => w2cli_calls::run(ctx, w).await,
        other => anyhow::bail!("no workload {other:?}"),
    }
}

/// Runs the named workloads one after the other, then prints and writes the results.
pub async fn run(names: &[&str], options: Options) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this binary to re-execute it")?;
    let root = tempfile::Builder::new().prefix("rota-bench-").tempdir()?;
    let machine = Machine::describe();
    eprintln!(
        "rota-bench: {} build, {} CPUs ({}), load average {:?}, working in {}",
        machine.build,
        machine.cpus,
        machine.cpu_model,
        machine.load_average_at_start,
        root.path().display()
    );
    let mut rows = Vec::new();
    let mut details = serde_json::Map::new();
    for &name in names {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir)?;
        let ctx = Ctx {
            site: Site {
                exe: exe.clone(),
                dir,
            },
            quick: options.quick,
            runs: options.runs,
        };
        let load_before = crate::procfs::load_average();
        eprintln!("rota-bench: {} ...", title(name));
        let started = Instant::now();
        let outcome = run_one(name, &ctx).await;
        let seconds = started.elapsed().as_secs_f64();
        let mut detail = serde_json::json!({
            "load_average_before": load_before,
            "seconds": seconds,
        });
        match outcome {
            Ok(o) => {
                for r in &o.rows {
                    eprintln!("rota-bench:   {}: {:?} {}", r.metric, r.rota, r.unit);
                }
                rows.extend(o.rows);
                detail["figures"] = o.details;
            }
            Err(e) => {
                eprintln!("rota-bench:   {} could not run: {e:#}", title(name));
                detail["error"] = format!("{e:#}").into();
                rows.push(Row::failed(title(name), format!("{e:#}")));
            }
        }
        details.insert(name.to_string(), detail);
    }
    println!("{}", report::table(&rows));
    let report = Report {
        machine,
        started_at_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        quick: options.quick,
        rows,
        details,
    };
    report.write(&options.out)?;
    eprintln!("rota-bench: results written to {}", options.out.display());
    if options.keep {
        let kept = root.keep();
        eprintln!("rota-bench: working directory kept: {}", kept.display());
    }
    Ok(())
}
