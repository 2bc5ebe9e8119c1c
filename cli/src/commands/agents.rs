//! `rota agents`: every agent the coordinator knows, connected or not.

use rota_proto::ListAgentsRequest;

use super::Context;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn agents(ctx: &Context) -> anyhow::Result<()> {
    let resp = ctx
        .client()
        .await?
        .list_agents(ListAgentsRequest {})
        .await
        .reply()?;
    let json: Vec<views::AgentView> = views::all(&resp.agents);
    emit(ctx.output, &json, || render::agents_table(&resp.agents))?;
    Ok(())
}
