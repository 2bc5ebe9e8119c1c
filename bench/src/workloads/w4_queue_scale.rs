//! W4 queue scale: 100,000 runs, no agent, in one Submit batch built as `rota submit --from`
//! builds it (one shell command per line); submits/s over the Submit call, the coordinator's
//! resident memory afterwards (from /proc), and the latency of the first page of
//! `rota runs --state pending` (ListRuns, state pending, limit 100).

use std::time::{Duration, Instant};

use anyhow::ensure;
use prost::Message as _;
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{distinct_specs, jobset_count, submit_request};
use crate::procfs;
use crate::report::{percentile, Row, Target};

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(100_000);
    let site = &ctx.site;
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    let pid = coordinator.proc.pid();
    let rss_idle = procfs::memory(pid)?;

    let specs = distinct_specs(n);
    let request = submit_request("w4", 0, specs);
    let request_bytes = request.encoded_len();
    let started = Instant::now();
    let reply = control.submit(request).await?.into_inner();
    let elapsed = started.elapsed();
    let reply_bytes = reply.encoded_len();
    ensure!(
        reply.runs.len() as u64 == n,
        "Submit answered {} runs, not {n}",
        reply.runs.len()
    );
    drop(reply);
    let memory = procfs::memory(pid)?;
    let pending = jobset_count(&mut control, "w4", "pending").await?;
    ensure!(pending == n, "{pending} runs pending, not {n}");

    let mut page_ms = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let page = control
            .list_runs(pb::ListRunsRequest {
                jobset: String::new(),
                state: "pending".into(),
                limit: 100,
                after_number: 0,
            })
            .await?
            .into_inner();
        page_ms.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(page.runs.len() == 100.min(n as usize), "a short first page");
    }
    let first_page = page_ms[0];
    let mut sorted = page_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let rate = n as f64 / elapsed.as_secs_f64();
    Ok(Outcome {
        rows: vec![
            Row::new(
                w,
                &format!("{n} runs in one Submit"),
                "submits/s",
                rate,
                Target::AtLeast(20_000.0),
            )
            .note(format!(
                "{:.2} s; request {:.1} MB, reply {:.1} MB (above the 4 MiB tonic default)",
                elapsed.as_secs_f64(),
                request_bytes as f64 / 1e6,
                reply_bytes as f64 / 1e6
            )),
            Row::new(
                w,
                "coordinator RSS after",
                "MiB",
                memory.rss_mib,
                Target::AtMost(300.0),
            )
            .note(format!(
                "peak {:.0} MiB, {:.0} MiB before the submit",
                memory.peak_rss_mib, rss_idle.rss_mib
            )),
            Row::new(
                w,
                "runs --state pending, first page",
                "ms",
                first_page,
                Target::AtMost(50.0),
            )
            .note(format!(
                "limit 100; first call; median of 10 {:.1} ms",
                percentile(&sorted, 50.0)
            )),
        ],
        details: json!({
            "runs": n,
            "submit_seconds": elapsed.as_secs_f64(),
            "request_bytes": request_bytes,
            "reply_bytes": reply_bytes,
            "rss_mib_before": rss_idle.rss_mib,
            "rss_mib_after": memory.rss_mib,
            "peak_rss_mib": memory.peak_rss_mib,
            "first_page_ms": page_ms,
        }),
    })
}
