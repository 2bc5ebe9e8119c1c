//! `rota show RUN`: every field of one run, its attempts and its environment.

use rota_proto::RunRef;

use super::Context;
use crate::args::RunRefArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn show(ctx: &Context, args: RunRefArgs) -> anyhow::Result<()> {
    let run = ctx
        .client()
        .await?
        .get_run(RunRef { run: args.run })
        .await
        .reply()?;
    emit(ctx.output, &views::RunView::from(&run), || {
        render::run_details(&run)
    })?;
    Ok(())
}
