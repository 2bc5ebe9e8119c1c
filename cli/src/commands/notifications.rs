//! `rota notifications`: recent webhook deliveries from the coordinator's outbox.

use rota_proto::ListNotificationsRequest;

use super::Context;
use crate::args::NotificationsArgs;
use crate::client::Reply;
use crate::output::{emit, notify, views};

pub async fn notifications(ctx: &Context, args: NotificationsArgs) -> anyhow::Result<()> {
    let resp = ctx
        .client()
        .await?
        .list_notifications(ListNotificationsRequest {
            limit: args.limit,
            run: args.run,
        })
        .await
        .reply()?;
    let json: Vec<notify::NotificationView> = views::all(&resp.notifications);
    emit(ctx.output, &json, || {
        notify::notifications_table(&resp.notifications)
    })?;
    Ok(())
}
