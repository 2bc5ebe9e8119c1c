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

/// `RunService`: what a run may ask itself (`rota artifact upload`). Outside the token guard
/// (a run holds no token); each call is checked against the capability it carries instead.
#[derive(Debug, Clone)]
pub struct RunService {
    pub engine: EngineHandle,
}

#[tonic::async_trait]
impl pb::run_service_server::RunService for RunService {
    async fn upload_artifact(
        &self,
        request: tonic::Request<tonic::Streaming<pb::UploadArtifactRequest>>,
    ) -> Result<tonic::Response<pb::UploadArtifactResponse>, Status> {
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Status::invalid_argument("an upload names its file first"));
        };
        let (run, attempt) = self
            .engine
            .upload_key
            .check(&first.capability)
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        let file = crate::store::ArtifactRecord {
            path: first.path.clone(),
            sha256: first.sha256.clone(),
            size: first.size,
        };
        super::validate::artifact_file(&run.to_string(), &file.path, &file.sha256, file.size)?;
        // Refused before any byte is stored: an attempt that ended, a disk without room.
        let found = self
            .engine
            .ask(|t| Command::GetRun(run.to_string(), t))
            .await?;
        if found.attempt != attempt || !matches!(found.state.as_str(), "assigned" | "running") {
            return Err(Status::failed_precondition(format!(
                "run {} attempt {attempt} is not running (it is {} at attempt {}): a run \
                 uploads artifacts only while that attempt runs",
                found.number, found.state, found.attempt
            )));
        }
        let store = self.engine.artifacts.clone();
        if !store.has(&file.sha256, file.size) {
            store
                .check_room(&file.path, file.size)
                .map_err(|e| Status::resource_exhausted(e.to_string()))?;
            if let Err(status) = receive(&store, &file, first.data, &mut stream).await {
                store.discard_partial(&file.sha256);
                return Err(status);
            }
        }
        let number = self
            .engine
            .ask(|reply| Command::AddArtifact {
                run,
                attempt,
                file: file.clone(),
                reply,
            })
            .await?;
        Ok(tonic::Response::new(pb::UploadArtifactResponse {
            run_number: number,
            file: Some(pb::ArtifactFile {
                path: file.path,
                sha256: file.sha256,
                size: file.size,
            }),
        }))
    }
}

/// Writes an upload's bytes in order into the content store until it is whole and checked.
async fn receive(
    store: &ArtifactStore,
    file: &crate::store::ArtifactRecord,
    mut data: prost::bytes::Bytes,
    stream: &mut tonic::Streaming<pb::UploadArtifactRequest>,
) -> Result<(), Status> {
    let mut offset = 0u64;
    loop {
        if data.len() > rota_proto::ARTIFACT_CHUNK {
            return Err(Status::invalid_argument(format!(
                "artifact {}: a message carries at most {} bytes",
                file.path,
                rota_proto::ARTIFACT_CHUNK
            )));
        }
        if offset + data.len() as u64 > file.size {
            return Err(Status::invalid_argument(format!(
                "artifact {}: more bytes than its size {}",
                file.path, file.size
            )));
        }
        if !data.is_empty() || file.size == 0 {
            let (store, f, at) = (store.clone(), file.clone(), offset);
            let piece = data.clone();
            let whole = tokio::task::spawn_blocking(move || {
                store.write(&f.path, &f.sha256, f.size, at, &piece)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| match e {
                crate::artifacts::ArtifactError::Full { .. } => {
                    Status::resource_exhausted(e.to_string())
                }
                crate::artifacts::ArtifactError::Checksum { .. } => {
                    Status::invalid_argument(e.to_string())
                }
                crate::artifacts::ArtifactError::Io { .. } => Status::internal(e.to_string()),
            })?;
            offset += data.len() as u64;
            if whole {
                return Ok(());
            }
        }
        match stream.message().await? {
            Some(next) => data = next.data,
            None => {
                return Err(Status::invalid_argument(format!(
                    "artifact {}: the upload ended after {offset} of {} bytes",
                    file.path, file.size
                )))
            }
        }
    }
}
