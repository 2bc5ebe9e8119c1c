//! Artifacts on the agent: after a run succeeds, the files its job's globs match in `RUN_DIR`
//! are sent to the coordinator (hashed first, then in chunks through the connection's bounded
//! data channel, before `RunFinished`); before a run with inputs starts, its dependencies'
//! artifacts are fetched (`FetchArtifact`) into a staging directory, checked against their
//! digests, and moved into its `RUN_DIR`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use rota_proto as pb;
use tokio::sync::mpsc;

use crate::RunKey;

/// A file a successful run left that its job keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Relative to `RUN_DIR`.
    pub path: String,
    pub file: PathBuf,
}

/// The regular files (not symlinks, not directories) in `run_dir` that `globs` match, by
/// path. A match whose path cannot be an artifact path (not UTF-8) is skipped with a warning.
pub fn collect(run_dir: &Path, globs: &[String]) -> Vec<Artifact> {
    let mut found = BTreeMap::new();
    let base = glob::Pattern::escape(&run_dir.to_string_lossy());
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    };
    for g in globs.iter().filter(|g| pb::is_artifact_path(g)) {
        let Ok(paths) = glob::glob_with(&format!("{base}/{g}"), options) else {
            tracing::warn!(glob = %g, "artifact glob does not parse: ignored");
            continue;
        };
        for file in paths.flatten() {
            let is_file = fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_file());
            let rel = file
                .strip_prefix(run_dir)
                .ok()
                .and_then(|rel| rel.to_str())
                .map(str::to_owned);
            match rel {
                Some(rel) if is_file && pb::is_artifact_path(&rel) => {
                    found.insert(rel.clone(), Artifact { path: rel, file });
                }
                Some(_) if !is_file => {}
                _ => tracing::warn!(file = %file.display(), "artifact path is not usable: skipped"),
            }
        }
    }
    found
        .into_values()
        .take(pb::MAX_ARTIFACTS_PER_RUN)
        .collect()
}

/// Lowercase hex SHA-256 and size of a file.
fn digest(path: &Path) -> io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; pb::ARTIFACT_CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    Ok((rota_proto::digest::hex(ctx.finish().as_ref()), size))
}

/// Sends each artifact in chunks into `out`; returns what `RunFinished` lists. A file that
/// cannot be read any more is left out (and logged): the coordinator then records no such
/// artifact, and a dependent needing it fails naming it. With `status` each send starts where
/// the coordinator's copy ends (nothing, for one it holds whole): a resend after a reconnect
/// sends only what is missing. Err only when the connection closed.
pub async fn send(
    key: &RunKey,
    artifacts: &[Artifact],
    out: &mpsc::Sender<pb::AgentMessage>,
    mut status: Option<Client>,
) -> Result<Vec<pb::ArtifactFile>, ()> {
    let mut sent = Vec::new();
    for a in artifacts {
        let file = a.file.clone();
        let digested = tokio::task::spawn_blocking(move || digest(&file)).await;
        let (sha256, size) = match digested {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => {
                tracing::warn!(run = %key, path = %a.path, %err, "cannot read an artifact: not sent");
                continue;
            }
            Err(_) => continue,
        };
        let held = match status.as_mut() {
            Some(client) => client
                .artifact_status(pb::ArtifactStatusRequest {
                    sha256: sha256.clone(),
                    size,
                })
                .await
                .map(|r| r.into_inner())
                .ok(),
            None => None,
        };
        if held.as_ref().is_some_and(|h| h.stored) {
            sent.push(pb::ArtifactFile {
                path: a.path.clone(),
                sha256,
                size,
            });
            continue;
        }
        // Resume at a chunk boundary at or below what is held: the chunks stay aligned.
        let chunk = pb::ARTIFACT_CHUNK as u64;
        let mut offset = held.map_or(0, |h| h.partial_len.min(size) / chunk * chunk);
        if offset >= size && size > 0 {
            // Held whole but not yet checked: the last chunk completes it.
            offset = (size - 1) / chunk * chunk;
        }
        let mut complete = true;
        while offset < size || (size == 0 && offset == 0) {
            let file = a.file.clone();
            let want = usize::try_from(size - offset)
                .unwrap_or(usize::MAX)
                .min(pb::ARTIFACT_CHUNK);
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                fs::File::open(&file)?.read_exact_at(&mut buf, offset)?;
                Ok::<_, io::Error>(buf)
            })
            .await;
            let Ok(Ok(data)) = read else {
                tracing::warn!(run = %key, path = %a.path, "artifact changed while being sent: not listed");
                complete = false;
                break;
            };
            let chunk = pb::ArtifactChunk {
                run_id: key.run_id.clone(),
                attempt: key.attempt,
                path: a.path.clone(),
                sha256: sha256.clone(),
                size,
                offset,
                data: data.into(),
            };
            out.send(pb::AgentMessage {
                msg: Some(pb::agent_message::Msg::Artifact(chunk)),
            })
            .await
            .map_err(|_| ())?;
            offset += want as u64;
            if size == 0 {
                break;
            }
        }
        if complete {
            sent.push(pb::ArtifactFile {
                path: a.path.clone(),
                sha256,
                size,
            });
        }
    }
    Ok(sent)
}

/// The client the fetches go through: the connection's own channel and token.
pub type Client = pb::agent_service_client::AgentServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        rota_proto::access::Bearer,
    >,
>;

/// Fetches every input into `staging` (made fresh), each checked against its digest. The
/// error names the artifact and the run that left it.
pub async fn fetch(
    client: &mut Client,
    inputs: &[pb::InputArtifact],
    staging: &Path,
) -> Result<(), String> {
    let _ = fs::remove_dir_all(staging);
    fs::create_dir_all(staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    for input in inputs {
        let Some(file) = &input.file else { continue };
        let missing = |why: String| {
            format!(
                "artifact {} of run {} is missing: {why}",
                file.path, input.from_run
            )
        };
        if !pb::is_artifact_path(&file.path) {
            return Err(missing("not a path inside RUN_DIR".into()));
        }
        let target = staging.join(&file.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| missing(e.to_string()))?;
        }
        let mut out = fs::File::create(&target).map_err(|e| missing(e.to_string()))?;
        let mut stream = client
            .fetch_artifact(pb::FetchArtifactRequest {
                sha256: file.sha256.clone(),
                offset: 0,
            })
            .await
            .map_err(|s| missing(s.message().to_owned()))?
            .into_inner();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        while let Some(piece) = stream
            .message()
            .await
            .map_err(|s| missing(s.message().to_owned()))?
        {
            size += piece.data.len() as u64;
            if size > file.size {
                return Err(missing("the coordinator sent more than its size".into()));
            }
            ctx.update(&piece.data);
            out.write_all(&piece.data)
                .map_err(|e| missing(e.to_string()))?;
        }
        if size != file.size || rota_proto::digest::hex(ctx.finish().as_ref()) != file.sha256 {
            return Err(missing("the bytes fetched do not match its digest".into()));
        }
    }
    Ok(())
}
