//! gRPC adapters: the agent stream, the control service and health, with every request
//! checked by `validate` first.

pub mod agent_stream;
pub mod control;
pub mod health;
pub mod streams;
pub mod validate;
