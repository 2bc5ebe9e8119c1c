//! Return data rows: what a run left in `RUN_DIR/return_data.{json,yaml}`, one row per run
//! (its latest attempt that left any), deleted with the run (`ON DELETE CASCADE`).
//!
//! A table of its own rather than columns of `runs`: most runs leave none, and the run rows
//! are read on every list.

use super::sql::args;

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
    pub fn put_return_data(&self, run: u64, r: &ReturnDataRecord) -> Result<()> {
        self.db.exec(
            "INSERT INTO return_data(run, attempt, data, problem) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(run) DO UPDATE SET attempt = excluded.attempt, data = excluded.data, \
             problem = excluded.problem",
            args![run, r.attempt, r.data, r.problem],
        )?;
        Ok(())
    }
}

impl Reader<'_> {
    pub fn return_data(&self, run: u64) -> Result<Option<ReturnDataRecord>> {
        self.db.first(
            "SELECT attempt, data, problem FROM return_data WHERE run = ?1",
            args![run],
            |r| {
                Ok(ReturnDataRecord {
                    attempt: r.get(0)?,
                    data: r.get(1)?,
                    problem: r.get(2)?,
                })
            },
        )
    }
}
