//! `rota trigger JOB [--env K=V]...`: a run of a defined job now, outside its schedule.

use rota_proto::TriggerRequest;

use super::Context;
use crate::args::TriggerArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn trigger(ctx: &Context, args: TriggerArgs) -> anyhow::Result<()> {
    let req = TriggerRequest {
        job: args.job,
        env: args.env.into_iter().collect(),
    };
    let run = ctx.client().await?.trigger(req).await.reply()?;
    emit(ctx.output, &views::RunView::from(&run), || {
        render::changed_runs_table(std::slice::from_ref(&run))
    })?;
    Ok(())
}
