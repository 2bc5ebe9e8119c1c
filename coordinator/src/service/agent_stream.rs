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

use crate::engine::{AgentHello, AgentTx, Command, EngineHandle};
use crate::logs::{LogFiles, Stream as LogStream};
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
            Ok(Ok(None)) | Err(_) => {
                return Err(Status::invalid_argument(
                    "no Hello received on the agent stream",
                ))
            }
            Ok(Err(s)) => return Err(s),
        };
        if hello.protocol_version != rota_proto::PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "agent {:?} speaks rota protocol version {}, this coordinator speaks version {}: run the same rota version on both",
                hello.name,
                hello.protocol_version,
                rota_proto::PROTOCOL_VERSION
            )));
        }
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
    tx: AgentTx,
    files: LogFiles,
    /// Bytes stored since the last LogAck, per (run id, attempt).
    unacked: HashMap<(String, u32), u64>,
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

    /// Returns false when the agent said goodbye.
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
            Msg::Started(s) => self.engine.tell(Command::AgentStarted {
                agent: self.agent,
                msg: s,
            }),
            Msg::Log(chunk) => self.store_chunk(chunk),
            Msg::Finished(f) => self.finished(f).await,
            Msg::Goodbye(_) => return false,
            Msg::Hello(_) => {}
        }
        true
    }

    fn store_chunk(&mut self, c: pb::LogChunk) {
        let stream = match pb::LogStream::try_from(c.stream) {
            Ok(pb::LogStream::Stdout) => LogStream::Stdout,
            Ok(pb::LogStream::Stderr) => LogStream::Stderr,
            _ => return,
        };
        let hub = &self.engine.logs;
        // Plain file writes land in the page cache and take microseconds; durability comes
        // from the fsync before the run's result is recorded.
        match hub.write(
            &mut self.files,
            &c.run_id,
            c.attempt,
            stream,
            c.offset,
            &c.data,
        ) {
            Ok(_) => {
                let n = self
                    .unacked
                    .entry((c.run_id.clone(), c.attempt))
                    .or_default();
                *n += c.data.len() as u64;
                if *n >= ACK_EVERY {
                    *n = 0;
                    self.ack(&c.run_id, c.attempt, false);
                }
            }
            Err(e) => tracing::warn!(run = %c.run_id, "log chunk not stored: {e}"),
        }
    }

    async fn finished(&mut self, f: pb::RunFinished) {
        let (run_id, attempt) = (f.run_id.clone(), f.attempt);
        let synced = tokio::task::block_in_place(|| self.files.sync_and_close(&run_id, attempt));
        if let Err(e) = synced {
            // Without a durable log the result must not be recorded; the agent resends it.
            tracing::error!(run = %run_id, "cannot sync log: {e}");
            return;
        }
        self.unacked.remove(&(run_id.clone(), attempt));
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
                    tracing::info!(run = %run_id, attempt, "result refused (stale attempt)");
                }
                self.ack(&run_id, attempt, true);
            }
            Err(e) => tracing::warn!(run = %run_id, "result not recorded: {e}"),
        }
    }

    fn ack(&self, run_id: &str, attempt: u32, finished: bool) {
        let hub = &self.engine.logs;
        self.send(pb::coordinator_message::Msg::LogAck(pb::LogAck {
            run_id: run_id.to_string(),
            attempt,
            stdout_offset: hub.len(run_id, attempt, LogStream::Stdout),
            stderr_offset: hub.len(run_id, attempt, LogStream::Stderr),
            finished,
        }));
    }

    fn send(&self, msg: pb::coordinator_message::Msg) {
        let _ = self.tx.send(Ok(pb::CoordinatorMessage { msg: Some(msg) }));
    }
}
