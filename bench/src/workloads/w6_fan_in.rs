//! W6 agent fan-in: 1,000 lightweight agents (see `fleet`) connected and idle, heartbeating at
//! the coordinator's default interval (5 s). After one interval to settle, the coordinator's
//! CPU time (utime + stime from /proc) is sampled over 10 s, and its resident memory read.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::cluster::wait_agents;
use crate::fleet::Fleet;
use crate::procfs;
use crate::report::{Row, Target};

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(1000) as usize;
    let (settle, window) = if ctx.quick {
        (Duration::from_secs(1), Duration::from_secs(3))
    } else {
        (Duration::from_secs(5), Duration::from_secs(10))
    };
    let site = &ctx.site;
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    let pid = coordinator.proc.pid();
    let idle = procfs::memory(pid)?;

    let connecting = Instant::now();
    let mut fleet = Fleet::start(&coordinator.url(), "w6", n);
    let joined = wait_agents(&mut control, n, Duration::from_secs(120)).await;
    if let Some(e) = fleet.first_error() {
        bail!("a fleet agent failed: {e}");
    }
    joined?;
    let connect_seconds = connecting.elapsed().as_secs_f64();

    tokio::time::sleep(settle).await;
    let beats_before = fleet.counts.heartbeats.load(Ordering::Relaxed);
    let cpu_before = procfs::cpu_seconds(pid)?;
    let window_started = Instant::now();
    tokio::time::sleep(window).await;
    let cpu_after = procfs::cpu_seconds(pid)?;
    let elapsed = window_started.elapsed().as_secs_f64();
    let beats = fleet.counts.heartbeats.load(Ordering::Relaxed) - beats_before;
    let memory = procfs::memory(pid)?;
    if let Some(e) = fleet.first_error() {
        bail!("a fleet agent failed during the window: {e}");
    }
    wait_agents(&mut control, n, Duration::from_secs(5)).await?;
    fleet.stop().await;

    let cpu_percent = (cpu_after - cpu_before) / elapsed * 100.0;
    Ok(Outcome {
        rows: vec![
            Row::new(
                w,
                &format!("{n} idle agents: coordinator CPU"),
                "% of a core",
                cpu_percent,
                Target::AtMost(5.0),
            )
            .note(format!(
                "over {elapsed:.1} s, {beats} heartbeats ({:.0}/s); agents connected in {connect_seconds:.1} s",
                beats as f64 / elapsed
            )),
            Row::new(
                w,
                &format!("{n} idle agents: coordinator RSS"),
                "MiB",
                memory.rss_mib,
                Target::AtMost(200.0),
            )
            .note(format!("{:.0} MiB with no agent", idle.rss_mib)),
        ],
        details: json!({
            "agents": n,
            "connect_seconds": connect_seconds,
            "window_seconds": elapsed,
            "cpu_seconds": cpu_after - cpu_before,
            "cpu_percent": cpu_percent,
            "heartbeats": beats,
            "rss_mib": memory.rss_mib,
            "peak_rss_mib": memory.peak_rss_mib,
            "rss_mib_no_agents": idle.rss_mib,
        }),
    })
}
