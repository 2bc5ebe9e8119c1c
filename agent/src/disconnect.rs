//! `on_disconnect: stop`: a run with this policy must not outlive the agent's contact with the
//! coordinator, because once the coordinator declares the agent lost it starts a replacement.
//!
//! The agent cannot know when the coordinator stopped hearing it, only when it last had proof
//! that it was heard: the send time of the latest message the coordinator answered (the Hello
//! of a welcomed connection, a heartbeat whose ack came back). The coordinator's lease for this
//! agent cannot have run out before that time plus the lease, so that is when the agent stops
//! such runs (SIGTERM, then SIGKILL after the run's kill grace). Transit delays only make the
//! agent stop early, never late. The coordinator waits a further lease plus the kill grace
//! after declaring the agent lost before it starts a replacement (see the scheduler core).

use std::sync::Arc;

use crate::state::Agent;

/// Runs for the agent's life: each time a proof of contact is a lease old with no newer one,
/// stops the held `on_disconnect: stop` runs.
pub(crate) async fn stop_runs_out_of_contact(agent: Arc<Agent>) {
    let mut contacts = agent.contacts();
    loop {
        let contact = *contacts.borrow_and_update();
        let Some(contact) = contact else {
            if contacts.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            changed = contacts.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(contact.at + contact.lease) => {
                tracing::warn!(lease = ?contact.lease, "no answer from the coordinator for the lease: stopping on_disconnect: stop runs");
                agent.stop_disconnected_runs();
                if contacts.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}
