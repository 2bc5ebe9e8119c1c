//! Retention: which finished runs go ([`policy`], a pure function) and removing their files
//! off the engine thread ([`files`]). The engine (`engine/prune.rs`) picks batches through
//! the store's indexes and deletes rows; `store/prune.rs` says how a crash mid-prune is
//! finished at the next start.

pub mod files;
pub mod policy;

pub use policy::Policy;
