//! Webhooks: who wants to hear about which run or jobset ending ([`target`]), what they are
//! sent ([`payload`]), and the task that sends it from the durable outbox ([`sender`]).
//!
//! The engine writes one outbox row per target and event in the transaction that records the
//! result (so a kill -9 after the commit still delivers), then hands the row to the sender
//! after the commit. The sender runs on the tokio runtime, never on the engine's thread: a
//! slow or dead receiver never delays dispatch or a result. Outcomes go back to the engine as
//! a command, which updates the row in its next batch.

pub mod payload;
pub mod sender;
pub mod target;

pub use sender::{Delivery, Outcome, SenderConfig};
pub use target::{Event, Format, Target};
