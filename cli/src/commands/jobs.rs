//! `rota jobs`: the jobs defined by applied config files, with their next scheduled time.

use rota_proto::ListJobsRequest;

use super::Context;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn jobs(ctx: &Context) -> anyhow::Result<()> {
    let resp = ctx
        .client()
        .await?
        .list_jobs(ListJobsRequest {})
        .await
        .reply()?;
    let json: Vec<views::JobView> = views::all(&resp.jobs);
    emit(ctx.output, &json, || render::jobs_table(&resp.jobs))?;
    Ok(())
}
