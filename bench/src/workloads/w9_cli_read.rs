//! W9 CLI read (issue 14): `rota runs --limit 20` against a coordinator holding 100,000 pending
//! runs (one Submit batch, no agent), 200 calls one after the other; the p50 of a call against
//! the p50 of `/usr/bin/true` spawned the same way in the same invocation, the floor any
//! process pays.

use std::process::Command;
use std::time::Duration;

use anyhow::ensure;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{distinct_specs, submit_request};
use crate::report::{percentile, Row, Target};
use crate::spawn::{rota_cli, sequential, sorted, true_loop};

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let queued = ctx.size(100_000);
    let calls = ctx.size(200).max(20);
    let site = &ctx.site;
    let rota = rota_cli(&site.exe)?;
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    let reply = control
        .submit(submit_request("w9", 0, distinct_specs(queued)))
        .await?
        .into_inner();
    ensure!(
        reply.runs.len() as u64 == queued,
        "Submit answered {} runs",
        reply.runs.len()
    );
    drop(reply);

    let url = coordinator.url();
    let runs = |_| {
        let mut c = Command::new(&rota);
        c.args(["runs", "--limit", "20"])
            .env("ROTA_COORDINATOR", &url);
        c
    };
    sequential(1, runs)?;
    let rota_ms = sorted(&sequential(calls, runs)?);
    let floor_ms = sorted(&true_loop(calls)?);
    let (p50, floor) = (percentile(&rota_ms, 50.0), percentile(&floor_ms, 50.0));
    Ok(Outcome {
        rows: vec![Row::new(
            w,
            &format!("rota runs --limit 20, {queued} pending, p50"),
            "ms",
            p50,
            Target::RatioAtMost(3.0),
        )
        .baseline(floor)
        .note(format!(
            "{calls} sequential calls, p99 {:.2} ms; baseline: /usr/bin/true p50, the spawn floor",
            percentile(&rota_ms, 99.0)
        ))],
        details: json!({
            "queued": queued,
            "calls": calls,
            "rota_ms": {"p50": p50, "p90": percentile(&rota_ms, 90.0),
                "p99": percentile(&rota_ms, 99.0), "max": rota_ms.last()},
            "true_ms": {"p50": floor, "p99": percentile(&floor_ms, 99.0)},
        }),
    })
}
