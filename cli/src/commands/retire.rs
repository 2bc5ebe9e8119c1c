//! `rota retire RUN`: give up on an errored run (seed 000's "retired" state).

use rota_proto::RunRef;

use super::Context;
use crate::args::RunRefArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn retire(ctx: &Context, args: RunRefArgs) -> anyhow::Result<()> {
    let run = ctx
        .client()
        .await?
        .retire(RunRef { run: args.run })
        .await
        .reply()?;
    emit(ctx.output, &views::RunView::from(&run), || {
        render::changed_runs_table(std::slice::from_ref(&run))
    })?;
    Ok(())
}
