//! `rota group set G --max N`: lowering a max never kills running runs, it holds back starts.

use rota_proto::SetGroupMaxRequest;

use super::Context;
use crate::args::GroupCommand;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn group(ctx: &Context, cmd: GroupCommand) -> anyhow::Result<()> {
    let GroupCommand::Set { name, max } = cmd;
    let group = ctx
        .client()
        .await?
        .set_group_max(SetGroupMaxRequest { name, max })
        .await
        .reply()?;
    emit(ctx.output, &views::GroupView::from(&group), || {
        render::groups_table(std::slice::from_ref(&group))
    })?;
    Ok(())
}
