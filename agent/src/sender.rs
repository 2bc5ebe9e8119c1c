//! Sends one run's log to one connection: `RunStarted`, then `LogChunk`s read from the spool
//! from the given offsets up to the spooled lengths, following them as they grow, then
//! `RunFinished` once the outcome is known and everything up to its final lengths is queued.
//!
//! The first send and a resend after a reconnect are the same code with other start offsets.
//! Everything goes through the connection's bounded, ordered data channel, so a run's chunks
//! precede its `RunFinished`, and a 200 MB log never sits in memory: the sender waits for room
//! before it reads the next chunk.

use bytes::Bytes;
use rota_proto as pb;
use tokio::sync::mpsc;

use crate::runner::{Outcome, Run};
use crate::spool::{SpoolReader, Stream};
use crate::RunKey;

/// Largest `LogChunk`: big enough that a 200 MB log is 200 messages, not 3,200, and well
/// under the coordinator's 16 MiB message limit; the connection's data queue holds at most a
/// few of them.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Why a sender stopped before `RunFinished`.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection is gone; the next one resends from the acknowledged offsets.
    #[error("connection closed")]
    Closed,
    /// The spool file could not be read.
    #[error("cannot read the spool of run {run}: {source}")]
    Spool {
        /// The run whose spool failed.
        run: RunKey,
        /// The OS error.
        source: std::io::Error,
    },
    /// The run's supervisor vanished without an outcome (runtime shutting down).
    #[error("run {0} stopped without an outcome")]
    NoOutcome(RunKey),
}

/// Sends `run`'s log from `from` (stdout, stderr offsets) into `out`, then its artifacts and
/// its `RunFinished`. With `announce`, a `RunStarted` goes first (if the process started at
/// all). With `status`, artifact bytes the coordinator already holds are not sent again.
pub async fn send_run(
    run: Run,
    from: [u64; 2],
    announce: bool,
    readers: [SpoolReader; 2],
    out: mpsc::Sender<pb::AgentMessage>,
    status: Option<crate::artifacts::Client>,
) -> Result<(), SendError> {
    let key = run.key().clone();
    let send = |msg: pb::agent_message::Msg| {
        let out = out.clone();
        async move {
            out.send(pb::AgentMessage { msg: Some(msg) })
                .await
                .map_err(|_| SendError::Closed)
        }
    };
    if announce {
        if let Some(pid) = run.pid() {
            send(pb::agent_message::Msg::Started(pb::RunStarted {
                run_id: key.run_id.clone(),
                attempt: key.attempt,
                pid,
            }))
            .await?;
        }
    }
    let mut sent = from;
    let mut readers = readers;
    let mut progress = run.progress();
    loop {
        let snapshot = progress.borrow_and_update().clone();
        for (i, stream) in Stream::BOTH.into_iter().enumerate() {
            let len = snapshot.len(stream);
            while sent[i] < len {
                let data = match &snapshot.recent[i] {
                    // Caught up: the unsent bytes are exactly the piece just spooled.
                    Some(piece)
                        if piece.offset == sent[i]
                            && piece.offset + piece.data.len() as u64 == len =>
                    {
                        piece.data.clone()
                    }
                    _ => {
                        let want = usize::try_from(len - sent[i])
                            .unwrap_or(usize::MAX)
                            .min(CHUNK_SIZE);
                        let data = readers[i].read_at(sent[i], want).map_err(|source| {
                            SendError::Spool {
                                run: key.clone(),
                                source,
                            }
                        })?;
                        Bytes::from(data)
                    }
                };
                let n = data.len() as u64;
                let chunk = pb::LogChunk {
                    run_id: key.run_id.clone(),
                    attempt: key.attempt,
                    stream: stream.to_proto().into(),
                    offset: sent[i],
                    data,
                };
                send(pb::agent_message::Msg::Log(chunk)).await?;
                sent[i] += n;
            }
        }
        if let Some(outcome) = snapshot.outcome {
            // The outcome's lengths are final and were part of this snapshot: all is queued.
            // Artifacts go after the log and before the result, which lists them.
            let sent = crate::artifacts::send(&key, &outcome.artifacts, &out, status)
                .await
                .map_err(|()| SendError::Closed)?;
            let mut msg = finished(&key, outcome);
            msg.artifacts = sent;
            return send(pb::agent_message::Msg::Finished(msg)).await;
        }
        if progress.changed().await.is_err() && progress.borrow().outcome.is_none() {
            return Err(SendError::NoOutcome(key));
        }
    }
}

fn finished(key: &RunKey, outcome: Outcome) -> pb::RunFinished {
    let return_data = outcome.return_data.unwrap_or_default();
    pb::RunFinished {
        return_data_file: return_data.file,
        return_data: return_data.data,
        return_data_problem: return_data.problem,
        run_id: key.run_id.clone(),
        attempt: key.attempt,
        exit_code: outcome.exit_code,
        signal: outcome.signal,
        error: outcome.error,
        stdout_len: outcome.stdout_len,
        stderr_len: outcome.stderr_len,
        timed_out: outcome.timed_out,
        cancelled: outcome.cancelled,
        rejected: outcome.rejected,
        artifacts: Vec::new(),
    }
}
