//! `rota runs [--jobset S] [--state X] [--limit N] [--after N]`.

use rota_proto::ListRunsRequest;

use super::Context;
use crate::args::RunsArgs;
use crate::client::Reply;
use crate::output::{emit, render, views};

pub async fn runs(ctx: &Context, args: RunsArgs) -> anyhow::Result<()> {
    let req = ListRunsRequest {
        jobset: args.jobset.unwrap_or_default(),
        state: args.state.unwrap_or_default(),
        limit: args.limit,
        after_number: args.after,
    };
    let resp = ctx.client().await?.list_runs(req).await.reply()?;
    let json: Vec<views::RunView> = views::all(&resp.runs);
    emit(ctx.output, &json, || render::runs_table(&resp.runs))?;
    // A full page may have a next one; say how to get it, on stderr so `-o json` stays clean.
    if args.limit > 0 && resp.runs.len() == args.limit as usize {
        if let Some(last) = resp.runs.last() {
            eprintln!(
                "(first {} runs shown; `--after {}` shows the next page, `--limit 0` all)",
                args.limit, last.number
            );
        }
    }
    Ok(())
}
