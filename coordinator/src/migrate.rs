//! `rota-coordinator migrate --from DATA_DIR --to postgres://…`: a coordinator's SQLite store
//! into an empty PostgreSQL database, for a farm moving to several coordinators.
//!
//! The data dir is locked as a coordinator would lock it, so none runs on it meanwhile, and
//! the destination's lease is taken, so none runs on the database either. Log files are not
//! copied: they stay in the data dir, which the coordinator on PostgreSQL keeps using.

use std::path::Path;

use anyhow::{bail, Context};

use crate::datadir::DataDir;
use crate::store::{Copied, Store, StoreLocation};

/// Copies the store of `data_dir` into the database at `url`; the rows copied per table.
/// Runs off the caller's async runtime ([`crate::store::off_runtime`]).
pub fn migrate(data_dir: &Path, url: &str) -> anyhow::Result<Copied> {
    crate::store::off_runtime(|| copy(data_dir, url))
}

fn copy(data_dir: &Path, url: &str) -> anyhow::Result<Copied> {
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
    Ok(from.copy_into(&mut to)?)
}
