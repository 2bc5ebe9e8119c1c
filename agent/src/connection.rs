//! One `Connect` stream to the coordinator, from `Hello` to its end.
//!
//! Outbound messages go through two channels merged with a biased select: a small priority
//! channel for `Hello`, `Heartbeat` and `Goodbye`, and a bounded, ordered data channel for
//! `RunStarted`, `LogChunk` and `RunFinished` (one sender task per run feeds it, see
//! [`crate::sender`]). So a heartbeat never waits behind megabytes of log, and the data
//! channel's bound is the backpressure that keeps memory small.
//!
//! The connection is dead when nothing at all arrives for the lease: a stalled TCP connection
//! does not close by itself, and the coordinator answers every heartbeat.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rota_proto as pb;
use rota_proto::agent_message::Msg as Out;
use rota_proto::agent_service_client::AgentServiceClient;
use rota_proto::coordinator_message::Msg as In;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tonic::{Code, Status, Streaming};

use crate::sender::{send_run, SendError};
use crate::spool::{SpoolReader, Stream as LogStream};
use crate::state::{wait_true, Agent, SendJob};
use crate::RunKey;

/// Time allowed for the TCP (and HTTP/2) connection to come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed from opening the stream to receiving `Welcome`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for the coordinator to close its side after our `Goodbye`.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(3);
/// Used when a `Welcome` leaves the heartbeat interval at 0.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// Used when a `Welcome` leaves the lease at 0.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Log messages queued per connection at most (each up to 64 KiB): the memory bound.
const DATA_QUEUE: usize = 8;
/// Control messages queued at most; a heartbeat that finds it full is skipped.
const PRIORITY_QUEUE: usize = 4;
/// Unacknowledged heartbeats remembered, to tell when the coordinator last heard us.
const MAX_UNACKED_HEARTBEATS: usize = 64;

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The drain is complete (and `Goodbye` was sent if a connection was up).
    Drained,
    /// Retrying cannot help: a permanent refusal (see `status_ended`) or a malformed URL.
    Fatal(String),
    /// Try again after a backoff; `welcomed` resets the backoff.
    Lost { reason: String, welcomed: bool },
}

fn lost(reason: impl Into<String>, welcomed: bool) -> Ended {
    Ended::Lost {
        reason: reason.into(),
        welcomed,
    }
}

/// Connects, handshakes and serves one stream until it ends or the drain is complete.
pub(crate) async fn serve(agent: &Arc<Agent>) -> Ended {
    let mut drained = agent.drain_done();
    // The Hello goes out after this: a Welcome proves the coordinator heard us since.
    let hello_sent = Instant::now();
    let handshake = tokio::select! {
        handshake = handshake(agent) => handshake,
        () = wait_true(&mut drained) => return Ended::Drained,
    };
    let (inbound, welcome, queues, fetcher) = match handshake {
        Ok(handshake) => handshake,
        Err(ended) => return ended,
    };
    agent.set_connected();
    let (fetched_tx, fetched) = mpsc::channel(FETCH_QUEUE);
    let connection = Connection {
        fetcher,
        fetched_tx,
        agent: agent.clone(),
        priority: queues.priority,
        data: queues.data,
        senders: JoinSet::new(),
        by_run: HashMap::new(),
        fetching: HashMap::new(),
        lease: DEFAULT_LEASE,
        heartbeats: VecDeque::new(),
    };
    connection
        .serve(inbound, welcome, hello_sent, drained, fetched)
        .await
}

/// The sending ends of a connection's two outbound queues.
struct Queues {
    priority: mpsc::Sender<pb::AgentMessage>,
    data: mpsc::Sender<pb::AgentMessage>,
}

/// A run's `Assign` once its inputs are fetched (or why they could not be).
type Fetched = (pb::Assign, Result<Option<std::path::PathBuf>, String>);

/// Assigns whose inputs are fetched, queued for the connection at most.
const FETCH_QUEUE: usize = 16;

async fn handshake(
    agent: &Agent,
) -> Result<
    (
        Streaming<pb::CoordinatorMessage>,
        pb::Welcome,
        Queues,
        crate::artifacts::Client,
    ),
    Ended,
> {
    let url = agent.coordinator();
    let endpoint = agent
        .config
        .access
        .endpoint(url)
        .map_err(Ended::Fatal)?
        .connect_timeout(CONNECT_TIMEOUT);
    let bearer = agent.config.access.bearer().map_err(Ended::Fatal)?;
    let channel = endpoint.connect().await.map_err(|err| {
        lost(
            format!(
                "cannot connect to {url}: {}",
                rota_proto::errors::chain(&err)
            ),
            false,
        )
    })?;

    let (priority, priority_rx) = mpsc::channel(PRIORITY_QUEUE);
    let (data, data_rx) = mpsc::channel(DATA_QUEUE);
    let hello = agent.hello();
    tracing::debug!(held = hello.held.len(), "sending Hello");
    priority
        .try_send(message(Out::Hello(hello)))
        .expect("a new priority queue has room for the Hello");

    let mut client = AgentServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(4 * rota_proto::ARTIFACT_CHUNK);
    let fetcher = client.clone();
    let welcome = async {
        let response = client
            .connect(outbound(priority_rx, data_rx))
            .await
            .map_err(|status| status_ended(agent, status, false))?;
        let mut inbound = response.into_inner();
        match inbound.message().await {
            Ok(Some(pb::CoordinatorMessage {
                msg: Some(In::Welcome(welcome)),
            })) => Ok((inbound, welcome)),
            Ok(Some(other)) => Err(lost(
                format!("expected Welcome, got {}", kind(&other)),
                false,
            )),
            Ok(None) => Err(lost(
                "the coordinator closed the stream before Welcome",
                false,
            )),
            Err(status) => Err(status_ended(agent, status, false)),
        }
    };
    let (inbound, welcome) = tokio::time::timeout(WELCOME_TIMEOUT, welcome)
        .await
        .map_err(|_| {
            lost(
                format!("no Welcome from {url} within {WELCOME_TIMEOUT:?}"),
                false,
            )
        })??;
    Ok((inbound, welcome, Queues { priority, data }, fetcher))
}

/// The outbound stream: priority messages first whenever there are any.
fn outbound(
    priority: mpsc::Receiver<pb::AgentMessage>,
    data: mpsc::Receiver<pb::AgentMessage>,
) -> impl Stream<Item = pb::AgentMessage> + Send + 'static {
    futures::stream::unfold((priority, data), |(mut priority, mut data)| async move {
        let msg = tokio::select! {
            biased;
            Some(msg) = priority.recv() => msg,
            Some(msg) = data.recv() => msg,
            else => return None,
        };
        Some((msg, (priority, data)))
    })
}

/// A welcomed connection.
struct Connection {
    agent: Arc<Agent>,
    /// For `FetchArtifact`: the same channel and token as the stream.
    fetcher: crate::artifacts::Client,
    /// Where the fetch tasks hand back their runs' `Assign`s.
    fetched_tx: mpsc::Sender<Fetched>,
    priority: mpsc::Sender<pb::AgentMessage>,
    data: mpsc::Sender<pb::AgentMessage>,
    /// One log sender per run; dropping the set (connection end) aborts them all.
    senders: JoinSet<()>,
    by_run: HashMap<RunKey, AbortHandle>,
    /// Runs whose inputs are being fetched: a cancel meanwhile stops the fetch, and the run
    /// ends cancelled without its command ever starting.
    fetching: HashMap<RunKey, (AbortHandle, std::path::PathBuf)>,
    /// The lease the coordinator announced in `Welcome`.
    lease: Duration,
    /// Heartbeats not yet acknowledged: (`sent_at_ms`, when sent), oldest first.
    heartbeats: VecDeque<(u64, Instant)>,
}

impl Connection {
    async fn serve(
        mut self,
        mut inbound: Streaming<pb::CoordinatorMessage>,
        welcome: pb::Welcome,
        hello_sent: Instant,
        mut drained: watch::Receiver<bool>,
        mut fetched: mpsc::Receiver<Fetched>,
    ) -> Ended {
        let heartbeat_every = millis_or(welcome.heartbeat_interval_ms, DEFAULT_HEARTBEAT);
        let lease = millis_or(welcome.lease_ms, DEFAULT_LEASE);
        self.lease = lease;
        self.agent.contact(hello_sent, lease);
        tracing::info!(
            coordinator = %self.agent.coordinator(),
            agent_id = %welcome.agent_id,
            ?heartbeat_every,
            ?lease,
            resumed = welcome.resume.len(),
            "connected"
        );
        for job in self.agent.resume(&welcome) {
            self.start_sender(job);
        }
        let mut draining = self.agent.draining();
        let mut told_draining = false;
        let mut last_heard = Instant::now();
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(msg)) => {
                        last_heard = Instant::now();
                        self.handle(msg);
                    }
                    Ok(None) => return lost("the coordinator closed the stream", true),
                    Err(status) => return status_ended(&self.agent, status, true),
                },
                () = tokio::time::sleep_until(last_heard + lease) => {
                    return lost(format!("nothing heard from the coordinator for {lease:?}"), true);
                }
                _ = heartbeat.tick() => self.heartbeat(),
                () = wait_true(&mut draining), if !told_draining => {
                    told_draining = true;
                    self.heartbeat();
                }
                Some(result) = self.senders.join_next(), if !self.senders.is_empty() => reap(result),
                Some((assign, inputs)) = fetched.recv() => {
                    // Not fetching any more: cancelled meanwhile (and already reported).
                    let key = RunKey::new(assign.run_id.clone(), assign.attempt);
                    if self.fetching.remove(&key).is_some() {
                        if let Some(job) = self.agent.assign(assign, inputs) {
                            self.start_sender(job);
                        }
                    }
                }
                () = wait_true(&mut drained) => return self.goodbye(inbound).await,
            }
        }
    }

    fn handle(&mut self, msg: pb::CoordinatorMessage) {
        match msg.msg {
            Some(In::Assign(assign)) if !assign.inputs.is_empty() => {
                // Fetched off the connection's loop; the run starts once its inputs are here.
                // A connection lost meanwhile drops the task: the coordinator reassigns.
                let key = RunKey::new(assign.run_id.clone(), assign.attempt);
                if self.fetching.contains_key(&key) {
                    tracing::warn!(run = %key, "duplicate assign ignored");
                    return;
                }
                let mut client = self.fetcher.clone();
                let staging = self.agent.staging(&assign);
                let done = self.fetched_tx.clone();
                let staged = staging.clone();
                let fetch = self.senders.spawn(async move {
                    let inputs =
                        crate::artifacts::fetch(&mut client, &assign.inputs, &staging).await;
                    let _ = done.send((assign, inputs.map(|()| Some(staging)))).await;
                });
                self.fetching.insert(key, (fetch, staged));
            }
            Some(In::Assign(assign)) => {
                if let Some(job) = self.agent.assign(assign, Ok(None)) {
                    self.start_sender(job);
                }
            }
            Some(In::Cancel(cancel)) => {
                let key = RunKey::new(cancel.run_id, cancel.attempt);
                if let Some((fetch, staging)) = self.fetching.remove(&key) {
                    fetch.abort();
                    let _ = std::fs::remove_dir_all(&staging);
                    if let Some(job) = self.agent.cancelled_before_start(key) {
                        self.start_sender(job);
                    }
                    return;
                }
                self.agent
                    .cancel(&key, Duration::from_millis(cancel.grace_ms));
            }
            Some(In::LogAck(ack)) => {
                if self.agent.ack(&ack) {
                    if let Some(sender) = self.by_run.remove(&RunKey::new(ack.run_id, ack.attempt))
                    {
                        sender.abort();
                    }
                }
            }
            Some(In::Drain(drain)) => {
                tracing::info!(
                    timeout_ms = drain.timeout_ms,
                    "coordinator asked this agent to drain"
                );
                self.agent.request_drain(
                    (drain.timeout_ms > 0).then(|| Duration::from_millis(drain.timeout_ms)),
                );
            }
            Some(In::HeartbeatAck(ack)) => {
                // Acks come in order; older unanswered heartbeats were lost with nothing to do.
                if let Some(i) = self
                    .heartbeats
                    .iter()
                    .position(|(ms, _)| *ms == ack.sent_at_ms)
                {
                    let (_, sent) = self.heartbeats[i];
                    self.heartbeats.drain(..=i);
                    self.agent.contact(sent, self.lease);
                }
            }
            Some(In::Welcome(_)) => tracing::warn!("unexpected second Welcome ignored"),
            None => tracing::debug!("empty coordinator message ignored"),
        }
    }

    fn start_sender(&mut self, job: SendJob) {
        let key = job.run.key().clone();
        let readers = LogStream::BOTH
            .map(|stream| SpoolReader::new(self.agent.spool().log_path(&key, stream)));
        let data = self.data.clone();
        let status = Some(self.fetcher.clone());
        let sender = self.senders.spawn(async move {
            let key = job.run.key().clone();
            match send_run(job.run, job.from, job.announce, readers, data, status).await {
                Ok(()) | Err(SendError::Closed) => {}
                Err(err) => tracing::error!(run = %key, %err, "cannot send the run's log"),
            }
        });
        if let Some(previous) = self.by_run.insert(key, sender) {
            previous.abort();
        }
    }

    fn heartbeat(&mut self) {
        let draining = *self.agent.draining().borrow();
        let sent_at_ms = rota_proto::clock::now_millis();
        let heartbeat = pb::Heartbeat {
            sent_at_ms,
            draining,
        };
        let queued_at = Instant::now();
        if self
            .priority
            .try_send(message(Out::Heartbeat(heartbeat)))
            .is_err()
        {
            tracing::debug!("heartbeat skipped: the outbound queue is full");
            return;
        }
        // Bounded: a coordinator that answers nothing leaves at most this many behind.
        if self.heartbeats.len() >= MAX_UNACKED_HEARTBEATS {
            self.heartbeats.pop_front();
        }
        self.heartbeats.push_back((sent_at_ms, queued_at));
    }

    /// Sends `Goodbye`, ends our side of the stream and gives the coordinator a moment to
    /// close its side.
    async fn goodbye(mut self, mut inbound: Streaming<pb::CoordinatorMessage>) -> Ended {
        tracing::info!("drain complete: saying goodbye");
        let goodbye = message(Out::Goodbye(pb::Goodbye {
            reason: "agent drained".to_owned(),
        }));
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, self.priority.send(goodbye)).await;
        self.senders.shutdown().await;
        drop(self.priority);
        drop(self.data);
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
        Ended::Drained
    }
}

fn reap(result: Result<(), JoinError>) {
    if let Err(err) = result {
        if err.is_panic() {
            tracing::error!(%err, "a log sender panicked");
        }
    }
}

/// Refusals that retrying cannot change end the agent with the coordinator's words: a token it
/// does not accept (UNAUTHENTICATED) or one that may not connect (PERMISSION_DENIED), another
/// protocol version (FAILED_PRECONDITION), and a `Hello` it refuses (INVALID_ARGUMENT before
/// `Welcome`: a bad name, zero slots). Everything else is retried.
fn status_ended(agent: &Agent, status: Status, welcomed: bool) -> Ended {
    let coordinator = agent.coordinator();
    match status.code() {
        Code::Unauthenticated => Ended::Fatal(format!(
            "coordinator {coordinator} refused this agent's token: {}",
            status.message()
        )),
        Code::PermissionDenied | Code::FailedPrecondition => Ended::Fatal(format!(
            "coordinator {coordinator} refused this agent: {}",
            status.message()
        )),
        Code::InvalidArgument if !welcomed => Ended::Fatal(format!(
            "coordinator {coordinator} refused this agent: {}",
            status.message()
        )),
        Code::AlreadyExists => {
            // Transient: another live session holds this name, which may be this agent's own
            // previous session until the coordinator declares it lost.
            tracing::warn!(
                message = status.message(),
                "coordinator refused this agent's name for now; retrying with backoff"
            );
            lost(
                format!("{:?}: {}", status.code(), status.message()),
                welcomed,
            )
        }
        code => lost(format!("{code:?}: {}", status.message()), welcomed),
    }
}

fn message(msg: Out) -> pb::AgentMessage {
    pb::AgentMessage { msg: Some(msg) }
}

fn kind(msg: &pb::CoordinatorMessage) -> &'static str {
    match &msg.msg {
        Some(In::Welcome(_)) => "Welcome",
        Some(In::Assign(_)) => "Assign",
        Some(In::Cancel(_)) => "Cancel",
        Some(In::LogAck(_)) => "LogAck",
        Some(In::Drain(_)) => "Drain",
        Some(In::HeartbeatAck(_)) => "HeartbeatAck",
        None => "an empty message",
    }
}

fn millis_or(ms: u64, default: Duration) -> Duration {
    if ms == 0 {
        default
    } else {
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    fn heartbeat() -> pb::AgentMessage {
        message(Out::Heartbeat(pb::Heartbeat {
            sent_at_ms: 1,
            draining: false,
        }))
    }

    fn chunk(offset: u64) -> pb::AgentMessage {
        message(Out::Log(pb::LogChunk {
            offset,
            ..pb::LogChunk::default()
        }))
    }

    #[tokio::test]
    async fn a_heartbeat_overtakes_queued_log_chunks_but_chunks_keep_their_order() {
        let (priority, priority_rx) = mpsc::channel(PRIORITY_QUEUE);
        let (data, data_rx) = mpsc::channel(DATA_QUEUE);
        for offset in 0..4 {
            data.send(chunk(offset)).await.unwrap();
        }
        priority.send(heartbeat()).await.unwrap();
        drop((priority, data));

        let sent: Vec<pb::AgentMessage> = outbound(priority_rx, data_rx).collect().await;

        assert_eq!(sent[0], heartbeat());
        assert_eq!(sent[1..], [chunk(0), chunk(1), chunk(2), chunk(3)]);
    }
}
