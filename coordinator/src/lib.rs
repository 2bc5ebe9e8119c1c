//! rota's coordinator: the durable queue, the scheduler and the gRPC services agents and the CLI
//! talk to. `main.rs` only parses flags; everything lives here so tests and `rota run` can embed
//! a coordinator in-process.

pub mod artifacts;
pub mod awake;
pub mod backup;
pub mod config;
pub mod credentials;
pub mod cron;
pub mod datadir;
pub mod engine;
pub mod error;
pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod restart;
pub mod retention;
pub mod sched;
pub mod server;
pub mod service;
pub mod store;
pub mod time;
pub mod triggers;

pub use server::{open, serve, CoordinatorConfig, Opened, TlsIdentity};
