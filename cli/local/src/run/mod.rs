//! `rota run FILE`: every job of a config file as one jobset, followed to the end with live
//! progress, then a summary; exit 0 only if every run succeeded. Without an explicit
//! coordinator the whole system runs in-process ([`local`]), so one command is enough.
//!
//! Order matters: the Watch stream is opened BEFORE the Submit, so no state change can slip
//! between the submit and the subscription; a concurrent Wait RPC is the authority on "all
//! finished", so a dropped event can delay a progress line but never hang the command.

mod local;
mod progress;
mod summary;

use std::collections::BTreeSet;
use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use rota_proto::{
    GetJobsetRequest, Run, RunEvent, RunRef, RunSpec, SetParallelRequest, SubmitRequest,
    WaitRequest, WatchRequest,
};
use tonic::Streaming;

use self::local::{LocalCluster, LocalOptions};
use self::progress::{Display, Tracker};
use rota_cli::args::RunArgs;
use rota_cli::client::{self, Client, Reply, RpcError};
use rota_cli::commands::Context;
use rota_cli::output::{self, OutputFormat};

/// Exit code after Ctrl-C, as shells report a SIGINT death (128 + 2).
const INTERRUPTED: u8 = 130;

/// What `rota run` submits: the file's jobset, its limit and one RunSpec per job.
#[derive(Debug)]
struct Plan {
    jobset: String,
    /// `--parallel`, else the file's; applied to an existing jobset too.
    parallel: u32,
    specs: Vec<RunSpec>,
    /// Every group the jobs name or the file defines, for the in-process agent.
    groups: Vec<String>,
}

pub async fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    if plan.specs.is_empty() {
        eprintln!("rota: {}: no jobs to run", args.file.display());
        return Ok(ExitCode::SUCCESS);
    }

    if ctx.explicit_coordinator {
        let mut client = ctx.client().await?;
        return execute(ctx, &mut client, &plan, Mode::Remote, None).await;
    }

    let slots = args.slots.unwrap_or_else(default_slots);
    let mut cluster = LocalCluster::start(LocalOptions {
        data_dir: args.data_dir.clone(),
        slots,
        groups: plan.groups.clone(),
    })
    .await?;
    tracing::info!(
        url = cluster.url(),
        data_dir = %cluster.data_dir().display(),
        "in-process coordinator started"
    );
    let result = match client::connect(cluster.url(), &Default::default()).await {
        Ok(mut client) => {
            let mode = Mode::Local { slots };
            execute(ctx, &mut client, &plan, mode, Some(&mut cluster)).await
        }
        Err(e) => Err(e),
    };
    cluster.shutdown().await;
    result
}

/// Reads and validates the file; a bad file is one line and nothing starts.
fn plan(args: &RunArgs) -> anyhow::Result<Plan> {
    let defs =
        rota_coordinator::config::load_file(&args.file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let groups: BTreeSet<String> = defs
        .jobs
        .iter()
        .flat_map(|j| j.concurrency_groups.iter().cloned())
        .chain(defs.groups.keys().cloned())
        .collect();
    Ok(Plan {
        parallel: args.parallel.unwrap_or(defs.parallel),
        specs: defs
            .jobs
            .iter()
            .map(|j| j.to_run_spec(&defs.environment))
            .collect(),
        groups: groups.into_iter().collect(),
        jobset: defs.jobset,
    })
}

/// max(4, CPUs): jobs of a pipeline often wait on I/O, so a small machine still runs a few.
fn default_slots() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cpus).unwrap_or(u32::MAX).max(4)
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// A coordinator that outlives us: failed runs get `rota logs N` hints.
    Remote,
    /// Our own coordinator, gone at exit: failed runs get their stderr tail printed.
    Local { slots: u32 },
}

/// Watch, submit, follow to the end, summarize.
async fn execute(
    ctx: &Context,
    client: &mut Client,
    plan: &Plan,
    mode: Mode,
    cluster: Option<&mut LocalCluster>,
) -> anyhow::Result<ExitCode> {
    let mut watch = client
        .watch(WatchRequest {
            jobset: plan.jobset.clone(),
        })
        .await
        .reply()?;
    apply_parallel(client, plan).await;

    let started = Instant::now();
    let submitted = client
        .submit(SubmitRequest {
            jobset: plan.jobset.clone(),
            runs: plan.specs.clone(),
            parallel: plan.parallel,
        })
        .await
        .reply()?;
    let mut tracker = Tracker::new(submitted.runs);
    let table = ctx.output == OutputFormat::Table;
    if table {
        output::print(&format!(
            "{}\n",
            submitted_line(plan, &tracker, mode, &ctx.url)
        ))?;
    }
    let interactive = table && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut display = Display::new(interactive);
    display.status(&tracker.status_line())?;

    let cluster_exit = async move {
        match cluster {
            Some(c) => c.unexpected_exit().await,
            None => std::future::pending().await,
        }
    };
    let ending = follow(
        client,
        &mut tracker,
        &mut watch,
        &mut display,
        table,
        cluster_exit,
    )
    .await;
    display.finish()?;
    let elapsed = started.elapsed();

    match ending? {
        Ending::Finished => finish(ctx, client, plan, &tracker, mode, elapsed).await,
        Ending::Interrupted => {
            let unfinished = tracker.unfinished_ids();
            eprintln!(
                "rota: interrupted; cancelling {} unfinished run{}",
                unfinished.len(),
                if unfinished.len() == 1 { "" } else { "s" }
            );
            exit_on_second_interrupt();
            for id in unfinished {
                if let Err(e) = client.cancel(RunRef { run: id.clone() }).await {
                    tracing::warn!("cancelling {id}: {}", RpcError(e));
                }
            }
            Ok(ExitCode::from(INTERRUPTED))
        }
    }
}

/// Makes `--parallel` (or the file's `parallel`) hold for a jobset that already exists too:
/// Submit only applies it when it creates the jobset. Best effort: Submit still reports
/// real problems.
async fn apply_parallel(client: &mut Client, plan: &Plan) {
    let Ok(existing) = client
        .get_jobset(GetJobsetRequest {
            name: plan.jobset.clone(),
        })
        .await
    else {
        return;
    };
    if existing.into_inner().parallel != plan.parallel {
        let req = SetParallelRequest {
            name: plan.jobset.clone(),
            parallel: plan.parallel,
        };
        if let Err(e) = client.set_parallel(req).await {
            tracing::warn!("setting parallel of {}: {}", plan.jobset, RpcError(e));
        }
    }
}

/// `pipeline: 16 runs submitted (#1-#16), parallel 4, in-process agent "local" with 4 slots`.
fn submitted_line(plan: &Plan, tracker: &Tracker, mode: Mode, url: &str) -> String {
    let runs = tracker.runs();
    let numbers = match (
        runs.iter().map(|r| r.number).min(),
        runs.iter().map(|r| r.number).max(),
    ) {
        (Some(lo), Some(hi)) if lo != hi => format!(" (#{lo}-#{hi})"),
        (Some(lo), _) => format!(" (#{lo})"),
        _ => String::new(),
    };
    let parallel = match plan.parallel {
        0 => "unlimited".to_string(),
        n => n.to_string(),
    };
    let place = match mode {
        Mode::Local { slots } => {
            format!(
                "in-process agent \"{}\" with {slots} slots",
                local::AGENT_NAME
            )
        }
        Mode::Remote => format!("on {url}"),
    };
    format!(
        "{}: {} run{} submitted{numbers}, parallel {parallel}, {place}",
        plan.jobset,
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
    )
}

enum Ending {
    Finished,
    Interrupted,
}

/// Follows the runs until all have finished, Ctrl-C, or the in-process cluster dies.
async fn follow(
    client: &mut Client,
    tracker: &mut Tracker,
    watch: &mut Streaming<RunEvent>,
    display: &mut Display,
    print_lines: bool,
    cluster_exit: impl Future<Output = anyhow::Error>,
) -> anyhow::Result<Ending> {
    let mut wait_client = client.clone();
    let wait_request = WaitRequest {
        runs: tracker.ids(),
        jobset: String::new(),
    };
    let wait = async move { wait_client.wait(wait_request).await };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(wait, ctrl_c, cluster_exit);
    let mut watch_open = true;
    let mut wait_open = true;

    let mut record = |tracker: &mut Tracker, run: Run| -> std::io::Result<()> {
        if let Some(changed) = tracker.update(run).cloned() {
            // `assigned` lasts milliseconds before `running`: a line for it is noise (the
            // status line still counts it).
            if print_lines && changed.state != "assigned" {
                let time = chrono::Local::now().format("%H:%M:%S").to_string();
                let line = tracker.change_line(&time, &changed);
                display.line(&line, &tracker.status_line())?;
            } else {
                display.status(&tracker.status_line())?;
            }
        }
        Ok(())
    };

    while !tracker.all_finished() {
        tokio::select! {
            event = watch.message(), if watch_open => match event {
                Ok(Some(RunEvent { run: Some(run) })) => record(tracker, run)?,
                Ok(Some(RunEvent { run: None })) => {}
                Ok(None) | Err(_) => {
                    if let Err(status) = &event {
                        tracing::debug!("watch stream ended: {}", RpcError(status.clone()));
                    }
                    watch_open = false;
                    if !wait_open {
                        bail!("lost the coordinator's event stream before every run finished");
                    }
                }
            },
            answer = &mut wait, if wait_open => {
                wait_open = false;
                match answer {
                    Ok(resp) => {
                        for run in resp.into_inner().runs {
                            record(tracker, run)?;
                        }
                    }
                    Err(status) if !watch_open => return Err(RpcError(status).into()),
                    Err(status) => tracing::debug!("wait failed, following events only: {}", RpcError(status)),
                }
                if !watch_open && !tracker.all_finished() {
                    bail!("the coordinator stopped reporting before every run finished");
                }
            },
            _ = &mut ctrl_c => return Ok(Ending::Interrupted),
            err = &mut cluster_exit => return Err(err),
        }
    }
    Ok(Ending::Finished)
}

/// After the interrupt: cancelling and shutting down take a moment; a second Ctrl-C means
/// "now".
fn exit_on_second_interrupt() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("rota: interrupted again; exiting now");
            std::process::exit(i32::from(INTERRUPTED));
        }
    });
}

/// The summary, and where to look for failed runs' output.
async fn finish(
    ctx: &Context,
    client: &mut Client,
    plan: &Plan,
    tracker: &Tracker,
    mode: Mode,
    elapsed: Duration,
) -> anyhow::Result<ExitCode> {
    let runs = tracker.runs();
    let failed = summary::failed(&runs);

    // In-process, the logs die with us: fetch the tails now, before shutdown.
    let mut tails = Vec::new();
    if let Mode::Local { .. } = mode {
        for run in failed.iter().filter(|r| summary::has_output(r)) {
            let stderr = match summary::stderr_tail(client, run).await {
                Ok(text) => text,
                Err(e) => format!("(could not read its stderr: {e:#})\n"),
            };
            tails.push(summary::StderrTail {
                number: run.number,
                name: run.name.clone(),
                stderr,
            });
        }
    }

    match ctx.output {
        OutputFormat::Json => {
            let view = summary::RunOutcomeView {
                jobset: plan.jobset.clone(),
                all_succeeded: failed.is_empty(),
                elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                runs: runs
                    .iter()
                    .map(|r| output::views::RunView::from(*r))
                    .collect(),
                stderr_tails: tails,
            };
            output::print(&format!("{}\n", output::to_json(&view)))?;
        }
        OutputFormat::Id => {
            let views: Vec<_> = runs
                .iter()
                .map(|r| output::views::RunView::from(*r))
                .collect();
            output::print(&output::id_lines(&views))?;
        }
        OutputFormat::Table => {
            let mut text = format!("\n{}", summary::table(&runs));
            text.push_str(&summary::outcome_line(&plan.jobset, &runs, elapsed));
            text.push('\n');
            if matches!(mode, Mode::Remote) {
                text.push_str(&summary::log_hints(&failed));
            }
            for tail in &tails {
                if let Some(run) = failed.iter().find(|r| r.number == tail.number) {
                    text.push('\n');
                    text.push_str(&summary::tail_block(run, &tail.stderr));
                }
            }
            output::print(&text)?;
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(parallel: u32) -> Plan {
        Plan {
            jobset: "pipeline".into(),
            parallel,
            specs: Vec::new(),
            groups: Vec::new(),
        }
    }

    fn runs(numbers: &[u64]) -> Tracker {
        Tracker::new(
            numbers
                .iter()
                .map(|&n| Run {
                    id: format!("id{n}"),
                    number: n,
                    state: "pending".into(),
                    ..Default::default()
                })
                .collect(),
        )
    }

    #[test]
    fn submitted_line_names_the_numbers_limit_and_where_runs_go() {
        assert_eq!(
            submitted_line(&plan(4), &runs(&[7, 8, 9]), Mode::Local { slots: 4 }, "x"),
            "pipeline: 3 runs submitted (#7-#9), parallel 4, in-process agent \"local\" with 4 slots"
        );
        assert_eq!(
            submitted_line(&plan(0), &runs(&[1]), Mode::Remote, "http://h:7878"),
            "pipeline: 1 run submitted (#1), parallel unlimited, on http://h:7878"
        );
    }

    #[test]
    fn default_slots_are_at_least_four() {
        assert!(default_slots() >= 4);
    }
}
