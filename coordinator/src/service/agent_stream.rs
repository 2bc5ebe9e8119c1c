//! `AgentService.Connect`: one task per agent stream. It checks the handshake, writes log
//! chunks straight to files (log bytes never queue behind control messages in the engine),
//! answers heartbeats, and forwards run reports to the engine.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rota_proto as pb;
use rota_proto::agent_message::Msg;
use tokio::sync::watch;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::{AgentHello, AgentTx, Assigned, Assignment, Command, EngineHandle};
use crate::logs::{LogFiles, RunId, Stream as LogStream};
use crate::sched::AgentId;

/// Acknowledge stored log bytes at least this often (the agent's spool may drop them).
const ACK_EVERY: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct AgentService {
    pub engine: EngineHandle,
    pub shutdown: watch::Receiver<bool>,
}

type OutStream = Pin<Box<dyn Stream<Item = Result<pb::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentService {
    type ConnectStream = OutStream;
    type FetchArtifactStream = super::streams::BoxStream<pb::ArtifactData>;

    async fn artifact_status(
        &self,
        request: Request<pb::ArtifactStatusRequest>,
    ) -> Result<Response<pb::ArtifactStatusResponse>, Status> {
        let req = request.into_inner();
        if !crate::artifacts::is_sha256(&req.sha256) {
            return Err(Status::invalid_argument(format!(
                "artifact digest {:?} is not a lowercase hex SHA-256",
                req.sha256
            )));
        }
        let store = &self.engine.artifacts;
        let stored = store.has(&req.sha256, req.size);
        Ok(Response::new(pb::ArtifactStatusResponse {
            stored,
            partial_len: if stored {
                req.size
            } else {
                store.partial_len(&req.sha256, req.size)
            },
        }))
    }

    async fn fetch_artifact(
        &self,
        request: Request<pb::FetchArtifactRequest>,
    ) -> Result<Response<Self::FetchArtifactStream>, Status> {
        let req = request.into_inner();
        super::artifacts::content(&self.engine.artifacts, &req.sha256, req.offset)
            .map(Response::new)
    }

    async fn connect(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<OutStream>, Status> {
        let mut inbound = request.into_inner();
        let lease = self.engine.config.lease;
        let hello = match crate::awake::timeout(lease, inbound.message()).await {
            Ok(Ok(Some(pb::AgentMessage {
                msg: Some(Msg::Hello(h)),
            }))) => h,
            Ok(Ok(Some(_))) => {
                return Err(Status::invalid_argument(
                    "the first message on the agent stream must be Hello",
                ))
            }
            Ok(Ok(None)) => {
                return Err(Status::invalid_argument(
                    "no Hello received on the agent stream",
                ))
            }
            // Slow, not wrong: the agent retries (INVALID_ARGUMENT would stop it for good).
            Err(_) => {
                return Err(Status::deadline_exceeded(
                    "no Hello received on the agent stream within the lease",
                ))
            }
            Ok(Err(s)) => return Err(s),
        };
        super::validate::hello(&hello)?;
        protocol_matches(
            &hello.name,
            hello.protocol_version,
            rota_proto::PROTOCOL_VERSION,
        )?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let name = hello.name.clone();
        let reply = self
            .engine
            .ask(|r| {
                Command::AgentHello(
                    AgentHello {
                        hello,
                        tx: tx.clone(),
                    },
                    r,
                )
            })
            .await?;
        tracing::info!(agent = %name, id = reply.agent, "agent connected");
        let session = Session {
            engine: self.engine.clone(),
            agent: reply.agent,
            assigned: reply.assigned,
            tx,
            files: LogFiles::default(),
            unacked: HashMap::new(),
        };
        let session_shutdown = self.shutdown.clone();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            session.run(inbound, lease, session_shutdown).await;
            let _ = closed_tx.send(());
        });
        // The outbound stream ends with the session (goodbye, lease, error) or at shutdown,
        // even though the engine still holds a sender until it has processed AgentGone.
        let mut shutdown = self.shutdown.clone();
        let stop = async move {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => {}
                _ = closed_rx => {}
            }
        };
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(rx).take_until(stop),
        )))
    }
}

struct Session {
    engine: EngineHandle,
    agent: AgentId,
    /// The runs this session may report on (kept by the engine).
    assigned: Assigned,
    tx: AgentTx,
    files: LogFiles,
    /// Bytes stored since the last LogAck, per (run id, attempt).
    unacked: HashMap<(RunId, u32), u64>,
}

impl Session {
    async fn run(
        mut self,
        mut inbound: Streaming<pb::AgentMessage>,
        lease: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let lost = loop {
            let next = tokio::select! {
                // Judged on awake time: a coordinator that was itself stopped does not count
                // its own stall against the agent.
                m = crate::awake::timeout(lease, inbound.message()) => m,
                _ = shutdown.wait_for(|s| *s) => break false,
            };
            match next {
                // Silent past its lease: a stalled connection is as good as a dead agent.
                Err(_) => {
                    tracing::warn!(agent = self.agent, "agent silent past its lease: lost");
                    break true;
                }
                Ok(Err(status)) => {
                    tracing::info!(agent = self.agent, "agent stream ended: {status}");
                    break false;
                }
                Ok(Ok(None)) => break false,
                Ok(Ok(Some(pb::AgentMessage { msg: Some(msg) }))) => {
                    if !self.handle(msg).await {
                        break false;
                    }
                }
                Ok(Ok(Some(_))) => {}
            }
        };
        self.engine.tell(Command::AgentGone {
            agent: self.agent,
            lost,
        });
    }

    /// Returns false when the session ends: the agent said goodbye, or a log could not be
    /// stored (the agent reconnects and resends from the stored offsets it is told).
    async fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Heartbeat(h) => {
                self.send(pb::coordinator_message::Msg::HeartbeatAck(
                    pb::HeartbeatAck {
                        sent_at_ms: h.sent_at_ms,
                    },
                ));
                self.engine.tell(Command::AgentHeartbeat {
                    agent: self.agent,
                    draining: h.draining,
                });
            }
            Msg::Started(s) => {
                if self
                    .assigned_run(&s.run_id, s.attempt, "RunStarted")
                    .is_some()
                {
                    self.engine.tell(Command::AgentStarted {
                        agent: self.agent,
                        msg: s,
                    })
                }
            }
            Msg::Log(chunk) => return self.store_chunk(chunk),
            Msg::Artifact(chunk) => return self.store_artifact(chunk),
            Msg::Finished(f) => return self.finished(f).await,
            Msg::Goodbye(_) => return false,
            Msg::Hello(_) => {}
        }
        true
    }

    /// The run a report names, when it is assigned to this session at that attempt; anything
    /// else (another agent's run, a finished run, a stale attempt, a string that is not a run
    /// id) is refused here, logged, and never acknowledged.
    fn assigned_run(&self, run_id: &str, attempt: u32, what: &str) -> Option<(RunId, Assignment)> {
        let id = RunId::parse(run_id)
            .and_then(|id| Some(id).zip(self.assigned.get(&id)))
            .filter(|(_, a)| a.attempt == attempt);
        if id.is_none() {
            tracing::warn!(
                agent = self.agent,
                run = run_id,
                attempt,
                "refused {what}: not a run assigned to this agent at that attempt"
            );
        }
        id
    }

    /// Writes an artifact chunk of a run assigned to this session into the content store.
    /// A bad chunk is refused and logged (the result then records no such artifact); a write
    /// that fails ends the session, as for logs, so the agent resends.
    fn store_artifact(&mut self, c: pb::ArtifactChunk) -> bool {
        if let Err(e) = super::validate::artifact_chunk(&c) {
            tracing::warn!(agent = self.agent, "artifact chunk refused: {e}");
            return true;
        }
        if self
            .assigned_run(&c.run_id, c.attempt, "an artifact chunk")
            .is_none()
        {
            return true;
        }
        let store = &self.engine.artifacts;
        let written = tokio::task::block_in_place(|| {
            store.write(&c.path, &c.sha256, c.size, c.offset, &c.data)
        });
        match written {
            Ok(_) => true,
            Err(crate::artifacts::ArtifactError::Checksum { path, sha256 }) => {
                tracing::warn!(agent = self.agent, run = %c.run_id, %path, %sha256, "artifact refused: its content does not match its digest");
                true
            }
            Err(e) => {
                self.end(format!("artifact of run {} not stored: {e}", c.run_id));
                false
            }
        }
    }

    /// Returns false when the chunk could not be stored: the session ends.
    fn store_chunk(&mut self, c: pb::LogChunk) -> bool {
        let stream = match pb::LogStream::try_from(c.stream) {
            Ok(pb::LogStream::Stdout) => LogStream::Stdout,
            Ok(pb::LogStream::Stderr) => LogStream::Stderr,
            _ => {
                tracing::warn!(agent = self.agent, run = %c.run_id, "refused a log chunk of an unknown stream");
                return true;
            }
        };
        let Some((run, assignment)) = self.assigned_run(&c.run_id, c.attempt, "a log chunk") else {
            return true;
        };
        let hub = &self.engine.logs;
        // Plain file writes land in the page cache and take microseconds; durability comes
        // from the fsync before the run's result is recorded.
        let written = hub.write(
            &mut self.files,
            &run,
            c.attempt,
            stream,
            c.offset,
            &c.data,
            assignment.max_log_bytes,
        );
        match written {
            Ok(_) => {
                let n = self.unacked.entry((run, c.attempt)).or_default();
                *n += c.data.len() as u64;
                if *n >= ACK_EVERY {
                    *n = 0;
                    self.ack(&run, c.attempt, false);
                }
                true
            }
            Err(e) => {
                self.end(format!("log chunk of run {run} not stored: {e}"));
                false
            }
        }
    }

    /// Returns false when the log could not be made whole and durable: the session ends, so
    /// the agent reconnects, keeps its spool and resends from the stored offsets.
    async fn finished(&mut self, f: pb::RunFinished) -> bool {
        if let Err(e) = super::validate::finished(&f) {
            tracing::warn!(agent = self.agent, "result refused: {e}");
            return true;
        }
        let Some((run, _)) = self.assigned_run(&f.run_id, f.attempt, "RunFinished") else {
            return true;
        };
        let attempt = f.attempt;
        let hub = self.engine.logs.clone();
        let whole = tokio::task::block_in_place(|| {
            self.files
                .finish(&hub, &run, attempt, [f.stdout_len, f.stderr_len])
        });
        if let Err(e) = whole {
            // Without a whole, durable log the result must not be recorded.
            self.end(format!("result of run {run} not recorded: {e}"));
            return false;
        }
        self.unacked.remove(&(run, attempt));
        let agent = self.agent;
        match self
            .engine
            .ask(|r| Command::AgentFinished {
                agent,
                msg: f,
                reply: r,
            })
            .await
        {
            Ok(recorded) => {
                if !recorded {
                    tracing::info!(run = %run, attempt, "result refused (stale attempt)");
                }
                self.ack(&run, attempt, true);
            }
            Err(e) => tracing::warn!(run = %run, "result not recorded: {e}"),
        }
        true
    }

    /// Ends the session over a storage failure, telling the agent why.
    fn end(&self, why: String) {
        tracing::error!(
            agent = self.agent,
            "{why}; ending the session, the agent resends"
        );
        let _ = self.tx.send(Err(Status::unavailable(why)));
    }

    fn ack(&self, run: &RunId, attempt: u32, finished: bool) {
        let hub = &self.engine.logs;
        self.send(pb::coordinator_message::Msg::LogAck(pb::LogAck {
            run_id: run.to_string(),
            attempt,
            stdout_offset: hub.len(run, attempt, LogStream::Stdout),
            stderr_offset: hub.len(run, attempt, LogStream::Stderr),
            finished,
        }));
    }

    fn send(&self, msg: pb::coordinator_message::Msg) {
        let _ = self.tx.send(Ok(pb::CoordinatorMessage { msg: Some(msg) }));
    }
}

/// Refuses an agent of another protocol version, naming both and which side to upgrade
/// (docs/operations.md "Upgrades"). 0 is an agent that predates the check: accepted, so a
/// rolling upgrade can go coordinator first.
fn protocol_matches(name: &str, theirs: u32, ours: u32) -> Result<(), Status> {
    if theirs == 0 || theirs == ours {
        return Ok(());
    }
    let upgrade = if theirs < ours {
        "upgrade the agent"
    } else {
        "upgrade the coordinator first"
    };
    Err(Status::failed_precondition(format!(
        "agent {name:?} speaks rota protocol version {theirs}, this coordinator speaks version {ours}: {upgrade}"
    )))
}

#[cfg(test)]
mod protocol_tests {
    use super::protocol_matches;

    #[test]
    fn an_older_agent_is_told_to_upgrade_and_a_newer_one_to_upgrade_the_coordinator() {
        let old = protocol_matches("a", 2, 3).unwrap_err();
        assert_eq!(old.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            old.message(),
            "agent \"a\" speaks rota protocol version 2, this coordinator speaks version 3: upgrade the agent"
        );
        let new = protocol_matches("a", 4, 3).unwrap_err();
        assert!(
            new.message().ends_with(
                "version 4, this coordinator speaks version 3: upgrade the coordinator first"
            ),
            "{}",
            new.message()
        );
    }

    #[test]
    fn the_same_version_and_unknown_zero_are_accepted() {
        assert!(protocol_matches("a", 3, 3).is_ok());
        assert!(protocol_matches("a", 0, 3).is_ok());
    }
}
