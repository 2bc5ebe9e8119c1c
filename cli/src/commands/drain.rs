//! `rota drain AGENT [--timeout DUR]`: the agent takes no new runs and finishes (or, after the
//! timeout, cancels) the ones it has.

use rota_proto::DrainRequest;

use super::Context;
use crate::args::DrainArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn drain(ctx: &Context, args: DrainArgs) -> anyhow::Result<()> {
    let req = DrainRequest {
        agent: args.agent,
        timeout_ms: args
            .timeout
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let agent = ctx.client().await?.drain(req).await.reply()?;
    emit(ctx.output, &views::AgentView::from(&agent), || {
        render::agents_table(std::slice::from_ref(&agent))
    })?;
    Ok(())
}
