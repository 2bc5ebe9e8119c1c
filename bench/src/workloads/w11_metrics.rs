//! W11 metrics (issue 9): a `/metrics` scrape with 100,000 runs pending (no agent), against
//! the 50 ms target; and W1's 2,000 runs with a Prometheus-style scraper (one GET /metrics a
//! second) against the same W1 without it, interleaved in the same invocation (ratio ≥ 0.95).

use std::time::{Duration, Instant};

use anyhow::ensure;
use rota_tests::http;
use serde_json::json;

use super::w1_throughput::submit_and_wait;
use super::{Ctx, Outcome};
use crate::client::{distinct_specs, jobset_count, submit_request};
use crate::cluster::wait_agents;
use crate::procfs::CpuMeter;
use crate::report::{percentile, Row, Target};

/// Scrapes timed with the queue full.
const SCRAPES: usize = 200;

/// Rounds of W1 with and without the scraper.
const ROUNDS: usize = 3;

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let Scrapes {
        ms: scrape_ms,
        bytes: scrape_bytes,
        cpu_ms,
    } = scrape_with_pending(ctx).await?;
    let mut sorted = scrape_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median = percentile(&sorted, 50.0);

    // Interleaved rounds, best of each: on a shared machine the load moves between runs more
    // than one scrape a second could.
    let n = ctx.size(2000);
    let (mut without, mut with) = (f64::INFINITY, f64::INFINITY);
    for round in 0..ROUNDS {
        without = without.min(w1(ctx, &format!("plain{round}"), n, false).await?);
        with = with.min(w1(ctx, &format!("scraped{round}"), n, true).await?);
    }
    let (rate_without, rate_with) = (n as f64 / without, n as f64 / with);
    let pending = ctx.size(100_000);
    Ok(Outcome {
        rows: vec![
            Row::new(
                w,
                &format!("/metrics scrape, {pending} pending"),
                "ms",
                median,
                Target::AtMost(50.0),
            )
            .note(format!(
                "median of {}; first {:.1} ms, max {:.1} ms; {:.1} KB; {:.2}x of the 50 ms target",
                scrape_ms.len(),
                scrape_ms[0],
                sorted[sorted.len() - 1],
                scrape_bytes as f64 / 1e3,
                median / 50.0
            )),
            Row::new(w, "coordinator CPU per scrape", "ms", cpu_ms, Target::None).note(format!(
                "one scrape a second: {:.2} % of a core",
                cpu_ms / 10.0
            )),
            Row::new(
                w,
                &format!("W1 {n} x true, scraped every 1 s"),
                "runs/s",
                rate_with,
                Target::RatioAtLeast(0.95),
            )
            .baseline(rate_without)
            .note(format!(
                "baseline: the same W1 without a scraper; best of {ROUNDS} interleaved rounds \
                 each, {without:.2} s vs {with:.2} s"
            )),
        ],
        details: json!({
            "pending": pending,
            "scrape_ms": scrape_ms,
            "scrape_bytes": scrape_bytes,
            "scrape_cpu_ms": cpu_ms,
            "w1_runs": n,
            "w1_seconds_without_scraper": without,
            "w1_seconds_with_scraper": with,
        }),
    })
}

/// What `SCRAPES` scrapes of a full queue measured.
struct Scrapes {
    ms: Vec<f64>,
    bytes: usize,
    /// Coordinator CPU per scrape: what one scrape a second costs, in a figure the load of a
    /// shared machine does not move much.
    cpu_ms: f64,
}

/// Fills the queue, then times `SCRAPES` scrapes one after the other.
async fn scrape_with_pending(ctx: &Ctx) -> anyhow::Result<Scrapes> {
    let n = ctx.size(100_000);
    let site = &ctx.site;
    let mut coordinator =
        site.coordinator(&site.dir.join("pending"), "127.0.0.1:0", "pending", &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    let specs = distinct_specs(n);
    control.submit(submit_request("w8", 0, specs)).await?;
    let pending = jobset_count(&mut control, "w8", "pending").await?;
    ensure!(pending == n, "{pending} runs pending, not {n}");
    let mut ms = Vec::new();
    let mut bytes = 0;
    let cpu = CpuMeter::start(&[coordinator.proc.pid()])?;
    for _ in 0..SCRAPES {
        let t = Instant::now();
        let response = http::get(coordinator.addr, "/metrics", &[]).await;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(
            response.status == 200,
            "scrape answered {}",
            response.status
        );
        let text = response.text();
        ensure!(
            http::sample(&text, "rota_runs", "state=\"pending\"") == Some(n as f64),
            "the scrape does not show {n} pending runs"
        );
        bytes = text.len();
    }
    let cpu_ms = cpu.used()?[0] * 1e3 / SCRAPES as f64;
    coordinator.proc.check_alive()?;
    Ok(Scrapes { ms, bytes, cpu_ms })
}

/// W1 on a fresh coordinator and agent, with or without a scraper; seconds to all done.
async fn w1(ctx: &Ctx, name: &str, n: u64, scraped: bool) -> anyhow::Result<f64> {
    let site = &ctx.site;
    let mut coordinator = site.coordinator(&site.dir.join(name), "127.0.0.1:0", name, &[])?;
    let _agent = site.agent(&coordinator.url(), name, 4, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;
    let addr = coordinator.addr;
    let scraper = scraped.then(|| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                http::get(addr, "/metrics", &[]).await;
            }
        })
    });
    let (_, elapsed) = submit_and_wait(&mut control, name, n).await?;
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    Ok(elapsed.as_secs_f64())
}
