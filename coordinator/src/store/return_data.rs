//! Return data rows: what a run left in `RUN_DIR/return_data.{json,yaml}`, one row per run
//! (its latest attempt that left any), deleted with the run (`ON DELETE CASCADE`).
//!
//! A table of its own rather than columns of `runs`: most runs leave none, and the run rows
//! are read on every list.

use rusqlite::{params, OptionalExtension};

use super::{Batch, Reader, Result};

/// A run's return data as stored: `data` is JSON text (empty when `problem` says why there is
/// none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnDataRecord {
    pub attempt: u32,
    pub data: String,
    pub problem: String,
}

impl Batch<'_> {
    /// Stores (replacing an earlier attempt's) the return data of a run.
    pub fn put_return_data(&self, run: u64, r: &ReturnDataRecord) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO return_data(run, attempt, data, problem) VALUES (?1, ?2, ?3, ?4)",
        )?;
        stmt.execute(params![run, r.attempt, r.data, r.problem])?;
        Ok(())
    }
}

impl Reader<'_> {
    /// The return data of a run, if it left any.
    pub fn return_data(&self, run: u64) -> Result<Option<ReturnDataRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT attempt, data, problem FROM return_data WHERE run = ?1")?;
        Ok(stmt
            .query_row(params![run], |r| {
                Ok(ReturnDataRecord {
                    attempt: r.get(0)?,
                    data: r.get(1)?,
                    problem: r.get(2)?,
                })
            })
            .optional()?)
    }
}
