//! rota's wire protocol, package `rota.v1`: the agent stream (`AgentService.Connect`) and the
//! CLI's `ControlService`. Generated code lives in `v1`; nothing hand-written touches the wire.

/// Generated messages and services of `rota.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("rota.v1");
}

pub mod access;
pub mod duration;
pub mod flags;
pub mod logging;
pub mod signals;

/// Encoded `FileDescriptorSet` of every rota proto, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rota_descriptor.bin"));

/// Version of the agent protocol. An agent whose `Hello` carries another version is refused with
/// `failed_precondition`, so an old agent never misreads a newer coordinator's messages.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest `RUN_DIR/return_data.{json,yaml}` a run may leave: return data is a small record
/// for people and later runs (a version, a count), not a channel for files. The agent sends
/// nothing bigger and the coordinator refuses anything bigger.
pub const MAX_RETURN_DATA: usize = 64 * 1024;

/// The files a run may leave its return data in (in `RUN_DIR`), in the order the agent looks.
pub const RETURN_DATA_FILES: [&str; 2] = ["return_data.json", "return_data.yaml"];

pub use v1::*;
