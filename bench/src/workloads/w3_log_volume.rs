//! W3 log volume: one run writing 200 MiB to stdout (this binary's `gen`, a position-dependent
//! stream, so a misplaced chunk cannot go unnoticed). Measured: start of the Submit call →
//! Wait returns the run finished (recorded only once its whole log is stored and synced); then
//! the time to read the log back through the Logs RPC (`rota logs`). The log is compared
//! byte for byte, with length and FNV-1a fingerprint. Baseline: the same command with stdout
//! redirected to a local file.

use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::ensure;
use rota_proto as pb;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::client::submit_request;
use crate::cluster::wait_agents;
use crate::data::Checker;
use crate::procfs::CpuMeter;
use crate::report::{Row, Target};

const MIB: f64 = 1024.0 * 1024.0;

pub async fn run(ctx: &Ctx, w: &str) -> anyhow::Result<Outcome> {
    let bytes = ctx.size(200 << 20);
    let site = &ctx.site;
    let exe = site.exe.to_string_lossy().into_owned();
    let mut coordinator =
        site.coordinator(&site.dir.join("data"), "127.0.0.1:0", "coordinator", &[])?;
    let agent = site.agent(&coordinator.url(), "w3", 1, &[])?;
    let mut control = coordinator.control(Duration::from_secs(30)).await?;
    wait_agents(&mut control, 1, Duration::from_secs(30)).await?;

    let spec = pb::RunSpec {
        command: vec![exe.clone(), "gen".into(), bytes.to_string()],
        ..Default::default()
    };
    let cpu = CpuMeter::start(&[coordinator.proc.pid(), agent.pid()])?;
    let started = Instant::now();
    let reply = control.submit(submit_request("w3", 0, vec![spec])).await?;
    let id = reply.into_inner().runs.remove(0).id;
    let waited = control
        .wait(pb::WaitRequest {
            runs: vec![id.clone()],
            jobset: String::new(),
        })
        .await?
        .into_inner();
    let recorded = started.elapsed();
    let [coordinator_cpu, agent_cpu] = cpu.used()?[..] else {
        unreachable!("two processes measured")
    };
    let run = &waited.runs[0];
    ensure!(
        run.state == "success",
        "the run ended {}: {run:?}",
        run.state
    );
    ensure!(
        run.stdout_len == bytes,
        "the run recorded {} stdout bytes, not {bytes}",
        run.stdout_len
    );

    let read_started = Instant::now();
    let mut stream = control
        .logs(pb::LogsRequest {
            run: id.clone(),
            follow: false,
            stdout: true,
            stderr: false,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await? {
        chunks.push(chunk);
    }
    let read = read_started.elapsed();
    let mut checker = Checker::default();
    let mut next_offset = 0;
    let mut offsets_ok = true;
    for chunk in &chunks {
        offsets_ok &= chunk.offset == next_offset;
        next_offset += chunk.data.len() as u64;
        checker.update(&chunk.data);
    }
    let verdict = checker.finish(bytes);

    let baseline_file = site.dir.join("baseline.out");
    let baseline_started = Instant::now();
    let status = Command::new(&exe)
        .args(["gen", &bytes.to_string()])
        .stdout(File::create(&baseline_file)?)
        .status()?;
    let baseline_elapsed = baseline_started.elapsed();
    ensure!(status.success(), "the baseline failed: {status}");
    let sync_started = Instant::now();
    File::open(&baseline_file)?.sync_all()?;
    let baseline_sync = baseline_started.elapsed();
    let sync_only = sync_started.elapsed();

    let mib = bytes as f64 / MIB;
    let rota = mib / recorded.as_secs_f64();
    let baseline = mib / baseline_elapsed.as_secs_f64();
    let read_rate = mib / read.as_secs_f64();
    Ok(Outcome {
        rows: vec![
            Row::new(
                w,
                &format!("{mib:.0} MiB stdout → recorded"),
                "MiB/s",
                rota,
                Target::RatioAtLeast(0.33),
            )
            .baseline(baseline)
            .note(format!(
                "{:.2} s (CPU: coordinator {coordinator_cpu:.2} s, agent {agent_cpu:.2} s); \
                 baseline: the same command > local file, {:.2} s ({:.2} s with fsync)",
                recorded.as_secs_f64(),
                baseline_elapsed.as_secs_f64(),
                baseline_sync.as_secs_f64()
            )),
            Row::new(w, "logs read (Logs RPC)", "MiB/s", read_rate, Target::None)
                .note(format!("{:.2} s for {mib:.0} MiB", read.as_secs_f64())),
            Row::flag(w, "log byte-exact", verdict.exact() && offsets_ok).note(format!(
                "{} bytes, fnv1a64 {} (expected {} bytes, {})",
                verdict.len, verdict.fnv1a64, verdict.expected_len, verdict.expected_fnv1a64
            )),
        ],
        details: json!({
            "bytes": bytes,
            "recorded_seconds": recorded.as_secs_f64(),
            "coordinator_cpu_seconds": coordinator_cpu,
            "agent_cpu_seconds": agent_cpu,
            "read_seconds": read.as_secs_f64(),
            "read_chunks": chunks.len(),
            "offsets_contiguous": offsets_ok,
            "baseline_seconds": baseline_elapsed.as_secs_f64(),
            "baseline_fsync_seconds": sync_only.as_secs_f64(),
            "verdict": verdict,
        }),
    })
}
