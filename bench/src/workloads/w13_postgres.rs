//! W13 PostgreSQL (issue 10): the store in a PostgreSQL the bench starts itself (Debian's
//! server, initdb in the workload's temp dir, fsync on as in production), against SQLite in the
//! same invocation.
//!
//! - W1 on PostgreSQL: W1's 2,000 runs of `true` on one agent with 4 slots, `--store
//!   postgres://`; baseline: the same pass on SQLite just before. Target ≥ 0.7.
//! - W4 on PostgreSQL: 100,000 runs in one Submit batch, submits/s. Target ≥ 20,000/s.
//! - Failover: coordinators A (active) and B (standby, answering NOT_SERVING) on one database, an agent
//!   given both addresses. A is killed with SIGKILL; measured from the kill to the first run
//!   dispatched by B (submitted to B as soon as it answers). Target ≤ 10 s.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use serde_json::json;

use super::w1_throughput::pass;
use super::{Ctx, Outcome};
use crate::client::{argv, distinct_specs, probe_dispatch, submit_request, wait_count};
use crate::cluster::wait_agents;
use crate::report::{Row, Target};

/// A fresh database on the bench's durable PostgreSQL (made off the async runtime: the
/// harness's client blocks).
async fn database() -> anyhow::Result<String> {
    tokio::task::spawn_blocking(rota_tests::pg::durable_database)
        .await?
        .context("PostgreSQL is not installed (Debian package postgresql)")
}

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(2000);
    let sqlite = pass(ctx, n, "w13-sqlite", None, &[]).await?;
    let url = database().await?;
    let pg = pass(ctx, n, "w13-pg", None, &["--store", &url]).await?;

    let m = ctx.size(100_000);
    let (submit_rate, submit_seconds) = batch_submit(ctx, m).await?;
    let (takeover, dispatched) = failover(ctx).await?;

    Ok(Outcome {
        rows: vec![
            Row::new(
                w,
                &format!("W1 on PostgreSQL: {n} x true, 4 slots"),
                "runs/s",
                pg.rate,
                Target::RatioAtLeast(0.7),
            )
            .baseline(sqlite.rate)
            .note("baseline: the same W1 pass on SQLite, just before".to_string()),
            Row::new(
                w,
                &format!("W4 on PostgreSQL: {m} runs in one Submit batch"),
                "submits/s",
                submit_rate,
                Target::AtLeast(20_000.0),
            ),
            Row::new(
                w,
                "failover: kill -9 of the active → first dispatch by the standby",
                "s",
                dispatched.as_secs_f64(),
                Target::AtMost(10.0),
            )
            .note(format!(
                "the standby listened {:.2} s after the kill (lease 6 s after the last renewal)",
                takeover.as_secs_f64()
            )),
        ],
        details: json!({
            "w1_runs": n,
            "w1_sqlite_runs_per_s": sqlite.rate,
            "w1_postgres_runs_per_s": pg.rate,
            "w4_runs": m,
            "w4_submit_seconds": submit_seconds,
            "failover_listening_seconds": takeover.as_secs_f64(),
            "failover_dispatch_seconds": dispatched.as_secs_f64(),
        }),
    })
}

/// `m` runs, no agent, in one Submit batch to a coordinator on a fresh database.
async fn batch_submit(ctx: &Ctx, m: u64) -> anyhow::Result<(f64, f64)> {
    let site = &ctx.site;
    let url = database().await?;
    let mut coordinator = site.coordinator(
        &site.dir.join("w13-w4"),
        "127.0.0.1:0",
        "w13-w4",
        &["--store", &url],
    )?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    let request = submit_request("w13", 0, distinct_specs(m));
    let started = Instant::now();
    let reply = control.submit(request).await?.into_inner();
    let elapsed = started.elapsed().as_secs_f64();
    ensure!(
        reply.runs.len() as u64 == m,
        "Submit answered {} runs",
        reply.runs.len()
    );
    Ok((m as f64 / elapsed, elapsed))
}

/// (kill → the standby listens, kill → its first dispatch).
async fn failover(ctx: &Ctx) -> anyhow::Result<(Duration, Duration)> {
    let site = ctx.site.clone();
    let url = database().await?;
    let store = ["--store", url.as_str()];
    let mut active = site.coordinator(&site.dir.join("w13-a"), "127.0.0.1:0", "w13-a", &store)?;
    let b_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let both = format!("{},http://{b_addr}", active.url());
    let _agent = site.agent(&both, "w13", 4, &[])?;
    let mut control = active.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;
    control
        .submit(submit_request("w13-warm", 0, vec![argv(&["true"])]))
        .await?;
    wait_count(
        &mut control,
        "w13-warm",
        "success",
        1,
        Duration::from_secs(30),
    )
    .await?;

    // The standby blocks in its start until it holds the lease: started on a thread, it is
    // back once it listens.
    let standby = {
        let (site, url) = (site.clone(), url.clone());
        std::thread::spawn(move || {
            site.coordinator(
                &site.dir.join("w13-b"),
                &b_addr.to_string(),
                "w13-b",
                &["--store", &url],
            )
        })
    };
    // It has connected and waits for the lease once its log says so.
    let log = site.dir.join("w13-b.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("standby")
    {
        ensure!(
            Instant::now() < deadline,
            "the standby never said it stands by"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    active.proc.kill9();
    let killed = Instant::now();
    let mut b = tokio::task::spawn_blocking(move || standby.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the standby's thread panicked"))??;
    let takeover = killed.elapsed();
    let mut control = b.control(Duration::from_secs(30)).await?;
    let dispatched = probe_dispatch(&mut control, "w13-probe", killed)
        .await?
        .dispatched;
    Ok((takeover, dispatched))
}
