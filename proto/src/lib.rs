//! rota's wire protocol, package `rota.v1`: the agent stream (`AgentService.Connect`) and the
//! CLI's `ControlService`. Generated code lives in `v1`; nothing hand-written touches the wire.

/// Generated messages and services of `rota.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("rota.v1");
}

pub mod access;
pub mod clock;
pub mod digest;
pub mod duration;
pub mod errors;
pub mod flags;
pub mod logging;
pub mod priority;
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

/// Largest artifact chunk: as a log chunk, well under the 16 MiB message limit.
pub const ARTIFACT_CHUNK: usize = 1 << 20;

/// Largest single artifact the coordinator takes (64 GiB): a bound on what one run may put in
/// the data dir, far above a database dump.
pub const MAX_ARTIFACT_BYTES: u64 = 64 << 30;

/// Most artifacts one run may leave.
pub const MAX_ARTIFACTS_PER_RUN: usize = 1000;

/// Whether `path` may name an artifact: relative, `/`-separated, no empty, `.` or `..`
/// component, no NUL, at most 1024 bytes. Checked by the config, the agent and the
/// coordinator alike, so the path a run's file is stored and placed under stays in RUN_DIR.
pub fn is_artifact_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// The files a run may leave its return data in (in `RUN_DIR`), in the order the agent looks.
pub const RETURN_DATA_FILES: [&str; 2] = ["return_data.json", "return_data.yaml"];

pub use v1::*;
