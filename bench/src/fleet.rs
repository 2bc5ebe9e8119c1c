//! Lightweight agents for W6: many agent streams from this one process, each on its own TCP
//! connection like a real agent on its own machine, saying `Hello` and then heartbeating at the
//! interval `Welcome` gives, and never taking work (they run nothing, so the coordinator sees
//! idle agents). A real agent process per stream would measure 1,000 processes on 2 cores,
//! not the coordinator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use rota_proto as pb;
use rota_proto::agent_message::Msg as Out;
use rota_proto::agent_service_client::AgentServiceClient;
use rota_proto::coordinator_message::Msg as In;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// Handshakes in flight at once: a burst of 1,000 SYNs would overflow the listen backlog.
const CONNECTING_AT_ONCE: usize = 64;

/// Counters the agents keep, read by the workload.
#[derive(Debug, Default)]
pub struct Counts {
    pub welcomed: AtomicUsize,
    pub heartbeats: AtomicUsize,
    pub failed: AtomicUsize,
}

/// A running fleet; dropping it ends every stream.
pub struct Fleet {
    pub counts: Arc<Counts>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Fleet {
    /// Starts `n` agents named `PREFIX-0000`…; they connect in the background.
    pub fn start(url: &str, prefix: &str, n: usize) -> Fleet {
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = watch::channel(false);
        let (error_tx, errors) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
        let mut tasks = JoinSet::new();
        for i in 0..n {
            let agent = FleetAgent {
                url: url.to_string(),
                name: format!("{prefix}-{i:04}"),
                // Spread the heartbeats over the interval, as independent machines would.
                phase: i as f64 / n as f64,
                counts: counts.clone(),
            };
            let (gate, stopped, error_tx) = (gate.clone(), stopped.clone(), error_tx.clone());
            tasks.spawn(async move {
                if let Err(e) = agent.run(gate, stopped).await {
                    agent.counts.failed.fetch_add(1, Ordering::Relaxed);
                    let _ = error_tx.send(format!("{}: {e:#}", agent.name));
                }
            });
        }
        Fleet {
            counts,
            stop,
            tasks,
            errors,
        }
    }

    /// The first error an agent ended with, if any.
    pub fn first_error(&mut self) -> Option<String> {
        self.errors.try_recv().ok()
    }

    /// Ends every stream and waits for the tasks.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

struct FleetAgent {
    url: String,
    name: String,
    phase: f64,
    counts: Arc<Counts>,
}

impl FleetAgent {
    async fn run(
        &self,
        gate: Arc<Semaphore>,
        mut stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let permit = gate.acquire_owned().await?;
        let channel = Endpoint::from_shared(self.url.clone())?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        let (tx, rx) = mpsc::channel(4);
        tx.send(message(Out::Hello(pb::Hello {
            name: self.name.clone(),
            groups: vec![],
            slots: 1,
            labels: Default::default(),
            protocol_version: rota_proto::PROTOCOL_VERSION,
            held: vec![],
            session_id: format!("bench-{}-{}", std::process::id(), self.name),
        })))
        .await?;
        let mut inbound = AgentServiceClient::new(channel)
            .connect(ReceiverStream::new(rx))
            .await?
            .into_inner();
        let welcome = match inbound.message().await? {
            Some(pb::CoordinatorMessage {
                msg: Some(In::Welcome(w)),
            }) => w,
            other => bail!("expected Welcome, got {other:?}"),
        };
        drop(permit);
        self.counts.welcomed.fetch_add(1, Ordering::Relaxed);
        let every = Duration::from_millis(welcome.heartbeat_interval_ms.max(100));
        let mut beat = interval_at(Instant::now() + every.mul_f64(self.phase), every);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    tx.send(message(Out::Heartbeat(pb::Heartbeat {
                        sent_at_ms: unix_millis(),
                        draining: false,
                    })))
                    .await?;
                    self.counts.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                msg = inbound.message() => match msg? {
                    Some(pb::CoordinatorMessage { msg: Some(In::Assign(a)) }) => {
                        bail!("an idle fleet agent was assigned run {}", a.run_id)
                    }
                    Some(_) => {}
                    None => bail!("the coordinator closed the stream"),
                },
                _ = stopped.changed() => return Ok(()),
            }
        }
    }
}

fn message(msg: Out) -> pb::AgentMessage {
    pb::AgentMessage { msg: Some(msg) }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
