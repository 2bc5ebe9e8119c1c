//! A minimal fake coordinator for the agent's connection tests: it speaks `AgentService`
//! just enough (reads `Hello`, answers with a `Welcome` the test chooses or a refusal, answers
//! heartbeats) and hands every agent message to the test in order. It schedules nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rota_agent::AgentConfig;
use rota_proto::agent_message::Msg;
use rota_proto::agent_service_server::{AgentService, AgentServiceServer};
use rota_proto::coordinator_message::Msg as In;
use rota_proto::{
    AgentMessage, CoordinatorMessage, Hello, LogChunk, LogStream, ResumeRun, RunFinished,
    RunStarted, Welcome,
};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::within;

type Outbound = mpsc::Sender<Result<CoordinatorMessage, Status>>;
type WelcomePolicy = Box<dyn FnMut(&Hello) -> Result<Welcome, Status> + Send>;

/// What the fake saw, in order.
#[derive(Debug)]
pub enum Event {
    /// An agent opened a stream with this `Hello`.
    Hello(Hello),
    /// An agent sent this after its `Hello`.
    Message(Msg),
    /// An agent asked for an artifact's bytes (its inputs' fetch began).
    Fetch(rota_proto::FetchArtifactRequest),
    /// The agent gave up a fetch's stream before it ended.
    FetchDropped,
}

struct Shared {
    welcome: Mutex<WelcomePolicy>,
    current: Mutex<Option<Outbound>>,
    answer_heartbeats: AtomicBool,
    events: mpsc::UnboundedSender<Event>,
}

struct Service(Arc<Shared>);

#[tonic::async_trait]
impl AgentService for Service {
    type ConnectStream = ReceiverStream<Result<CoordinatorMessage, Status>>;
    type FetchArtifactStream = ReceiverStream<Result<rota_proto::ArtifactData, Status>>;

    /// This fake keeps no artifacts: it sends one byte of any and then stalls until the
    /// agent gives up the stream (a fetch that is slow for as long as a test needs).
    async fn fetch_artifact(
        &self,
        request: Request<rota_proto::FetchArtifactRequest>,
    ) -> Result<Response<Self::FetchArtifactStream>, Status> {
        let _ = self.0.events.send(Event::Fetch(request.into_inner()));
        let (tx, rx) = mpsc::channel(1);
        let shared = self.0.clone();
        tokio::spawn(async move {
            let first = rota_proto::ArtifactData {
                data: vec![0u8].into(),
            };
            if tx.send(Ok(first)).await.is_ok() {
                tx.closed().await;
            }
            let _ = shared.events.send(Event::FetchDropped);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn artifact_status(
        &self,
        _: Request<rota_proto::ArtifactStatusRequest>,
    ) -> Result<Response<rota_proto::ArtifactStatusResponse>, Status> {
        Ok(Response::new(rota_proto::ArtifactStatusResponse::default()))
    }

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let shared = self.0.clone();
        let mut inbound = request.into_inner();
        let Some(AgentMessage {
            msg: Some(Msg::Hello(hello)),
        }) = inbound.message().await?
        else {
            return Err(Status::invalid_argument("the first message must be Hello"));
        };
        let welcome = (shared.welcome.lock().unwrap())(&hello);
        let welcome = welcome.inspect_err(|_| {
            let _ = shared.events.send(Event::Hello(hello.clone()));
        })?;
        let (tx, rx) = mpsc::channel(64);
        tx.send(Ok(CoordinatorMessage {
            msg: Some(In::Welcome(welcome)),
        }))
        .await
        .unwrap();
        // Only the test holds the strong sender, so `drop_connection` really ends the stream.
        let weak = tx.downgrade();
        *shared.current.lock().unwrap() = Some(tx);
        // Reported once the test can talk to this connection.
        let _ = shared.events.send(Event::Hello(hello));
        tokio::spawn(async move {
            while let Ok(Some(AgentMessage { msg: Some(msg) })) = inbound.message().await {
                if let Msg::Heartbeat(heartbeat) = &msg {
                    if shared.answer_heartbeats.load(Ordering::SeqCst) {
                        if let Some(tx) = weak.upgrade() {
                            let ack = rota_proto::HeartbeatAck {
                                sent_at_ms: heartbeat.sent_at_ms,
                            };
                            let _ = tx
                                .send(Ok(CoordinatorMessage {
                                    msg: Some(In::HeartbeatAck(ack)),
                                }))
                                .await;
                        }
                    }
                }
                let _ = shared.events.send(Event::Message(msg));
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The fake server and the test's end of it.
pub struct FakeCoordinator {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    events: mpsc::UnboundedReceiver<Event>,
    /// Every run's messages so far, whichever helper consumed them.
    logs: HashMap<String, RunLog>,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeCoordinator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A `Welcome` with a fast heartbeat and a comfortable lease.
pub fn welcome(resume: Vec<ResumeRun>) -> Welcome {
    Welcome {
        agent_id: "agent-1".to_owned(),
        heartbeat_interval_ms: 100,
        lease_ms: 10_000,
        resume,
    }
}

/// What one run sent, reassembled at its offsets (as the real coordinator writes them, so
/// resends are idempotent).
#[derive(Debug, Default, Clone)]
pub struct RunLog {
    pub started: Option<RunStarted>,
    pub chunks: Vec<LogChunk>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub finished: Option<RunFinished>,
}

impl RunLog {
    fn record(&mut self, msg: &Msg) {
        match msg {
            Msg::Started(started) => self.started = Some(started.clone()),
            Msg::Log(chunk) => {
                let target = if chunk.stream == LogStream::Stdout as i32 {
                    &mut self.stdout
                } else {
                    &mut self.stderr
                };
                let start = usize::try_from(chunk.offset).unwrap();
                let end = start + chunk.data.len();
                if target.len() < end {
                    target.resize(end, 0);
                }
                target[start..end].copy_from_slice(&chunk.data);
                self.chunks.push(chunk.clone());
            }
            Msg::Finished(finished) => self.finished = Some(finished.clone()),
            _ => {}
        }
    }

    /// The `RunFinished` (`run_log` only returns finished logs).
    pub fn finished(&self) -> &RunFinished {
        self.finished.as_ref().expect("finished")
    }
}

fn run_id(msg: &Msg) -> Option<&str> {
    match msg {
        Msg::Started(started) => Some(&started.run_id),
        Msg::Log(chunk) => Some(&chunk.run_id),
        Msg::Finished(finished) => Some(&finished.run_id),
        _ => None,
    }
}

impl FakeCoordinator {
    /// Listens on a free local port; every agent is welcomed with `welcome(vec![])`.
    pub async fn start() -> FakeCoordinator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (events_tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            welcome: Mutex::new(Box::new(|_: &Hello| Ok(welcome(Vec::new())))),
            current: Mutex::new(None),
            answer_heartbeats: AtomicBool::new(true),
            events: events_tx,
        });
        let service = AgentServiceServer::new(Service(shared.clone()));
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        FakeCoordinator {
            url,
            events,
            logs: HashMap::new(),
            shared,
            server,
        }
    }

    /// How the next connections are answered.
    pub fn set_welcome(
        &self,
        policy: impl FnMut(&Hello) -> Result<Welcome, Status> + Send + 'static,
    ) {
        *self.shared.welcome.lock().unwrap() = Box::new(policy);
    }

    /// Whether heartbeats get a `HeartbeatAck` (off: the coordinator looks stalled).
    pub fn answer_heartbeats(&self, answer: bool) {
        self.shared
            .answer_heartbeats
            .store(answer, Ordering::SeqCst);
    }

    /// Sends a message on the current connection.
    pub async fn send(&self, msg: In) {
        let tx = self
            .shared
            .current
            .lock()
            .unwrap()
            .clone()
            .expect("an agent is connected");
        tx.send(Ok(CoordinatorMessage { msg: Some(msg) }))
            .await
            .expect("connection open");
    }

    /// Ends the current connection's response stream, as a coordinator restart would.
    pub fn drop_connection(&self) {
        self.shared.current.lock().unwrap().take();
    }

    /// The next event, or a panic at the deadline.
    pub async fn next(&mut self) -> Event {
        let event = within(self.events.recv())
            .await
            .expect("fake coordinator alive");
        self.record(&event);
        event
    }

    /// The next event if one is already there.
    pub fn try_next(&mut self) -> Option<Event> {
        let event = self.events.try_recv().ok()?;
        self.record(&event);
        Some(event)
    }

    fn record(&mut self, event: &Event) {
        if let Event::Message(msg) = event {
            if let Some(run_id) = run_id(msg) {
                self.logs.entry(run_id.to_owned()).or_default().record(msg);
            }
        }
    }

    /// Drops what was collected for a run, to see only what comes next (a resend).
    pub fn forget_log(&mut self, run_id: &str) {
        self.logs.remove(run_id);
    }

    /// Skips events until the next `Hello`.
    pub async fn hello(&mut self) -> Hello {
        self.until(|event| match event {
            Event::Hello(hello) => Some(hello.clone()),
            _ => None,
        })
        .await
    }

    /// Skips events until `pick` returns something.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        loop {
            let event = self.next().await;
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }

    /// Skips events until an agent message `pick` accepts.
    pub async fn message<T>(&mut self, mut pick: impl FnMut(&Msg) -> Option<T>) -> T {
        self.until(|event| match event {
            Event::Message(msg) => pick(msg),
            _ => None,
        })
        .await
    }

    /// Waits for a run's `RunFinished` and returns everything collected for it since the
    /// last `run_log`/`forget_log` of that run.
    pub async fn run_log(&mut self, run_id: &str) -> RunLog {
        while self
            .logs
            .get(run_id)
            .is_none_or(|log| log.finished.is_none())
        {
            self.next().await;
        }
        self.logs.remove(run_id).unwrap()
    }
}

/// An agent (the library's `run`) in a task, with its own spool dir.
pub struct TestAgent {
    pub spool_dir: PathBuf,
    _dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl TestAgent {
    /// Starts an agent named "test-agent" serving group "db" with 2 slots.
    pub fn start(coordinator: &str) -> TestAgent {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let config = AgentConfig {
            coordinator: coordinator.to_owned(),
            name: "test-agent".to_owned(),
            groups: vec!["db".to_owned()],
            slots: 2,
            labels: BTreeMap::from([("zone".to_owned(), "test".to_owned())]),
            spool_dir: spool_dir.clone(),
            work_dir: dir.path().join("work"),
            keep_run_dirs: Duration::from_secs(3600),
            drain_timeout: Duration::from_secs(10),
            access: Default::default(),
            run_as: None,
        };
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(rota_agent::run(config, async move {
            let _ = shutdown_rx.await;
        }));
        TestAgent {
            spool_dir,
            _dir: dir,
            shutdown: Some(shutdown),
            handle,
        }
    }

    /// Resolves the agent's shutdown future (SIGTERM in the binary).
    pub fn shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits for `run` to return.
    pub async fn result(mut self) -> anyhow::Result<()> {
        within(&mut self.handle).await.expect("agent task")
    }

    /// Files in the spool dir other than its lock.
    pub fn spool_files(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.spool_dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name != "lock")
            .collect();
        names.sort();
        names
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
