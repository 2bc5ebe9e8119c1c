//! Drain: the agent leaves without losing work. Requested by the shutdown future (SIGTERM) or
//! a `Drain` message; then:
//!
//! 1. stop accepting runs (an `Assign` is answered with `RunFinished` "agent draining");
//! 2. let the running runs finish, up to the deadline, then cancel the rest (SIGTERM, SIGKILL
//!    after each run's kill grace) and wait for them to end;
//! 3. wait until the coordinator has acknowledged every `RunFinished`, or until there has been
//!    no connection for [`UNREACHABLE_AFTER`] (nobody left to tell);
//! 4. mark the drain done: the connection says `Goodbye` and `run` returns Ok.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::state::{Agent, Link};

/// How long the coordinator may be unreachable before a drain stops waiting for it to
/// acknowledge the last results.
pub(crate) const UNREACHABLE_AFTER: Duration = Duration::from_secs(5);

/// Waits for a drain request, then carries the drain out (see the module docs).
pub(crate) async fn drain_when_requested(agent: Arc<Agent>) {
    let mut requests = agent.drain_requests();
    let Ok(timeout) = requests
        .wait_for(Option::is_some)
        .await
        .map(|request| request.unwrap_or_default())
    else {
        return;
    };
    agent.stop_accepting();
    tracing::info!(
        ?timeout,
        "draining: no new runs; waiting for the running ones"
    );

    // A timeout beyond what an instant can hold (`rota drain --timeout 1e15`) waits "forever"
    // rather than overflow.
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
    if tokio::time::timeout_at(deadline, wait_all_ended(&agent))
        .await
        .is_err()
    {
        let running = agent.running();
        tracing::warn!(
            runs = running.len(),
            "drain deadline reached: cancelling the remaining runs"
        );
        for run in &running {
            run.cancel(run.kill_grace());
        }
        wait_all_ended(&agent).await;
    }

    tracing::info!("all runs ended; waiting for the coordinator to acknowledge their results");
    wait_acked_or_unreachable(&agent, UNREACHABLE_AFTER).await;
    agent.finish_drain();
}

/// Until every held run's process has ended. New runs are refused by now, but an `Assign`
/// handled just before may still be starting, so look again after each pass.
async fn wait_all_ended(agent: &Agent) {
    loop {
        let running = agent.running();
        if running.is_empty() {
            return;
        }
        for run in running {
            run.ended().await;
        }
    }
}

/// Until no run is held, or the link has been down for `unreachable_after`.
async fn wait_acked_or_unreachable(agent: &Agent, unreachable_after: Duration) {
    let mut held = agent.held_count();
    let mut link = agent.link();
    loop {
        if *held.borrow_and_update() == 0 {
            return;
        }
        let state = *link.borrow_and_update();
        let gave_up = async {
            match state {
                Link::Up => std::future::pending().await,
                Link::Down(since) => tokio::time::sleep_until(since + unreachable_after).await,
            }
        };
        tokio::select! {
            () = gave_up => {
                tracing::warn!(runs = *held.borrow(), "coordinator unreachable: leaving results unacknowledged");
                return;
            }
            _ = held.changed() => {}
            _ = link.changed() => {}
        }
    }
}
