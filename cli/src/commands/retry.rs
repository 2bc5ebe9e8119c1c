//! `rota retry RUN | rota retry --jobset S --failed`: run errored work again.

use rota_proto::RetryRequest;

use super::Context;
use crate::args::RetryArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn retry(ctx: &Context, args: RetryArgs) -> anyhow::Result<()> {
    let req = RetryRequest {
        run: args.run.unwrap_or_default(),
        jobset: args.jobset.unwrap_or_default(),
        failed: args.failed,
    };
    let resp = ctx.client().await?.retry(req).await.reply()?;
    let json: Vec<views::RunView> = views::all(&resp.runs);
    emit(ctx.output, &json, || render::changed_runs_table(&resp.runs))?;
    Ok(())
}
