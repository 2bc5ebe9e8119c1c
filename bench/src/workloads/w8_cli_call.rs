//! W8 CLI call (issue 14): 2,000 sequential `rota submit -q -- true` into a coordinator with no
//! agent, each call a new process that connects, submits and is answered once the run is
//! committed, as a script looping over `rota submit` does. Baselines in the same invocation:
//! 2,000 sequential `tsp true` into a task-spooler of its own (the spooler runs them as they
//! come, as it does for its users) and 2,000 `/usr/bin/true`, the spawn floor.

use std::process::Command;
use std::time::Duration;

use anyhow::ensure;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::jobset_count;
use crate::report::{percentile, Row, Target};
use crate::spawn::{rate, rota_cli, sequential, sorted, true_loop, Spooler};

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(2000);
    let site = &ctx.site;
    let rota = rota_cli(&site.exe)?;
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    let url = coordinator.url();

    let submit = |_| {
        let mut c = Command::new(&rota);
        c.args(["submit", "-q", "--jobset", "w8", "--", "true"])
            .env("ROTA_COORDINATOR", &url);
        c
    };
    // One call first: the coordinator's first Submit creates the jobset.
    sequential(1, submit)?;
    let rota_ms = sequential(n, submit)?;
    let pending = jobset_count(&mut control, "w8", "pending").await?;
    ensure!(pending == n + 1, "{pending} runs pending, not {}", n + 1);

    let spooler = Spooler::start(&site.dir.join("tsp"), 1)?;
    let tsp_ms = sequential(n, |_| spooler.command(&["true"]))?;
    spooler.wait_idle(Duration::from_secs(60))?;
    drop(spooler);
    let floor_ms = true_loop(n)?;

    let (rota_rate, tsp_rate, floor_rate) = (rate(&rota_ms), rate(&tsp_ms), rate(&floor_ms));
    let (rota_sorted, tsp_sorted, floor_sorted) =
        (sorted(&rota_ms), sorted(&tsp_ms), sorted(&floor_ms));
    let p50 = |v: &[f64]| percentile(v, 50.0);
    let note = format!(
        "per call p50: rota {:.2} ms, tsp {:.2} ms, /usr/bin/true {:.2} ms; rota p99 {:.2} ms",
        p50(&rota_sorted),
        p50(&tsp_sorted),
        p50(&floor_sorted),
        percentile(&rota_sorted, 99.0)
    );
    Ok(Outcome {
        rows: vec![
            Row::new(
                w,
                &format!("{n} sequential rota submit, no agent"),
                "calls/s",
                rota_rate,
                Target::RatioAtLeast(0.5),
            )
            .baseline(tsp_rate)
            .note(format!("baseline: {n} sequential `tsp true`; {note}")),
            Row::new(
                w,
                &format!("{n} sequential rota submit vs the spawn floor"),
                "calls/s",
                rota_rate,
                Target::None,
            )
            .baseline(floor_rate)
            .note(format!("baseline: {n} sequential /usr/bin/true")),
        ],
        details: json!({
            "calls": n,
            "rota_calls_per_s": rota_rate,
            "tsp_calls_per_s": tsp_rate,
            "true_calls_per_s": floor_rate,
            "rota_ms": {"p50": p50(&rota_sorted), "p90": percentile(&rota_sorted, 90.0),
                "p99": percentile(&rota_sorted, 99.0), "max": rota_sorted.last()},
            "tsp_ms": {"p50": p50(&tsp_sorted), "p99": percentile(&tsp_sorted, 99.0)},
            "true_ms": {"p50": p50(&floor_sorted), "p99": percentile(&floor_sorted, 99.0)},
        }),
    })
}
