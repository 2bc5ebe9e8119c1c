//! `rota-coordinator migrate --from DATA_DIR --to postgres://…`: a coordinator's SQLite store
//! into an empty PostgreSQL database, for a farm moving to several coordinators.
//!
//! The data dir is locked as a coordinator would lock it, so none runs on it meanwhile, and
//! the destination's lease is taken, so none runs on the database either. Every finished
//! attempt's log is copied into the database too (`logs::archive`), each segment checked
//! against its recorded checksum, so any coordinator on the database serves it; the files stay
//! in the data dir (a log still being written goes on there once the coordinator starts). Every
//! artifact content is copied likewise, checked against its digest.

use std::path::Path;

use anyhow::{bail, Context};

use crate::artifacts::ArtifactStore;
use crate::datadir::DataDir;
use crate::logs::{archive::Archive, LogHub};
use crate::store::{Copied, Store, StoreLocation};

/// What a migration copied.
#[derive(Debug)]
pub struct Migrated {
    /// Rows per table.
    pub rows: Copied,
    /// Finished attempts whose logs were copied, and their bytes.
    pub log_attempts: u64,
    pub log_bytes: u64,
    /// Artifact contents copied, and their bytes.
    pub artifacts: u64,
    pub artifact_bytes: u64,
}

/// Copies the store of `data_dir`, and its logs, into the database at `url`. Runs off the
/// caller's async runtime ([`crate::store::off_runtime`]).
pub fn migrate(data_dir: &Path, url: &str) -> anyhow::Result<Migrated> {
    crate::store::off_runtime(|| copy(data_dir, url))
}

fn copy(data_dir: &Path, url: &str) -> anyhow::Result<Migrated> {
    let db = data_dir.join("rota.db");
    if !db.is_file() {
        bail!(
            "{} holds no store (rota.db): not a rota data dir",
            data_dir.display()
        );
    }
    let _lock =
        DataDir::open(data_dir, true).context("stop the coordinator before migrating its store")?;
    let from = Store::open(&db)?;
    let mut to = Store::open_at(&StoreLocation::Postgres(url.to_owned()))?;
    let rows = from.copy_into(&mut to)?;
    let archive = to.shared().map(|db| std::sync::Arc::new(Archive::new(db)));
    let hub = LogHub::new(data_dir.join("logs"), 0).with_archive(archive.clone());
    let (log_attempts, log_bytes) =
        hub.archive_all(|id| matches!(from.read().run_by_id(id), Ok(Some(_))))?;
    let (artifacts, artifact_bytes) = ArtifactStore::new(data_dir.join("artifacts"), 0)
        .with_archive(archive)
        .archive_all()
        .context("artifacts")?;
    Ok(Migrated {
        rows,
        log_attempts,
        log_bytes,
        artifacts,
        artifact_bytes,
    })
}
