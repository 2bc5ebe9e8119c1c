//! `rota jobset create|parallel|show|list`: jobsets are seed 000's unit of work, with a
//! `parallel` limit that can change while they run.

use rota_proto::{CreateJobsetRequest, GetJobsetRequest, ListJobsetsRequest, SetParallelRequest};

use super::Context;
use crate::args::JobsetCommand;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn jobset(ctx: &Context, cmd: JobsetCommand) -> anyhow::Result<()> {
    let mut client = ctx.client().await?;
    let jobsets = match cmd {
        JobsetCommand::Create {
            name,
            parallel,
            notify,
        } => vec![client
            .create_jobset(CreateJobsetRequest {
                name,
                parallel,
                notify,
            })
            .await
            .reply()?],
        JobsetCommand::Parallel { name, parallel } => vec![client
            .set_parallel(SetParallelRequest { name, parallel })
            .await
            .reply()?],
        JobsetCommand::Show { name } => {
            vec![client.get_jobset(GetJobsetRequest { name }).await.reply()?]
        }
        JobsetCommand::List => {
            let resp = client.list_jobsets(ListJobsetsRequest {}).await.reply()?;
            let json: Vec<views::JobsetView> = views::all(&resp.jobsets);
            emit(ctx.output, &json, || render::jobsets_table(&resp.jobsets))?;
            return Ok(());
        }
    };
    // One jobset: a JSON object rather than a one-element list.
    emit(ctx.output, &views::JobsetView::from(&jobsets[0]), || {
        render::jobsets_table(&jobsets)
    })?;
    Ok(())
}
