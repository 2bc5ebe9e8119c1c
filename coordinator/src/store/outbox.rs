//! The webhook outbox and the jobsets' webhooks. Rows are written in the batch that records
//! the result they announce (so they survive whatever the result survives) and updated by the
//! engine as the sender reports; they carry the run number and times, so retention can prune
//! them with the runs (`DELETE FROM outbox WHERE run < ?` or `created_at < ?`).

use super::sql::{args, Row};

use super::{Batch, Reader, Result, StoreError};

/// One outbox row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: u64,
    pub created_at: u64,
    /// The run it is about; 0 for a jobset's end.
    pub run: u64,
    pub jobset: String,
    pub event: String,
    pub url: String,
    pub format: String,
    /// Empty: unsigned.
    pub secret_file: String,
    /// The stored part of the body (JSON).
    pub payload: String,
    /// pending | delivered | failed
    pub state: String,
    pub attempts: u32,
    pub next_at: u64,
    pub last_status: u32,
    pub last_error: String,
    pub delivered_at: u64,
}

pub(super) const COLUMNS: &str =
    "id, created_at, run, jobset, event, url, format, secret_file, payload, \
                       state, attempts, next_at, last_status, last_error, delivered_at";

fn from_row(r: &Row) -> Result<OutboxRecord> {
    Ok(OutboxRecord {
        id: r.get(0)?,
        created_at: r.get(1)?,
        run: r.get(2)?,
        jobset: r.get(3)?,
        event: r.get(4)?,
        url: r.get(5)?,
        format: r.get(6)?,
        secret_file: r.get(7)?,
        payload: r.get(8)?,
        state: r.get(9)?,
        attempts: r.get(10)?,
        next_at: r.get(11)?,
        last_status: r.get(12)?,
        last_error: r.get(13)?,
        delivered_at: r.get(14)?,
    })
}

impl Batch<'_> {
    pub fn insert_outbox(&self, o: &OutboxRecord) -> Result<u64> {
        self.db.value(
            "INSERT INTO outbox(created_at, run, jobset, event, url, format, secret_file, payload, state, attempts, next_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9) RETURNING id",
            args![
                o.created_at,
                o.run,
                o.jobset,
                o.event,
                o.url,
                o.format,
                o.secret_file,
                o.payload,
                o.next_at
            ],
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn outbox_outcome(
        &self,
        id: u64,
        state: &str,
        attempts: u32,
        next_at: u64,
        status: u32,
        error: &str,
        delivered_at: u64,
    ) -> Result<()> {
        self.db.exec(
            "UPDATE outbox SET state = ?2, attempts = ?3, next_at = ?4, last_status = ?5, last_error = ?6, \
             delivered_at = ?7 WHERE id = ?1",
            args![id, state, attempts, next_at, status, error, delivered_at],
        )?;
        Ok(())
    }

    pub fn set_jobset_notify(&self, jobset: &str, targets: &str) -> Result<()> {
        self.db.exec(
            "INSERT INTO jobset_notify(jobset, targets) VALUES (?1, ?2) \
             ON CONFLICT(jobset) DO UPDATE SET targets = excluded.targets",
            args![jobset, targets],
        )?;
        Ok(())
    }
}

impl Reader<'_> {
    pub fn pending_outbox(&self) -> Result<Vec<OutboxRecord>> {
        self.db.map(
            &format!("SELECT {COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY id"),
            &[],
            from_row,
        )
    }

    /// The newest deliveries, of run `run` (0: of every run).
    pub fn outbox(&self, run: u64, limit: u32) -> Result<Vec<OutboxRecord>> {
        if run == 0 {
            self.db.map(
                &format!("SELECT {COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?1"),
                args![limit],
                from_row,
            )
        } else {
            self.db.map(
                &format!("SELECT {COLUMNS} FROM outbox WHERE run = ?1 ORDER BY id DESC LIMIT ?2"),
                args![run, limit],
                from_row,
            )
        }
    }

    pub fn jobset_notify(&self) -> Result<Vec<(String, String)>> {
        self.pairs("SELECT jobset, targets FROM jobset_notify", &[])
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
