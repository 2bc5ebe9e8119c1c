//! `rota wait RUN... | rota wait --jobset S`: blocks until the runs have finished, prints them,
//! and exits 0 only if every one succeeded, so scripts can `rota wait 12 && deploy`. A
//! coordinator restart does not end the wait: it reconnects and waits on.

use std::process::ExitCode;

use rota_proto::WaitRequest;
use serde::Serialize;

use super::Context;
use crate::args::WaitArgs;
use crate::client::RpcError;
use crate::output::{emit, render, views, Ids};
use crate::reconnect::{self, Reconnect};

/// `-o json` of wait.
#[derive(Debug, Serialize)]
struct WaitView {
    all_succeeded: bool,
    runs: Vec<views::RunView>,
}

impl Ids for WaitView {
    fn ids(&self) -> Vec<String> {
        self.runs.ids()
    }
}

pub async fn wait(ctx: &Context, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let req = WaitRequest {
        runs: args.runs,
        jobset: args.jobset.unwrap_or_default(),
    };
    let mut client = ctx.client().await?;
    let mut reconnect = Reconnect::new();
    // Waiting is idempotent: across a coordinator restart, ask again.
    let resp = loop {
        match client.wait(req.clone()).await {
            Ok(resp) => break resp.into_inner(),
            Err(status) if reconnect::is_disconnect(&status) => {
                client = reconnect.again(ctx, status.message()).await?;
            }
            Err(status) => return Err(RpcError(status).into()),
        }
    };
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
