//! `rota groups`: concurrency groups with their max, load and the agents serving them.

use rota_proto::ListGroupsRequest;

use super::Context;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn groups(ctx: &Context) -> anyhow::Result<()> {
    let resp = ctx
        .client()
        .await?
        .list_groups(ListGroupsRequest {})
        .await
        .reply()?;
    let json: Vec<views::GroupView> = views::all(&resp.groups);
    emit(ctx.output, &json, || render::groups_table(&resp.groups))?;
    Ok(())
}
