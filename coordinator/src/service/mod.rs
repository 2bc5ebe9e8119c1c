//! Network adapters: the agent stream, the control service and health over gRPC, and the
//! HTTP routes (the dashboard) on the same port, with every request checked by `validate` first;
//! and what a standby answers instead (`standby`).

pub mod agent_stream;
pub mod artifacts;
pub mod control;
pub mod health;
pub mod http;
pub mod import;
pub mod metrics;
pub mod standby;
pub mod streams;
pub mod validate;
pub mod web;
