//! W12 dashboard: the web pages under load (issue 9).
//!
//! - 100,000 pending runs in one jobset: the jobset page's HTML (first page, and a filtered
//!   page deep in the keyset), against the same data over gRPC (GetJobset + ListRuns of the
//!   page) as the baseline, measured in the same run.
//! - W1's 2,000 runs of `true` with 20 dashboards open on the busy jobset (each an `/events`
//!   stream, re-fetching the page at most every 5 s as the page's script does) against W1
//!   without them, run before and after, in the same run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{argv, distinct_specs, submit_request};
use crate::cluster::wait_agents;
use crate::report::{percentile, Row, Target};

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let (mut rows, pages) = jobset_page(ctx, w).await?;
    let (row, throughput) = busy_with_dashboards(ctx, w).await?;
    rows.push(row);
    Ok(Outcome {
        rows,
        details: json!({ "pages": pages, "throughput": throughput }),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

/// Milliseconds of each of `times` GETs of `url`, checking each answers 200 with `expect`.
async fn time_gets(
    http: &reqwest::Client,
    url: &str,
    times: usize,
    expect: &str,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..times {
        let t = Instant::now();
        let res = http.get(url).send().await?;
        ensure!(res.status().is_success(), "GET {url}: {}", res.status());
        let body = res.text().await?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(body.contains(expect), "GET {url} lacks {expect:?}");
    }
    Ok(out)
}

async fn jobset_page(ctx: &Ctx, w: &str) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let n = ctx.size(100_000);
    let site = &ctx.site;
    let mut coordinator = site.coordinator(
        &site.dir.join("pages"),
        "127.0.0.1:0",
        "coordinator-pages",
        &[],
    )?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    let specs = distinct_specs(n);
    control.submit(submit_request("w8", 0, specs)).await?;
    let http = reqwest::Client::new();
    let base = coordinator.url();
    let first = format!("{base}/jobsets/w8");
    let deep = format!(
        "{base}/jobsets/w8?state=pending&after={}",
        n.saturating_sub(100)
    );
    let html_first = time_gets(&http, &first, 11, "data-run=\"100\"").await?;
    let html_deep = time_gets(&http, &deep, 10, &format!("data-run=\"{n}\"")).await?;
    let mut grpc = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        control
            .get_jobset(pb::GetJobsetRequest { name: "w8".into() })
            .await?;
        let page = control
            .list_runs(pb::ListRunsRequest {
                jobset: "w8".into(),
                state: String::new(),
                limit: 101,
                after_number: 0,
            })
            .await?
            .into_inner();
        grpc.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(
            page.runs.len() == 101.min(n as usize),
            "a short page over gRPC"
        );
    }
    let (first_ms, deep_ms, grpc_ms) = (
        median(html_first[1..].to_vec()),
        median(html_deep.clone()),
        median(grpc.clone()),
    );
    let rows = vec![
        Row::new(w, &format!("jobset page HTML, {n} pending"), "ms", first_ms, Target::AtMost(100.0))
            .baseline(grpc_ms)
            .note(format!(
                "median of 10 after a first call of {:.1} ms; baseline: GetJobset + ListRuns(101) over gRPC",
                html_first[0]
            )),
        Row::new(w, "jobset page HTML, state=pending, its last page", "ms", deep_ms, Target::AtMost(100.0))
            .baseline(grpc_ms)
            .note("keyset page at the end of the jobset; median of 10"),
    ];
    Ok((
        rows,
        json!({ "runs": n, "first_ms": html_first, "deep_ms": html_deep, "grpc_ms": grpc }),
    ))
}

/// One W1 pass on a fresh jobset: runs/s from Submit to Wait.
async fn w1_pass(
    control: &mut crate::client::Control,
    jobset: &str,
    n: u64,
) -> anyhow::Result<f64> {
    let specs = (0..n).map(|_| argv(&["true"])).collect();
    let started = Instant::now();
    control.submit(submit_request(jobset, 0, specs)).await?;
    let waited = control
        .wait(pb::WaitRequest {
            runs: vec![],
            jobset: jobset.into(),
        })
        .await?
        .into_inner();
    ensure!(
        waited.all_succeeded && waited.runs.len() as u64 == n,
        "{jobset}: not every run succeeded"
    );
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// A dashboard tab, as the page's script behaves: one event stream, and a page fetch at most
/// every 5 s while events arrive. Counts the events it read.
async fn dashboard(
    base: String,
    jobset: String,
    stop: Arc<AtomicBool>,
    events: Arc<AtomicU64>,
    open: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut stream = http
        .get(format!("{base}/events?jobset={jobset}"))
        .send()
        .await?
        .error_for_status()?;
    // The answer's head came: the handler has subscribed.
    let _ = open.send(()).await;
    let mut last_fetch = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let chunk = match tokio::time::timeout(Duration::from_millis(500), stream.chunk()).await {
            Ok(chunk) => chunk?,
            Err(_) => continue,
        };
        let Some(chunk) = chunk else { break };
        events.fetch_add(
            chunk.windows(9).filter(|w| w == b"\"number\":").count() as u64,
            Ordering::Relaxed,
        );
        if last_fetch.elapsed() >= Duration::from_secs(5) {
            last_fetch = Instant::now();
            http.get(format!("{base}/jobsets/{jobset}"))
                .send()
                .await?
                .text()
                .await?;
        }
    }
    Ok(())
}

async fn busy_with_dashboards(ctx: &Ctx, w: &str) -> anyhow::Result<(Row, serde_json::Value)> {
    let n = ctx.size(2000);
    let tabs = 20;
    let site = &ctx.site;
    let mut coordinator = site.coordinator(
        &site.dir.join("busy"),
        "127.0.0.1:0",
        "coordinator-busy",
        &[],
    )?;
    let _agent = site.agent(&coordinator.url(), "w8", 4, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;

    let before = w1_pass(&mut control, "plain-1", n).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel(tabs);
    let tasks: Vec<_> = (0..tabs)
        .map(|_| {
            let tab = dashboard(
                coordinator.url(),
                "watched".into(),
                stop.clone(),
                events.clone(),
                open_tx.clone(),
            );
            tokio::spawn(tab)
        })
        .collect();
    for _ in 0..tabs {
        tokio::time::timeout(Duration::from_secs(30), open_rx.recv())
            .await
            .context("the dashboards to open their event streams")?;
    }
    let with = w1_pass(&mut control, "watched", n).await?;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.context("a dashboard task")??;
    }
    let after = w1_pass(&mut control, "plain-2", n).await?;
    let baseline = (before + after) / 2.0;
    let seen = events.load(Ordering::Relaxed);
    let row = Row::new(w, &format!("W1 ({n} x true) with {tabs} dashboards open"), "runs/s", with, Target::RatioAtLeast(0.95))
        .baseline(baseline)
        .note(format!(
            "baseline: the same without dashboards, mean of before ({before:.0}) and after ({after:.0}); {seen} run events read by the tabs"
        ));
    Ok((
        row,
        json!({ "runs": n, "tabs": tabs, "before": before, "with": with, "after": after, "events_read": seen }),
    ))
}
