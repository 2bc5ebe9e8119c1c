//! `rota audit [--run N] [--since T]`: who changed what on the coordinator.

use rota_proto::ListAuditRequest;

use super::Context;
use crate::args::AuditArgs;
use crate::client::Reply;
use crate::output::{emit, notify, views};

pub async fn audit(ctx: &Context, args: AuditArgs) -> anyhow::Result<()> {
    let resp = ctx
        .client()
        .await?
        .list_audit(ListAuditRequest {
            run: args.run,
            since_ms: args.since.unwrap_or(0),
            limit: args.limit,
        })
        .await
        .reply()?;
    let json: Vec<notify::AuditView> = views::all(&resp.entries);
    emit(ctx.output, &json, || notify::audit_table(&resp.entries))?;
    Ok(())
}
