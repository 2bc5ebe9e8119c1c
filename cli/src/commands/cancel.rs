//! `rota cancel RUN`: the agent gets SIGTERM for the run's process group, SIGKILL after a grace.

use rota_proto::RunRef;

use super::Context;
use crate::args::RunRefArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn cancel(ctx: &Context, args: RunRefArgs) -> anyhow::Result<()> {
    let run = ctx
        .client()
        .await?
        .cancel(RunRef { run: args.run })
        .await
        .reply()?;
    emit(ctx.output, &views::RunView::from(&run), || {
        render::changed_runs_table(std::slice::from_ref(&run))
    })?;
    Ok(())
}
