//! Artifact rows: which content (by SHA-256, bytes in `crate::artifacts`) a run kept under
//! which path. Deleted with the run (`ON DELETE CASCADE`); the content then goes when no row
//! names it (`ArtifactStore::remove_unreferenced`).

use super::sql::args;

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
    pub fn put_artifacts(&self, run: u64, artifacts: &[ArtifactRecord]) -> Result<()> {
        for a in artifacts {
            self.db.exec(
                "INSERT INTO artifacts(run, path, sha256, size) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(run, path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size",
                args![run, a.path, a.sha256, a.size],
            )?;
        }
        Ok(())
    }

    pub fn add_artifact(&self, run: u64, a: &ArtifactRecord) -> Result<()> {
        self.put_artifacts(run, std::slice::from_ref(a))
    }

    pub fn clear_artifacts(&self, run: u64) -> Result<()> {
        self.db
            .exec("DELETE FROM artifacts WHERE run = ?1", args![run])?;
        Ok(())
    }
}

impl Reader<'_> {
    pub fn artifacts(&self, run: u64) -> Result<Vec<ArtifactRecord>> {
        self.db.map(
            "SELECT path, sha256, size FROM artifacts WHERE run = ?1 ORDER BY path",
            args![run],
            |r| {
                Ok(ArtifactRecord {
                    path: r.get(0)?,
                    sha256: r.get(1)?,
                    size: r.get(2)?,
                })
            },
        )
    }

    pub fn artifact_content_used(&self, sha256: &str) -> Result<bool> {
        Ok(!self
            .db
            .rows(
                "SELECT 1 FROM artifacts WHERE sha256 = ?1 LIMIT 1",
                args![sha256],
            )?
            .is_empty())
    }
}
