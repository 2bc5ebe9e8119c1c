//! W2' (issue 14): W2 with one CLI call per run, as a script feeding a queue does: 200 ×
//! `rota submit -q -- sleep 0.05`, one process each, on an agent with 8 slots; seconds from the
//! first call until every run succeeded (Wait on the jobset). Ideal: 200 / 8 × 0.05 s =
//! 1.25 s. Beside it, the same through task-spooler (`tsp -S 8`, 200 × `tsp sleep 0.05`, until
//! none is queued or running) and `xargs -P 8`, in the same invocation.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::ensure;
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::cluster::wait_agents;
use crate::report::{Row, Target};
use crate::spawn::{rota_cli, sequential, Spooler};

const SLOTS: u32 = 8;
const SLEEP: &str = "0.05";

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(200);
    let ideal = n as f64 / f64::from(SLOTS) * 0.05;
    let site = &ctx.site;
    let rota = rota_cli(&site.exe)?;
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let _agent = site.agent(&coordinator.url(), "w2cli", SLOTS, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;

    let url = coordinator.url();
    let started = Instant::now();
    sequential(n, |_| {
        let mut c = Command::new(&rota);
        c.args(["submit", "-q", "--jobset", "w2cli", "--", "sleep", SLEEP])
            .env("ROTA_COORDINATOR", &url);
        c
    })?;
    let submitted = started.elapsed();
    let waited = control
        .wait(pb::WaitRequest {
            runs: vec![],
            jobset: "w2cli".into(),
        })
        .await?
        .into_inner();
    let rota_s = started.elapsed().as_secs_f64();
    ensure!(
        waited.all_succeeded && waited.runs.len() as u64 == n,
        "{} runs, all succeeded: {}",
        waited.runs.len(),
        waited.all_succeeded
    );

    let spooler = Spooler::start(&site.dir.join("tsp"), SLOTS)?;
    let started = Instant::now();
    sequential(n, |_| spooler.command(&["sleep", SLEEP]))?;
    spooler.wait_idle(Duration::from_secs(60))?;
    let tsp_s = started.elapsed().as_secs_f64();
    drop(spooler);

    let started = Instant::now();
    let status = Command::new("sh")
        .args([
            "-c",
            &format!("seq {n} | xargs -P {SLOTS} -I{{}} sleep {SLEEP}"),
        ])
        .status()?;
    ensure!(status.success(), "xargs: {status}");
    let xargs_s = started.elapsed().as_secs_f64();

    let metric = format!("{n} x rota submit -- sleep {SLEEP}, {SLOTS} slots, to all done");
    Ok(Outcome {
        rows: vec![
            Row::new(w, &metric, "s", rota_s, Target::AtMost(1.45)).note(format!(
                "ideal {ideal:.2} s; the {n} calls took {:.2} s",
                submitted.as_secs_f64()
            )),
            Row::new(
                w,
                "the same through task-spooler (tsp -S 8)",
                "s",
                tsp_s,
                Target::None,
            ),
            Row::new(w, "the same with xargs -P 8", "s", xargs_s, Target::None),
        ],
        details: json!({
            "runs": n,
            "ideal_seconds": ideal,
            "rota_seconds": rota_s,
            "rota_submit_calls_seconds": submitted.as_secs_f64(),
            "tsp_seconds": tsp_s,
            "xargs_seconds": xargs_s,
        }),
    })
}
