//! `rota prune [--dry-run]`: apply the coordinator's retention policy now, or list what it
//! would delete.

use rota_proto::PruneRequest;

use super::Context;
use crate::args::PruneArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn prune(ctx: &Context, args: PruneArgs) -> anyhow::Result<()> {
    let req = PruneRequest { limit: args.limit };
    let mut client = ctx.client().await?;
    let resp = if args.dry_run {
        client.prune_preview(req).await.reply()?
    } else {
        client.prune(req).await.reply()?
    };
    emit(ctx.output, &views::PruneView::from(&resp), || {
        render::prune_table(&resp, args.dry_run)
    })?;
    Ok(())
}
