//! Shared fixtures for rota's integration and end-to-end tests (docs/style.md rule 13): start a
//! coordinator and agents in-process on `127.0.0.1:0` in a temp dir, or start the real binaries
//! as processes; wait on conditions with a deadline, never on fixed sleeps.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rota_local::cluster::{self, Task};
use rota_proto as pb;
use rota_proto::control_service_client::ControlServiceClient;
use tonic::transport::Channel;

pub mod browser;
pub mod docker;
pub mod http;
pub mod pg;
pub mod procs;
pub mod proxy;
pub mod receiver;
pub mod tools;

pub type Client = ControlServiceClient<Channel>;

/// Polls `check` until it returns Some, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connects a control client to `url`.
pub async fn client(url: &str) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect to coordinator");
    ControlServiceClient::new(channel)
        .max_decoding_message_size(512 << 20)
        .max_encoding_message_size(512 << 20)
}

/// An in-process coordinator on 127.0.0.1:0 (started as `rota run` starts its own:
/// `rota_local::cluster`).
pub struct Coordinator {
    pub addr: SocketAddr,
    pub url: String,
    task: Task,
}

impl Coordinator {
    pub async fn start(
        data_dir: &Path,
        tune: impl FnOnce(&mut rota_coordinator::CoordinatorConfig),
    ) -> Coordinator {
        let mut config = rota_coordinator::CoordinatorConfig::new(data_dir);
        config.retry_backoff = Duration::from_millis(50);
        tune(&mut config);
        let (addr, task) = cluster::start_coordinator(config).await.expect("bind");
        Coordinator {
            addr,
            url: format!("http://{addr}"),
            task,
        }
    }

    /// Stops serving and waits until it has stopped.
    pub async fn stop(&mut self) {
        self.task.stop().await.expect("coordinator result");
    }
}

/// An in-process agent.
pub struct Agent {
    pub name: String,
    task: Task,
}

impl Agent {
    pub fn start(url: &str, name: &str, slots: u32, groups: &[&str], spool: &Path) -> Agent {
        let config = cluster::agent_config(
            url,
            name,
            slots,
            groups.iter().map(|g| g.to_string()).collect(),
            &spool.join(name),
            &spool.join(format!("{name}-work")),
        );
        Agent {
            name: name.to_string(),
            task: cluster::start_agent(config),
        }
    }

    /// Drains and waits for the agent to exit.
    pub async fn stop(&mut self) {
        self.task.stop().await.expect("agent result");
    }
}

/// A coordinator and agents in one temp dir.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub coordinator: Coordinator,
    pub agents: Vec<Agent>,
}

impl Cluster {
    /// A coordinator with no agents yet.
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let coordinator = Coordinator::start(&dir.path().join("data"), |_| {}).await;
        Cluster {
            dir,
            coordinator,
            agents: vec![],
        }
    }

    pub fn add_agent(&mut self, name: &str, slots: u32, groups: &[&str]) {
        let spool = self.dir.path().join("spool");
        self.agents.push(Agent::start(
            &self.coordinator.url,
            name,
            slots,
            groups,
            &spool,
        ));
    }

    pub async fn client(&self) -> Client {
        client(&self.coordinator.url).await
    }

    /// Waits until `n` agents are connected.
    pub async fn wait_agents(&self, n: usize) {
        let mut c = self.client().await;
        eventually(Duration::from_secs(10), "agents to connect", || {
            let mut c = c.clone();
            async move {
                let agents = c
                    .list_agents(pb::ListAgentsRequest {})
                    .await
                    .ok()?
                    .into_inner()
                    .agents;
                (agents.iter().filter(|a| a.state == "connected").count() >= n).then_some(())
            }
        })
        .await;
        let _ = &mut c;
    }

    pub async fn stop(mut self) {
        for a in &mut self.agents {
            a.stop().await;
        }
        self.coordinator.stop().await;
    }
}

/// A RunSpec for a shell command.
pub fn sh(name: &str, command: &str) -> pb::RunSpec {
    pb::RunSpec {
        name: name.to_string(),
        command: vec![command.to_string()],
        shell: true,
        ..Default::default()
    }
}

/// Submits `runs` as one batch to `jobset` (created unlimited if new); returns the runs.
pub async fn submit(c: &mut Client, jobset: &str, runs: Vec<pb::RunSpec>) -> Vec<pb::Run> {
    c.submit(pb::SubmitRequest {
        jobset: jobset.to_string(),
        runs,
        parallel: 0,
    })
    .await
    .expect("submit")
    .into_inner()
    .runs
}

/// Waits until every run of `jobset` is final; returns them.
pub async fn wait_jobset(c: &mut Client, jobset: &str, deadline: Duration) -> pb::WaitResponse {
    tokio::time::timeout(
        deadline,
        c.wait(pb::WaitRequest {
            runs: vec![],
            jobset: jobset.to_string(),
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("jobset {jobset} did not finish within {deadline:?}"))
    .expect("wait")
    .into_inner()
}

/// The first run (of any jobset, newest first as listed) that satisfies `ok`, once one does.
pub async fn eventually_run(
    c: &Client,
    deadline: Duration,
    what: &str,
    ok: impl Fn(&pb::Run) -> bool,
) -> pb::Run {
    eventually(deadline, what, || {
        let mut c = c.clone();
        let ok = &ok;
        async move {
            let runs = c
                .list_runs(pb::ListRunsRequest::default())
                .await
                .ok()?
                .into_inner()
                .runs;
            runs.into_iter().find(|r| ok(r))
        }
    })
    .await
}

/// Path of a file in the test's temp dir.
pub fn path_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// `len` deterministic pseudo-random bytes (xorshift64*): reproducible test data that is not
/// valid UTF-8 and that a misplaced or repeated chunk cannot match by accident.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Largest number of `[start, finish)` intervals that overlap at any instant: the observed
/// concurrency of a set of runs, from their recorded times.
pub fn max_overlap(intervals: &[(u64, u64)]) -> usize {
    let mut edges: Vec<(u64, i32)> = intervals
        .iter()
        .flat_map(|&(s, f)| [(s, 1), (f, -1)])
        .collect();
    // At equal times, a finish (-1) sorts first: it frees its slot before a start takes it.
    edges.sort();
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

/// A run's stored stdout, as text.
pub async fn stdout_of(c: &mut Client, run: &str) -> String {
    let mut s = c
        .logs(pb::LogsRequest {
            run: run.into(),
            follow: false,
            stdout: true,
            stderr: false,
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await.expect("log chunk") {
        out.extend(m.data);
    }
    String::from_utf8(out).expect("utf-8 stdout")
}

/// A hand-driven agent: speaks `AgentService.Connect` directly (not rota-agent), so a test can
/// send any report, crafted or honest, and see exactly what the coordinator answers.
pub struct RawAgent {
    tx: tokio::sync::mpsc::Sender<pb::AgentMessage>,
    rx: tonic::Streaming<pb::CoordinatorMessage>,
}

impl RawAgent {
    /// Connects and says Hello as `name` with `slots`; returns once the Welcome arrived.
    pub async fn connect(url: &str, name: &str, slots: u32) -> RawAgent {
        let hello = pb::Hello {
            name: name.into(),
            slots,
            protocol_version: rota_proto::PROTOCOL_VERSION,
            session_id: format!("raw-{name}"),
            ..Default::default()
        };
        RawAgent::hello(url, hello)
            .await
            .unwrap_or_else(|s| panic!("agent stream refused: {s}"))
    }

    /// Connects and sends this Hello; the refusal, if the coordinator refuses it, else the
    /// agent once the Welcome arrived.
    pub async fn hello(url: &str, hello: pb::Hello) -> Result<RawAgent, tonic::Status> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_string())
            .expect("url")
            .connect()
            .await
            .expect("connect to coordinator");
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tx.send(pb::AgentMessage {
            msg: Some(pb::agent_message::Msg::Hello(hello)),
        })
        .await
        .expect("queue hello");
        let rx = client
            .connect(tokio_stream::wrappers::ReceiverStream::new(out))
            .await?
            .into_inner();
        let mut agent = RawAgent { tx, rx };
        match agent.next(Duration::from_secs(10)).await {
            Some(pb::coordinator_message::Msg::Welcome(_)) => Ok(agent),
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    pub async fn send(&self, msg: pb::agent_message::Msg) {
        self.tx
            .send(pb::AgentMessage { msg: Some(msg) })
            .await
            .expect("agent stream open");
    }

    /// The next message within `deadline`; None when the stream ended or nothing came.
    pub async fn next(&mut self, deadline: Duration) -> Option<pb::coordinator_message::Msg> {
        match tokio::time::timeout(deadline, self.rx.message()).await {
            Ok(Ok(Some(m))) => m.msg,
            _ => None,
        }
    }

    /// Waits for the next Assign, skipping heartbeat acks.
    pub async fn assigned(&mut self) -> pb::Assign {
        loop {
            match self.next(Duration::from_secs(10)).await {
                Some(pb::coordinator_message::Msg::Assign(a)) => return a,
                Some(pb::coordinator_message::Msg::HeartbeatAck(_)) => {}
                other => panic!("expected Assign, got {other:?}"),
            }
        }
    }
}
