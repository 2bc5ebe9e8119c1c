//! W1 throughput: 2,000 runs of `true` (argv, no shell) on one agent with 4 slots, submitted as
//! one batch; runs/s from the start of the Submit call to the return of Wait on the jobset
//! (every result recorded). Baseline: `seq 2000 | xargs -P 4 -I{} true`, the fork/exec limit,
//! timed in the same invocation right after.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{argv, submit_request, Control};
use crate::cluster::wait_agents;
use crate::procfs::CpuMeter;
use crate::report::{Row, Target};

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(2000);
    let site = &ctx.site;
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let agent = site.agent(&coordinator.url(), "w1", 4, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;

    let cpu = CpuMeter::start(&[coordinator.proc.pid(), agent.pid()])?;
    let (submitted, elapsed) = submit_and_wait(&mut control, "w1", n).await?;
    let rota = n as f64 / elapsed.as_secs_f64();
    let [coordinator_cpu, agent_cpu] = cpu.used()?[..] else {
        unreachable!("two processes measured")
    };

    let baseline_started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &format!("seq {n} | xargs -P 4 -I{{}} true")])
        .status()?;
    let baseline_elapsed = baseline_started.elapsed();
    ensure!(status.success(), "the baseline failed: {status}");
    let baseline = n as f64 / baseline_elapsed.as_secs_f64();

    Ok(Outcome {
        rows: vec![Row::new(
            w,
            &format!("{n} x true, 4 slots"),
            "runs/s",
            rota,
            Target::RatioAtLeast(0.5),
        )
        .baseline(baseline)
        .note(format!(
            "baseline: seq {n} | xargs -P 4 -I{{}} true; Submit took {:.0} ms of {:.2} s; \
             CPU per run: coordinator {:.0} us, agent {:.0} us",
            submitted.as_secs_f64() * 1e3,
            elapsed.as_secs_f64(),
            coordinator_cpu / n as f64 * 1e6,
            agent_cpu / n as f64 * 1e6,
        ))],
        details: json!({
            "runs": n,
            "seconds": elapsed.as_secs_f64(),
            "submit_seconds": submitted.as_secs_f64(),
            "baseline_seconds": baseline_elapsed.as_secs_f64(),
            "coordinator_cpu_seconds": coordinator_cpu,
            "agent_cpu_seconds": agent_cpu,
        }),
    })
}

/// Submits `n` runs of `true` (argv) to `jobset` in one batch and waits until all of them
/// succeeded: (time the Submit took, time until Wait returned), both from the Submit call.
pub(super) async fn submit_and_wait(
    control: &mut Control,
    jobset: &str,
    n: u64,
) -> anyhow::Result<(Duration, Duration)> {
    let specs = (0..n).map(|_| argv(&["true"])).collect();
    let started = Instant::now();
    control.submit(submit_request(jobset, 0, specs)).await?;
    let submitted = started.elapsed();
    let waited = control
        .wait(pb::WaitRequest {
            runs: vec![],
            jobset: jobset.into(),
        })
        .await?
        .into_inner();
    let elapsed = started.elapsed();
    ensure!(
        waited.runs.len() as u64 == n,
        "Wait returned {} runs, not {n}",
        waited.runs.len()
    );
    if !waited.all_succeeded {
        let failed = waited.runs.iter().find(|r| r.state != "success");
        bail!("not every run succeeded, e.g. {failed:?}");
    }
    Ok((submitted, elapsed))
}
