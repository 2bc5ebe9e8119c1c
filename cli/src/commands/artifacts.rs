//! `rota artifacts RUN`: the files a run kept (path, size, SHA-256); `--get PATH` writes one
//! to stdout (or `--to FILE`), streamed and checked against its digest.

use std::io::Write as _;

use anyhow::Context as _;
use rota_proto::{GetArtifactRequest, RunRef};

use super::Context;
use crate::args::ArtifactsArgs;
use crate::client::{Reply, RpcError};
use crate::output::{emit, render, views};

pub async fn artifacts(ctx: &Context, args: ArtifactsArgs) -> anyhow::Result<()> {
    let mut client = ctx.client().await?;
    let run = client
        .get_run(RunRef {
            run: args.run.clone(),
        })
        .await
        .reply()?;
    let Some(path) = args.get else {
        let shown: Vec<views::ArtifactView> = run
            .artifacts
            .iter()
            .map(views::ArtifactView::from)
            .collect();
        emit(ctx.output, &shown, || render::artifacts(&run.artifacts))?;
        return Ok(());
    };
    let Some(file) = run.artifacts.iter().find(|a| a.path == path) else {
        anyhow::bail!("run {} has no artifact {path:?}", run.number);
    };
    let mut out: Box<dyn std::io::Write> = match &args.to {
        Some(to) => Box::new(
            std::fs::File::create(to).with_context(|| format!("cannot create {}", to.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut stream = client
        .get_artifact(GetArtifactRequest {
            run: run.id.clone(),
            path: path.clone(),
        })
        .await
        .reply()?;
    let mut ctx_sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    while let Some(piece) = stream.message().await.map_err(RpcError)? {
        size += piece.data.len() as u64;
        ctx_sha.update(&piece.data);
        out.write_all(&piece.data)?;
    }
    out.flush()?;
    let digest: String = ctx_sha
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if size != file.size || digest != file.sha256 {
        anyhow::bail!(
            "artifact {path:?} of run {}: the bytes received do not match its digest",
            run.number
        );
    }
    Ok(())
}
