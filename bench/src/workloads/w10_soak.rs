//! W10 soak (not in CI, not in `all`): 1,000,000 runs of `true` (`--runs N` for fewer) through
//! one agent with 4 slots on a coordinator started with `--keep-last 1000`, submitted in
//! batches of 10,000 into one jobset. The coordinator's RSS and the data dir's size after the
//! first tenth and at the end should differ by at most 10 %: retention bounds the footprint.
//! Then W1 (2,000 runs) on that coordinator, pruning as they finish, against W1 on a fresh
//! coordinator that keeps everything, in the same invocation: pruning may cost at most 10 %.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{argv, submit_request, Control};
use crate::cluster::wait_agents;
use crate::procfs;
use crate::report::{Row, Target};

const CHUNK: u64 = 10_000;
const KEEP_LAST: u64 = 1_000;
const W1_RUNS: u64 = 2_000;

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Waits until no run is pending, assigned or running (Wait on the jobset would list runs
/// that retention deletes meanwhile).
async fn wait_idle(control: &mut Control) -> anyhow::Result<()> {
    loop {
        let s = control.status(pb::StatusRequest {}).await?.into_inner();
        let busy: u64 = s
            .runs
            .iter()
            .filter(|c| ["pending", "assigned", "running"].contains(&c.state.as_str()))
            .map(|c| c.count)
            .sum();
        if busy == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submits `n` runs of `true` into `jobset` and waits for all of them; runs/s.
async fn batch(control: &mut Control, jobset: &str, n: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let specs = (0..n).map(|_| argv(&["true"])).collect();
    control.submit(submit_request(jobset, 0, specs)).await?;
    wait_idle(control).await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

pub async fn run(ctx: &Ctx, w: &str, runs: Option<u64>) -> anyhow::Result<Outcome> {
    let total = runs.unwrap_or_else(|| ctx.size(1_000_000)).max(CHUNK);
    let site = &ctx.site;

    // W1 without retention, for the comparison.
    let plain_dir = site.dir.join("plain");
    let plain = site.coordinator(&plain_dir, "127.0.0.1:0", "coordinator-plain", &[])?;
    let plain_agent = site.agent(&plain.url(), "w10-plain", 4, &[])?;
    let mut plain = plain;
    let mut control = plain.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;
    let w1_plain = batch(&mut control, "w1", W1_RUNS).await?;
    drop(plain_agent);
    drop(plain);

    let data = site.dir.join("data");
    let keep = KEEP_LAST.to_string();
    let mut coordinator =
        site.coordinator(&data, "127.0.0.1:0", "coordinator", &["--keep-last", &keep])?;
    let _agent = site.agent(&coordinator.url(), "w10", 4, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;
    let pid = coordinator.proc.pid();
    let started = Instant::now();
    let mut done = 0;
    let mut tenth = None;
    while done < total {
        let n = CHUNK.min(total - done);
        batch(&mut control, "w10", n).await?;
        done += n;
        if tenth.is_none() && done >= total / 10 {
            tenth = Some((done, procfs::memory(pid)?.rss_mib, dir_bytes(&data)));
        }
        coordinator.proc.check_alive()?;
    }
    let soak_seconds = started.elapsed().as_secs_f64();
    let end = (procfs::memory(pid)?.rss_mib, dir_bytes(&data));
    let (first, rss_tenth, bytes_tenth) = tenth.expect("a tenth was reached");
    let w1_pruning = batch(&mut control, "w10", W1_RUNS).await?;
    let status = control.status(pb::StatusRequest {}).await?.into_inner();
    let held: u64 = status.runs.iter().map(|c| c.count).sum();
    ensure!(
        held <= KEEP_LAST + 500,
        "retention left {held} runs, keep_last is {KEEP_LAST}"
    );

    let ratio = |end: f64, start: f64| if start > 0.0 { end / start } else { 0.0 };
    Ok(Outcome {
        rows: vec![
            Row::new(
                w,
                &format!("RSS at end / after {first}"),
                "ratio",
                ratio(end.0, rss_tenth),
                Target::AtMost(1.10),
            )
            .note(format!(
                "{rss_tenth:.1} MiB -> {:.1} MiB; {total} runs in {soak_seconds:.0} s",
                end.0
            )),
            Row::new(
                w,
                &format!("data dir at end / after {first}"),
                "ratio",
                ratio(end.1 as f64, bytes_tenth as f64),
                Target::AtMost(1.10),
            )
            .note(format!(
                "{:.1} MiB -> {:.1} MiB; {held} runs held, {} pruned",
                bytes_tenth as f64 / (1 << 20) as f64,
                end.1 as f64 / (1 << 20) as f64,
                status.pruned_runs
            )),
            Row::new(
                w,
                &format!("W1 {W1_RUNS} x true while pruning"),
                "runs/s",
                w1_pruning,
                Target::RatioAtLeast(0.9),
            )
            .baseline(w1_plain)
            .note("baseline: the same on a coordinator that keeps everything"),
        ],
        details: json!({
            "runs": total,
            "soak_seconds": soak_seconds,
            "first_sample_after_runs": first,
            "rss_mib_tenth": rss_tenth,
            "rss_mib_end": end.0,
            "data_dir_bytes_tenth": bytes_tenth,
            "data_dir_bytes_end": end.1,
            "w1_plain_runs_per_second": w1_plain,
            "w1_pruning_runs_per_second": w1_pruning,
            "runs_held_at_end": held,
            "pruned_runs": status.pruned_runs,
        }),
    })
}
