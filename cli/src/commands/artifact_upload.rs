//! `rota artifact upload FILE...`, run from inside a run: each file joins that run's
//! artifacts. The run holds no token; its agent set `ROTA_ARTIFACT_URL` and
//! `ROTA_ARTIFACT_TOKEN` (a capability for this run's attempt only, refused once it ended)
//! and, with a private CA, `ROTA_ARTIFACT_CA`. Each file is hashed, then streamed in chunks
//! of at most 1 MiB; the coordinator checks size and digest before it lists the file.

use std::io::Read as _;

use anyhow::Context as _;
use rota_proto::run_service_client::RunServiceClient;
use rota_proto::UploadArtifactRequest;

use super::Context;
use crate::args::ArtifactCommand;
use crate::client::{channel, Reply};
use crate::output::{emit, views};

const URL_ENV: &str = "ROTA_ARTIFACT_URL";
const TOKEN_ENV: &str = "ROTA_ARTIFACT_TOKEN";
const CA_ENV: &str = "ROTA_ARTIFACT_CA";

pub async fn artifact(ctx: &Context, command: ArtifactCommand) -> anyhow::Result<()> {
    let ArtifactCommand::Upload { files } = command;
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .with_context(|| {
                format!("{name} is not set: `rota artifact upload` works only inside a run")
            })
    };
    let (url, token) = (env(URL_ENV)?, env(TOKEN_ENV)?);
    let ca = std::env::var_os(CA_ENV).map(std::path::PathBuf::from);
    let access =
        rota_proto::access::Access::load(None, ca.as_deref()).map_err(anyhow::Error::msg)?;
    // Checked before anything is sent, so a bad name uploads none of the files.
    let paths: Vec<String> = files
        .iter()
        .map(|f| f.trim_start_matches("./").to_owned())
        .collect();
    if let Some(bad) = paths.iter().find(|p| !rota_proto::is_artifact_path(p)) {
        anyhow::bail!("{bad:?} is not a path inside RUN_DIR (relative, without '..')");
    }
    let mut client = RunServiceClient::new(channel(&url, &access).await?);
    let mut uploaded = Vec::new();
    for path in paths {
        let sha256 = rota_proto::digest::sha256_of(std::path::Path::new(&path))
            .with_context(|| format!("cannot read {path}"))?;
        let size = std::fs::metadata(&path)
            .with_context(|| format!("cannot read {path}"))?
            .len();
        let first = UploadArtifactRequest {
            capability: token.clone(),
            path: path.clone(),
            sha256,
            size,
            data: Default::default(),
        };
        let reply = client
            .upload_artifact(chunks(first, &path)?)
            .await
            .reply()
            .with_context(|| format!("artifact {path} not uploaded"))?;
        uploaded.push(reply);
    }
    let shown: Vec<views::ArtifactView> = uploaded
        .iter()
        .filter_map(|r| r.file.as_ref())
        .map(views::ArtifactView::from)
        .collect();
    emit(ctx.output, &shown, || {
        uploaded
            .iter()
            .filter_map(|r| Some((r.run_number, r.file.as_ref()?)))
            .map(|(n, f)| format!("{} ({} bytes) kept with run {n}\n", f.path, f.size))
            .collect()
    })?;
    Ok(())
}

/// The upload's messages: `first`, then the file's bytes in chunks, read as they are sent
/// (a blocking read per chunk, off the runtime), so a large file never sits in memory.
fn chunks(
    first: UploadArtifactRequest,
    path: &str,
) -> anyhow::Result<impl futures::Stream<Item = UploadArtifactRequest>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {path}"))?;
    let state = (Some(first), Some(file));
    Ok(futures::stream::unfold(state, |(first, file)| async move {
        if let Some(first) = first {
            return Some((first, (None, file)));
        }
        let mut file = file?;
        let (file, piece) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; rota_proto::ARTIFACT_CHUNK];
            let n = read_full(&mut file, &mut buf);
            buf.truncate(n);
            (file, buf)
        })
        .await
        .ok()?;
        if piece.is_empty() {
            return None;
        }
        let msg = UploadArtifactRequest {
            data: piece.into(),
            ..Default::default()
        };
        Some((msg, (None, Some(file))))
    }))
}

/// Reads until `buf` is full or the file ends (a read error ends it too: the coordinator
/// then refuses the short upload, naming the file).
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}
