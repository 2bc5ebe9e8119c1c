//! Artifact byte streams: `AgentService.FetchArtifact` (an agent placing a dependency's files)
//! and `ControlService.GetArtifact` (`rota artifacts RUN --get PATH`). Both read the content
//! store in chunks from a blocking task, so a large file never sits in memory; which run has
//! which path comes from the engine (`GetRun`).

use std::io::Read as _;

use rota_proto as pb;
use tonic::Status;

use super::streams::BoxStream;
use crate::artifacts::{is_sha256, ArtifactStore};
use crate::engine::{Command, EngineHandle};

/// Chunks queued ahead of the client at most: the memory bound of one download.
const QUEUE: usize = 4;

/// Streams the content `sha256` from `offset`; NOT_FOUND when it is not stored.
pub fn content(
    store: &ArtifactStore,
    sha256: &str,
    offset: u64,
) -> Result<BoxStream<pb::ArtifactData>, Status> {
    if !is_sha256(sha256) {
        return Err(Status::invalid_argument(format!(
            "artifact digest {sha256:?} is not a lowercase hex SHA-256"
        )));
    }
    let mut file = store
        .open(sha256)
        .map_err(|_| Status::not_found(format!("artifact content {sha256} is not stored")))?;
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
    tokio::task::spawn_blocking(move || {
        use std::io::Seek as _;
        if let Err(e) = file.seek(std::io::SeekFrom::Start(offset)) {
            let _ = tx.blocking_send(Err(Status::internal(format!("artifact: {e}"))));
            return;
        }
        loop {
            let mut buf = vec![0u8; rota_proto::ARTIFACT_CHUNK];
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    let msg = pb::ArtifactData { data: buf.into() };
                    if tx.blocking_send(Ok(msg)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(format!("artifact: {e}"))));
                    return;
                }
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Streams the artifact `path` of run `run` (a checked run reference).
pub async fn of_run(
    engine: &EngineHandle,
    run: String,
    path: &str,
) -> Result<BoxStream<pb::ArtifactData>, Status> {
    let found = engine.ask(|t| Command::GetRun(run, t)).await?;
    let Some(file) = found.artifacts.iter().find(|a| a.path == path) else {
        return Err(Status::not_found(format!(
            "run {} has no artifact {path:?}",
            found.number
        )));
    };
    content(&engine.artifacts, &file.sha256, 0)
}
