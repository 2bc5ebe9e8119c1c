//! `rota show RUN`: every field of one run, its attempts, its environment and who changed it.

use rota_proto::{ListAuditRequest, RunRef};
use serde::Serialize;

use super::Context;
use crate::args::RunRefArgs;
use crate::client::Reply;
use crate::output::{emit, notify, render, views, Ids};

/// `-o json`: the run's fields, and its audit trail (oldest first) as `history`, so a script
/// gets "who cancelled it" from the same call a person reads it from.
#[derive(Serialize)]
struct ShowView {
    #[serde(flatten)]
    run: views::RunView,
    history: Vec<notify::AuditView>,
}

impl Ids for ShowView {
    fn ids(&self) -> Vec<String> {
        self.run.ids()
    }
}

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
    let view = ShowView {
        run: views::RunView::from(&run),
        history: history
            .entries
            .iter()
            .rev()
            .map(notify::AuditView::from)
            .collect(),
    };
    emit(ctx.output, &view, || {
        render::run_details(&run) + &notify::history_lines(&history.entries)
    })?;
    Ok(())
}
