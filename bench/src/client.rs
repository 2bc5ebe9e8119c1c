//! The bench's side of the wire: a control client sized for 100,000-run replies, run specs,
//! and a Watch follower that stamps every event with the moment it arrived.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rota_proto as pb;
use rota_proto::control_service_client::ControlServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

pub type Control = ControlServiceClient<Channel>;

/// A Submit of 100,000 runs is answered with 100,000 run views: far above tonic's 4 MiB
/// default, so both directions get the coordinator's own limit.
const MAX_MESSAGE: usize = 512 << 20;

pub async fn control(url: &str) -> anyhow::Result<Control> {
    let channel = Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(ControlServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// A run of `argv`, exactly as given (no shell).
pub fn argv(words: &[&str]) -> pb::RunSpec {
    pb::RunSpec {
        command: words.iter().map(|w| w.to_string()).collect(),
        ..Default::default()
    }
}

/// `n` shell runs `true 0` … `true N-1`: a queue of distinct commands, for the workloads that
/// fill one (W4, W11, W12) and are never dispatched.
pub fn distinct_specs(n: u64) -> Vec<pb::RunSpec> {
    (0..n)
        .map(|i| pb::RunSpec {
            command: vec![format!("true {i}")],
            shell: true,
            ..Default::default()
        })
        .collect()
}

pub fn submit_request(jobset: &str, parallel: u32, runs: Vec<pb::RunSpec>) -> pb::SubmitRequest {
    pb::SubmitRequest {
        jobset: jobset.to_string(),
        runs,
        parallel,
    }
}

/// Runs in `state`, by their states' counts in the jobset.
pub async fn jobset_count(control: &mut Control, jobset: &str, state: &str) -> anyhow::Result<u64> {
    let js = control
        .get_jobset(pb::GetJobsetRequest {
            name: jobset.to_string(),
        })
        .await?
        .into_inner();
    Ok(js.counts.get(state).copied().unwrap_or(0))
}

/// Polls the jobset's counts until `n` runs are in `state`.
pub async fn wait_count(
    control: &mut Control,
    jobset: &str,
    state: &str,
    n: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let have = jobset_count(control, jobset, state).await?;
        if have >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{have} of {n} runs of jobset {jobset} are {state} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A run state change as the Watch stream delivered it.
#[derive(Debug)]
pub struct Event {
    pub at: Instant,
    pub run: pb::Run,
}

/// A Watch stream opened before the workload acts, so no change is missed.
pub struct Watcher {
    stream: Streaming<pb::RunEvent>,
}

impl Watcher {
    pub async fn open(control: &mut Control, jobset: &str) -> anyhow::Result<Watcher> {
        let stream = control
            .watch(pb::WatchRequest {
                jobset: jobset.to_string(),
            })
            .await?
            .into_inner();
        Ok(Watcher { stream })
    }

    /// The next event, or an error when none arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> anyhow::Result<Event> {
        match tokio::time::timeout(within, self.stream.message()).await {
            Err(_) => bail!("no run event within {within:?}"),
            Ok(Err(status)) => bail!("watch failed: {status}"),
            Ok(Ok(None)) => bail!("watch ended"),
            Ok(Ok(Some(pb::RunEvent { run: None }))) => bail!("run event without a run"),
            Ok(Ok(Some(pb::RunEvent { run: Some(run) }))) => Ok(Event {
                at: Instant::now(),
                run,
            }),
        }
    }
}

/// True for the states a run ends in.
pub fn is_final(state: &str) -> bool {
    matches!(
        state,
        "success" | "errored" | "cancelled" | "skipped" | "retired"
    )
}

/// What [`probe_dispatch`] saw.
pub struct Probe {
    /// When the Submit returned, since the probe's `since`.
    pub submitted: Duration,
    /// When the run left `pending`, since `since`.
    pub dispatched: Duration,
    /// The run's state in the Submit's reply.
    pub state_in_reply: String,
}

/// Submits one run of `true` to `jobset` and waits until it leaves `pending`. The Watch is
/// opened first, so the dispatch is seen however soon it comes.
pub async fn probe_dispatch(
    control: &mut Control,
    jobset: &str,
    since: Instant,
) -> anyhow::Result<Probe> {
    let mut watcher = Watcher::open(control, jobset).await?;
    let probe = control
        .submit(submit_request(jobset, 0, vec![argv(&["true"])]))
        .await?
        .into_inner()
        .runs
        .remove(0);
    let submitted = since.elapsed();
    let dispatched = if probe.state == "pending" {
        loop {
            let event = watcher.next(Duration::from_secs(60)).await?;
            if event.run.id == probe.id && event.run.state != "pending" {
                break event.at - since;
            }
        }
    } else {
        submitted
    };
    Ok(Probe {
        submitted,
        dispatched,
        state_in_reply: probe.state,
    })
}
