//! W2 latency: 1,000 runs submitted one at a time on an idle agent (each submitted after the
//! previous one finished), submit → process started.
//!
//! "Process started" is stamped by the process itself: the run is `date +%s%N`, which prints
//! the wall clock; the latency is that stamp minus the wall clock just before the Submit call.
//! So it covers the durable submit, the dispatch, the Assign over the agent stream, the agent's
//! fork/exec and date's own start-up (about 1 ms here, measured in the same run as the "floor":
//! so this is an upper bound for "started"; this binary starts three times slower than date,
//! so it is not the stamper). Also reported: submit → `running` as
//! seen by a Watch client, which adds the agent's RunStarted, its commit and the Watch stream.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure};
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{argv, is_final, submit_request, Control, Watcher};
use crate::cluster::wait_agents;
use crate::report::{percentile, Row, Target};

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(1000);
    let site = &ctx.site;
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let _agent = site.agent(&coordinator.url(), "w2", 4, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;
    let mut watcher = Watcher::open(&mut control, "w2").await?;

    let mut runs = Vec::with_capacity(n as usize);
    let mut watched_ms = Vec::with_capacity(n as usize);
    let mut coalesced = 0;
    for _ in 0..n {
        let spec = argv(&["date", "+%s%N"]);
        let wall = unix_nanos();
        let started = Instant::now();
        let reply = control.submit(submit_request("w2", 0, vec![spec])).await?;
        let id = reply.into_inner().runs.remove(0).id;
        let mut seen_running = false;
        loop {
            let event = watcher.next(Duration::from_secs(30)).await?;
            if event.run.id != id {
                continue;
            }
            let state = event.run.state.as_str();
            if !seen_running && (state == "running" || is_final(state)) {
                seen_running = true;
                // Started and finished in one engine batch: only the final state is broadcast.
                coalesced += u32::from(state != "running");
                watched_ms.push((event.at - started).as_secs_f64() * 1e3);
            }
            if is_final(state) {
                ensure!(
                    state == "success",
                    "run {id} ended {state}: {:?}",
                    event.run
                );
                break;
            }
        }
        runs.push((id, wall));
    }

    let mut stamped_ms = Vec::with_capacity(runs.len());
    for (id, wall) in &runs {
        let stamp = read_stamp(&mut control, id).await?;
        stamped_ms.push((stamp as f64 - *wall as f64) / 1e6);
    }
    // The slowest runs by submit order: a periodic pattern points at a periodic cause.
    let mut slowest: Vec<(usize, f64)> = stamped_ms.iter().copied().enumerate().collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    slowest.truncate(10);
    stamped_ms.sort_by(f64::total_cmp);
    let floor = exec_floor_ms(50)?;
    watched_ms.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&stamped_ms, 50.0), percentile(&stamped_ms, 99.0));
    let (w50, w99) = (percentile(&watched_ms, 50.0), percentile(&watched_ms, 99.0));
    let max = stamped_ms.last().copied().unwrap_or(0.0);
    Ok(Outcome {
        rows: vec![
            Row::new(w, "submit → started, p50", "ms", p50, Target::None),
            Row::new(w, "submit → started, p99", "ms", p99, Target::AtMost(5.0)).note(format!(
                "{n} runs one at a time; started = the run's own clock (date +%s%N); max {max:.2} ms; \
                 floor: the bench spawning date itself, p50 {floor:.2} ms"
            )),
            Row::new(w, "submit → running seen by Watch, p50", "ms", w50, Target::None),
            Row::new(w, "submit → running seen by Watch, p99", "ms", w99, Target::None),
        ],
        details: json!({
            "runs": n,
            "exec_floor_p50_ms": floor,
            "slowest_started": slowest,
            "started_ms": {"p50": p50, "p90": percentile(&stamped_ms, 90.0), "p99": p99, "max": max,
                "min": stamped_ms.first()},
            "running_seen_ms": {"p50": w50, "p90": percentile(&watched_ms, 90.0), "p99": w99,
                "max": watched_ms.last(), "coalesced_with_finish": coalesced},
        }),
    })
}

/// The nanosecond stamp the run printed.
async fn read_stamp(control: &mut Control, id: &str) -> anyhow::Result<u128> {
    let mut stream = control
        .logs(pb::LogsRequest {
            run: id.to_string(),
            follow: false,
            stdout: true,
            stderr: false,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await? {
        out.extend_from_slice(&chunk.data);
    }
    let text = String::from_utf8_lossy(&out);
    let Some(stamp) = text.trim().parse().ok() else {
        bail!("run {id} printed {text:?}, not a time stamp");
    };
    Ok(stamp)
}

/// The part no scheduler can remove: spawn → stamp when the bench itself spawns `date`.
fn exec_floor_ms(times: usize) -> anyhow::Result<f64> {
    let mut ms = Vec::with_capacity(times);
    for _ in 0..times {
        let wall = unix_nanos();
        let out = std::process::Command::new("date").arg("+%s%N").output()?;
        let stamp: u128 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        ms.push((stamp as f64 - wall as f64) / 1e6);
    }
    ms.sort_by(f64::total_cmp);
    Ok(percentile(&ms, 50.0))
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
