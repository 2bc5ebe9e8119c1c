//! Artifact rows: which content (by SHA-256, bytes in `crate::artifacts`) a run kept under
//! which path. Deleted with the run (`ON DELETE CASCADE`); the content then goes when no row
//! names it (`ArtifactStore::remove_unreferenced`).

use rusqlite::params;

use super::{Batch, Reader, Result};

/// One artifact of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// Relative to the run's RUN_DIR.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl Batch<'_> {
    /// Records the artifacts of a run's successful attempt, beside what that attempt
    /// uploaded while it ran (a path sent again replaces the upload). Earlier attempts' rows
    /// went when this attempt was assigned ([`Batch::clear_artifacts`]).
    pub fn put_artifacts(&self, run: u64, artifacts: &[ArtifactRecord]) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO artifacts(run, path, sha256, size) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for a in artifacts {
            stmt.execute(params![run, a.path, a.sha256, a.size])?;
        }
        Ok(())
    }

    /// One file uploaded by a running attempt (`rota artifact upload`).
    pub fn add_artifact(&self, run: u64, a: &ArtifactRecord) -> Result<()> {
        self.put_artifacts(run, std::slice::from_ref(a))
    }

    /// Forgets a run's artifacts when a new attempt of it is assigned: a run keeps those of
    /// its latest attempt (the engine then removes content no run names any more).
    pub fn clear_artifacts(&self, run: u64) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM artifacts WHERE run = ?1")?
            .execute(params![run])?;
        Ok(())
    }
}

impl Reader<'_> {
    /// A run's artifacts, by path.
    pub fn artifacts(&self, run: u64) -> Result<Vec<ArtifactRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, sha256, size FROM artifacts WHERE run = ?1 ORDER BY path",
        )?;
        let rows = stmt.query_map(params![run], |r| {
            Ok(ArtifactRecord {
                path: r.get(0)?,
                sha256: r.get(1)?,
                size: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether any run still keeps this content.
    pub fn artifact_content_used(&self, sha256: &str) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM artifacts WHERE sha256 = ?1 LIMIT 1")?;
        Ok(stmt.exists(params![sha256])?)
    }
}
