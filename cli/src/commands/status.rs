//! `rota status`: the coordinator's versions, uptime, store, free space, agents and runs.

use rota_proto::StatusRequest;

use super::Context;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn status(ctx: &Context) -> anyhow::Result<()> {
    let resp = ctx.client().await?.status(StatusRequest {}).await.reply()?;
    emit(ctx.output, &views::StatusView::from(&resp), || {
        render::status_details(&resp)
    })?;
    Ok(())
}
