//! W7 restart: a coordinator holding 100,000 pending runs (in a group no agent serves, so they
//! stay pending) and 50 running ones (`sleep 60` on an agent with 51 slots) is killed with
//! SIGKILL and started again on the same address and store. Measured from the new process's
//! spawn: it answers, and a newly submitted run is dispatched (assigned to the reconnected
//! agent's free slot): "dispatching again". Checked afterwards: the 50 runs are still running
//! and the 100,000 still pending, nothing lost.

use std::time::{Duration, Instant};

use anyhow::ensure;
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{argv, jobset_count, probe_dispatch, submit_request, wait_count};
use crate::cluster::wait_agents;
use crate::report::{Row, Target};

const RUNNING: u64 = 50;

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let n = ctx.size(100_000);
    let site = &ctx.site;
    let data = site.dir.join("data");
    let mut first = site.coordinator(&data, "127.0.0.1:0", "coordinator-1", &[])?;
    let addr = first.addr;
    let _agent = site.agent(&first.url(), "w7", RUNNING as u32 + 1, &[])?;
    let mut control = first.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;

    let sleeps = (0..RUNNING).map(|_| argv(&["sleep", "60"])).collect();
    control
        .submit(submit_request("w7-running", 0, sleeps))
        .await?;
    wait_count(
        &mut control,
        "w7-running",
        "running",
        RUNNING,
        Duration::from_secs(30),
    )
    .await?;
    let parked = (0..n)
        .map(|_| pb::RunSpec {
            groups: vec!["w7-parked".into()],
            ..argv(&["true"])
        })
        .collect();
    control
        .submit(submit_request("w7-pending", 0, parked))
        .await?;
    ensure!(jobset_count(&mut control, "w7-pending", "pending").await? == n);
    drop(control);

    first.proc.kill9();
    let spawned = Instant::now();
    let mut second = site.coordinator(&data, &addr.to_string(), "coordinator-2", &[])?;
    let listening = spawned.elapsed();
    let mut control = second.control(Duration::from_secs(60)).await?;
    let answering = spawned.elapsed();
    let probe = probe_dispatch(&mut control, "w7-probe", spawned).await?;
    let (submitted, dispatched) = (probe.submitted, probe.dispatched);

    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;
    let still_running = jobset_count(&mut control, "w7-running", "running").await?;
    let still_pending = jobset_count(&mut control, "w7-pending", "pending").await?;
    ensure!(
        still_running == RUNNING,
        "{still_running} of {RUNNING} runs still running after the restart"
    );
    ensure!(
        still_pending == n,
        "{still_pending} of {n} runs still pending after the restart"
    );
    let s = |d: Duration| d.as_secs_f64();
    Ok(Outcome {
        rows: vec![Row::new(
            w,
            &format!("kill -9 with {n} pending + {RUNNING} running → dispatching"),
            "s",
            s(dispatched),
            Target::AtMost(2.0),
        )
        .note(format!(
            "from the new process's spawn: listening {:.3} s, answering {:.3} s, probe submitted {:.3} s, assigned {:.3} s",
            s(listening),
            s(answering),
            s(submitted),
            s(dispatched)
        ))],
        details: json!({
            "pending": n,
            "running": RUNNING,
            "listening_seconds": s(listening),
            "answering_seconds": s(answering),
            "probe_submitted_seconds": s(submitted),
            "dispatched_seconds": s(dispatched),
            "probe_state_in_submit_reply": probe.state_in_reply,
        }),
    })
}
