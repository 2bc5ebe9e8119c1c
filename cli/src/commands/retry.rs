//! `rota retry RUN… | rota retry --jobset S --failed`: run errored work again.

use rota_proto::RetryRequest;

use super::Context;
use crate::args::RetryArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn retry(ctx: &Context, args: RetryArgs) -> anyhow::Result<()> {
    // One run goes in `run`, which coordinators from before `runs` understand too.
    let (run, runs) = match <[String; 1]>::try_from(args.runs) {
        Ok([run]) => (run, Vec::new()),
        Err(runs) => (String::new(), runs),
    };
    let req = RetryRequest {
        run,
        runs,
        jobset: args.jobset.unwrap_or_default(),
        failed: args.failed,
    };
    let resp = ctx.client().await?.retry(req).await.reply()?;
    let json: Vec<views::RunView> = views::all(&resp.runs);
    emit(ctx.output, &json, || render::changed_runs_table(&resp.runs))?;
    Ok(())
}
