//! `rota show RUN`: every field of one run, its attempts, its environment and who changed it.

use rota_proto::{ListAuditRequest, RunRef};

use super::Context;
use crate::args::RunRefArgs;
use crate::client::Reply;
use crate::output::{emit, notify, render, views};

pub async fn show(ctx: &Context, args: RunRefArgs) -> anyhow::Result<()> {
    let mut client = ctx.client().await?;
    let run = client.get_run(RunRef { run: args.run }).await.reply()?;
    // Who submitted, cancelled, retried it: the audit entries naming it.
    let history = client
        .list_audit(ListAuditRequest {
            run: run.number,
            ..Default::default()
        })
        .await
        .reply()?;
    emit(ctx.output, &views::RunView::from(&run), || {
        render::run_details(&run) + &notify::history_lines(&history.entries)
    })?;
    Ok(())
}
