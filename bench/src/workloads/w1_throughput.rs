//! W1 throughput: 2,000 runs of `true` (argv, no shell) on one agent with 4 slots, submitted as
//! one batch; runs/s from the start of the Submit call to the return of Wait on the jobset
//! (every result recorded). Baseline: `seq 2000 | xargs -P 4 -I{} true`, the fork/exec limit,
//! timed in the same invocation right after.
//!
//! Then the same again on a fresh coordinator whose jobset has a webhook for every run's end
//! (`on=any`) to a receiver that answers after 2 s: its baseline is the plain W1 just
//! measured, and the target (issue 16) is at least 0.95 of it, since delivery must never slow
//! dispatch or results.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{argv, submit_request, Control};
use crate::cluster::wait_agents;
use crate::hook::SlowHook;
use crate::procfs::CpuMeter;
use crate::report::{Row, Target};

/// What one W1 pass measured.
pub(super) struct Pass {
    pub rate: f64,
    elapsed: Duration,
    submitted: Duration,
    coordinator_cpu: f64,
    agent_cpu: f64,
}

/// One pass of `n` runs in its own data dir; with `notify`, the jobset has that webhook;
/// `extra`: more coordinator flags (W13: `--store postgres://…`).
pub(super) async fn pass(
    ctx: &Ctx,
    n: u64,
    name: &str,
    notify: Option<String>,
    extra: &[&str],
) -> anyhow::Result<Pass> {
    let site = &ctx.site;
    let mut coordinator = site.coordinator(&site.dir.join(name), "127.0.0.1:0", name, extra)?;
    let agent = site.agent(&coordinator.url(), name, 4, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;
    if let Some(url) = notify {
        control
            .create_jobset(pb::CreateJobsetRequest {
                name: "w1".into(),
                parallel: 0,
                notify: vec![pb::NotifyTarget {
                    url,
                    events: vec!["any".into()],
                    ..Default::default()
                }],
            })
            .await?;
    }

    let cpu = CpuMeter::start(&[coordinator.proc.pid(), agent.pid()])?;
    let (submitted, elapsed) = submit_and_wait(&mut control, "w1", n).await?;
    let [coordinator_cpu, agent_cpu] = cpu.used()?[..] else {
        unreachable!("two processes measured")
    };
    Ok(Pass {
        rate: n as f64 / elapsed.as_secs_f64(),
        elapsed,
        submitted,
        coordinator_cpu,
        agent_cpu,
    })
}

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(2000);
    let plain = pass(ctx, n, "w1", None, &[]).await?;
    let hook = SlowHook::start(Duration::from_secs(2)).await?;
    let hooked = pass(ctx, n, "w1-notify", Some(hook.url()), &[]).await?;
    let answered = hook.answered.load(Ordering::Relaxed);

    let baseline_started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &format!("seq {n} | xargs -P 4 -I{{}} true")])
        .status()?;
    let baseline_elapsed = baseline_started.elapsed();
    ensure!(status.success(), "the baseline failed: {status}");
    let baseline = n as f64 / baseline_elapsed.as_secs_f64();

    let cpu_note = |p: &Pass| {
        format!(
            "Submit took {:.0} ms of {:.2} s; CPU per run: coordinator {:.0} us, agent {:.0} us",
            p.submitted.as_secs_f64() * 1e3,
            p.elapsed.as_secs_f64(),
            p.coordinator_cpu / n as f64 * 1e6,
            p.agent_cpu / n as f64 * 1e6,
        )
    };
    Ok(Outcome {
        rows: vec![
            Row::new(
                w,
                &format!("{n} x true, 4 slots"),
                "runs/s",
                plain.rate,
                Target::RatioAtLeast(0.5),
            )
            .baseline(baseline)
            .note(format!(
                "baseline: seq {n} | xargs -P 4 -I{{}} true; {}",
                cpu_note(&plain)
            )),
            Row::new(
                w,
                &format!("{n} x true, webhook on every run (receiver answers after 2 s)"),
                "runs/s",
                hooked.rate,
                Target::RatioAtLeast(0.95),
            )
            .baseline(plain.rate)
            .note(format!(
                "baseline: the W1 row above; {answered} POSTs answered by Wait's return; {}",
                cpu_note(&hooked)
            )),
        ],
        details: json!({
            "runs": n,
            "seconds": plain.elapsed.as_secs_f64(),
            "submit_seconds": plain.submitted.as_secs_f64(),
            "baseline_seconds": baseline_elapsed.as_secs_f64(),
            "coordinator_cpu_seconds": plain.coordinator_cpu,
            "agent_cpu_seconds": plain.agent_cpu,
            "notify_seconds": hooked.elapsed.as_secs_f64(),
            "notify_coordinator_cpu_seconds": hooked.coordinator_cpu,
            "notify_posts_answered_by_wait": answered,
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
