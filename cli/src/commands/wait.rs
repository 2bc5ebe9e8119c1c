//! `rota wait RUN... | rota wait --jobset S`: blocks until the runs have finished, prints them,
//! and exits 0 only if every one succeeded, so scripts can `rota wait 12 && deploy`.

use std::process::ExitCode;

use rota_proto::WaitRequest;
use serde::Serialize;

use super::Context;
use crate::args::WaitArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

/// `-o json` of wait.
#[derive(Debug, Serialize)]
struct WaitView {
    all_succeeded: bool,
    runs: Vec<views::RunView>,
}

pub async fn wait(ctx: &Context, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let req = WaitRequest {
        runs: args.runs,
        jobset: args.jobset.unwrap_or_default(),
    };
    let resp = ctx.client().await?.wait(req).await.reply()?;
    let view = WaitView {
        all_succeeded: resp.all_succeeded,
        runs: views::all(&resp.runs),
    };
    emit(ctx.output, &view, || render::runs_table(&resp.runs))?;
    Ok(if resp.all_succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
