//! W5 live limit: 40 runs of `sleep 1` in a jobset at parallel 2 on an agent with 8 slots;
//! once 2 run, SetParallel to 8 (`rota jobset parallel`), and the time from that call
//! returning until a Watch client has seen 8 runs `running` (their processes started and
//! reported). Also: until 8 were `assigned` (the coordinator's decision alone).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::{argv, is_final, submit_request, Watcher};
use crate::cluster::wait_agents;
use crate::report::{Row, Target};

/// Latest state per run id, fed by Watch events.
#[derive(Default)]
struct States(HashMap<String, String>);

impl States {
    fn note(&mut self, run: &pb::Run) {
        self.0.insert(run.id.clone(), run.state.clone());
    }

    fn count(&self, states: &[&str]) -> usize {
        self.0
            .values()
            .filter(|s| states.contains(&s.as_str()))
            .count()
    }
}

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let site = &ctx.site;
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let _agent = site.agent(&coordinator.url(), "w5", 8, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;
    let mut watcher = Watcher::open(&mut control, "w5").await?;

    let specs = (0..40).map(|_| argv(&["sleep", "1"])).collect();
    control.submit(submit_request("w5", 2, specs)).await?;
    let mut states = States::default();
    while states.count(&["running"]) < 2 {
        states.note(&watcher.next(Duration::from_secs(30)).await?.run);
    }
    ensure!(
        states.count(&["running", "assigned"]) == 2,
        "parallel 2 let more than 2 runs start"
    );

    let called = Instant::now();
    control
        .set_parallel(pb::SetParallelRequest {
            name: "w5".into(),
            parallel: 8,
        })
        .await?;
    let returned = Instant::now();
    let mut assigned_at = None;
    let running_at = loop {
        let event = watcher.next(Duration::from_secs(30)).await?;
        if is_final(&event.run.state) {
            bail!("a run finished before 8 were running: {:?}", event.run);
        }
        states.note(&event.run);
        if assigned_at.is_none() && states.count(&["running", "assigned"]) >= 8 {
            assigned_at = Some(event.at);
        }
        if states.count(&["running"]) >= 8 {
            break event.at;
        }
    };
    let ms = |t: Instant| t.saturating_duration_since(returned).as_secs_f64() * 1e3;
    let to_running = ms(running_at);
    let to_assigned = assigned_at.map_or(0.0, ms);
    let call = (returned - called).as_secs_f64() * 1e3;
    Ok(Outcome {
        rows: vec![Row::new(
            w,
            "parallel 2 → 8: return → 8 running",
            "ms",
            to_running,
            Target::AtMost(20.0),
        )
        .note(format!(
            "8 assigned (seen by Watch) after {to_assigned:.1} ms; the SetParallel call took {call:.1} ms"
        ))],
        details: json!({
            "to_running_ms": to_running,
            "to_assigned_seen_ms": to_assigned,
            "set_parallel_call_ms": call,
        }),
    })
}
