//! Riding out a coordinator restart: `rota logs -f` and `rota wait` reconnect when the
//! connection drops or the coordinator stops (it ends streams with UNAVAILABLE), with backoff,
//! and give up only after [`GIVE_UP_AFTER`] without one successful call.

use std::time::{Duration, Instant};

use crate::client::{self, Client};
use crate::commands::Context;

/// How long a follower keeps trying to reach a coordinator that went away.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Whether a failed call means the coordinator went away (stopped, restarting, killed, the
/// connection cut) rather than that it refused the request. The coordinator itself answers
/// UNAVAILABLE only when it shuts down; a connection that breaks mid-call surfaces as
/// UNKNOWN (tonic's code for a transport error without a gRPC status) or as an h2 error.
pub fn is_disconnect(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => true,
        tonic::Code::Internal | tonic::Code::Cancelled => {
            status.message().starts_with("h2 protocol error")
        }
        _ => false,
    }
}

/// Backoff between reconnection attempts, and the deadline after which to give up.
#[derive(Debug)]
pub struct Reconnect {
    delay: Duration,
    since: Option<Instant>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self::new()
    }
}

impl Reconnect {
    pub fn new() -> Self {
        Reconnect {
            delay: FIRST_DELAY,
            since: None,
        }
    }

    /// A call went through: the next disconnect starts over with a short delay.
    pub fn connected(&mut self) {
        self.delay = FIRST_DELAY;
    }

    /// Waits, then connects again; fails once the coordinator has been unreachable for
    /// [`GIVE_UP_AFTER`]. `why` is what broke, for the message when giving up.
    pub async fn again(&mut self, ctx: &Context, why: &str) -> anyhow::Result<Client> {
        let since = *self.since.get_or_insert_with(Instant::now);
        tracing::info!("coordinator went away ({why}); reconnecting");
        loop {
            if since.elapsed() >= GIVE_UP_AFTER {
                anyhow::bail!(
                    "coordinator at {} unreachable for {} s (gave up): {why}",
                    ctx.url,
                    GIVE_UP_AFTER.as_secs()
                );
            }
            tokio::time::sleep(self.delay).await;
            self.delay = (self.delay * 2).min(MAX_DELAY);
            match client::connect(&ctx.url, &ctx.access).await {
                Ok(c) => {
                    // Reachable again: a later outage gets its own deadline.
                    self.since = None;
                    return Ok(c);
                }
                Err(e) => tracing::debug!("reconnect: {e:#}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_coordinator_going_away_is_a_disconnect() {
        assert!(is_disconnect(&tonic::Status::unavailable(
            "coordinator is shutting down"
        )));
        assert!(is_disconnect(&tonic::Status::unknown("transport error")));
        assert!(is_disconnect(&tonic::Status::internal(
            "h2 protocol error: stream no longer needed"
        )));
        assert!(!is_disconnect(&tonic::Status::not_found("no run 7")));
        assert!(!is_disconnect(&tonic::Status::internal("reading log: EIO")));
    }
}
