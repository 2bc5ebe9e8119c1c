//! gRPC adapters: the agent stream and the control service.

pub mod agent_stream;
pub mod control;
pub mod streams;
