//! Rows of retention: finding finished runs past a policy through indexes (never a scan of
//! every run), and deleting them in two steps so a crash between them leaves no orphans.
//!
//! 1. [`Batch::queue_prune`] records the runs in `prune_queue`, committed before any file
//!    is touched.
//! 2. Their files are removed (off the engine thread).
//! 3. [`Batch::delete_runs`] deletes the rows, the queue entries, and jobsets left empty.
//!
//! A start finds what a crash left in `prune_queue` ([`Reader::prune_queue`]) and does 2 and 3
//! again; both are idempotent.

use super::sql::{args, Dialect, Row};
use super::{Batch, Reader, Result};

/// The SQL of "finished", written exactly as in the `runs_done_by_finish` index's WHERE so
/// the database can use that partial index.
const FINISHED: &str = "state IN ('success', 'errored', 'cancelled', 'skipped', 'retired')";

/// Pages handed back to the filesystem after each prune batch (4 KiB pages: 8 MiB), so an
/// SQLite store shrinks as it is pruned without one long vacuum. (PostgreSQL's autovacuum
/// does this by itself.)
const VACUUM_PAGES: u32 = 2048;

/// What retention reads of a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneCandidate {
    pub number: u64,
    pub id: String,
    pub jobset: String,
    pub job: Option<String>,
    pub state: String,
    pub finished_at: u64,
}

fn candidate_columns(d: Dialect) -> String {
    format!(
        "number, id, jobset, {}, state, finished_at",
        d.job_of_spec()
    )
}

fn candidate(r: &Row) -> Result<PruneCandidate> {
    Ok(PruneCandidate {
        number: r.get(0)?,
        id: r.get(1)?,
        jobset: r.get(2)?,
        job: r.get(3)?,
        state: r.get(4)?,
        finished_at: r.get(5)?,
    })
}

impl Reader<'_> {
    /// Finished runs that finished before `cutoff`, oldest first, after `(finished_at,
    /// number)` `after`: one range of the `runs_done_by_finish` index.
    pub fn finished_before(
        &self,
        cutoff: u64,
        after: (u64, u64),
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        let d = self.db.dialect();
        self.db.map(
            &format!(
                "SELECT {} FROM runs {} \
                 WHERE {FINISHED} AND finished_at < ?1 AND (finished_at, number) > (?2, ?3) \
                 ORDER BY finished_at, number LIMIT ?4",
                candidate_columns(d),
                d.indexed_by("runs_done_by_finish")
            ),
            args![cutoff, after.0, after.1, limit],
            candidate,
        )
    }

    /// Finished runs of defined job `job`, newest first, skipping the newest `skip`: one
    /// range of the `runs_by_job` index.
    pub fn finished_of_job(
        &self,
        job: &str,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        let job_of = self.db.dialect().job_of_spec();
        self.newest_finished(&format!("{job_of} = ?1"), job_of, job, skip, limit)
    }

    /// Finished ad hoc runs (of no defined job) of jobset `jobset`, newest first, skipping the
    /// newest `skip`: one range of the `runs_by_jobset` index.
    pub fn finished_adhoc_of_jobset(
        &self,
        jobset: &str,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        let filter = format!(
            "jobset = ?1 AND {} IS NULL",
            self.db.dialect().job_of_spec()
        );
        self.newest_finished(&filter, "jobset", jobset, skip, limit)
    }

    /// Finished runs matching `filter` (on `?1` = `key`), newest first past `skip`, ordered
    /// by `index_column, number` so the database walks that index backwards.
    fn newest_finished(
        &self,
        filter: &str,
        index_column: &str,
        key: &str,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        self.db.map(
            &format!(
                "SELECT {} FROM runs WHERE {filter} AND {FINISHED} \
                 ORDER BY {index_column} DESC, number DESC LIMIT ?3 OFFSET ?2",
                candidate_columns(self.db.dialect())
            ),
            args![key, skip, limit],
            candidate,
        )
    }

    /// Runs queued for deletion whose rows are not yet deleted: (number, id).
    pub fn prune_queue(&self) -> Result<Vec<(u64, String)>> {
        self.pairs("SELECT number, id FROM prune_queue ORDER BY number", &[])
    }
}

impl Batch<'_> {
    /// Step 1: records that these runs are being deleted.
    pub fn queue_prune(&self, runs: &[(u64, String)]) -> Result<()> {
        for (number, id) in runs {
            self.db.exec(
                "INSERT INTO prune_queue(number, id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                args![number, id],
            )?;
        }
        Ok(())
    }

    /// Step 3: deletes the runs' rows (run, attempts, cancel requests, queue entry), then each
    /// of their jobsets that no run is left in, then returns freed pages to the filesystem.
    pub fn delete_runs(&self, numbers: &[u64]) -> Result<()> {
        let mut jobsets = std::collections::BTreeSet::new();
        let deletes = [
            "DELETE FROM attempts WHERE run = ?1",
            "DELETE FROM cancel_requests WHERE run = ?1",
            // Webhook deliveries that are done with (a pending one is still sent: its
            // payload is in the row) and the run's links into the audit trail; return data
            // and artifact rows go by their foreign keys' ON DELETE CASCADE.
            "DELETE FROM outbox WHERE run = ?1 AND state != 'pending'",
            // An audit entry goes with the last run it names (entries naming no run, such
            // as a group's max, are kept).
            "DELETE FROM audit WHERE id IN (SELECT audit FROM audit_runs WHERE run = ?1) \
             AND NOT EXISTS (SELECT 1 FROM audit_runs o WHERE o.audit = audit.id AND o.run != ?1)",
            "DELETE FROM audit_runs WHERE run = ?1",
            "DELETE FROM runs WHERE number = ?1",
            "DELETE FROM prune_queue WHERE number = ?1",
        ];
        for &n in numbers {
            let jobset: Option<String> =
                self.db
                    .first("SELECT jobset FROM runs WHERE number = ?1", args![n], |r| {
                        r.get(0)
                    })?;
            jobsets.extend(jobset);
            for sql in deletes {
                self.db.exec(sql, args![n])?;
            }
        }
        for js in &jobsets {
            self.db.exec(
                "DELETE FROM jobsets WHERE name = ?1 AND NOT EXISTS (SELECT 1 FROM runs WHERE jobset = ?1)",
                args![js],
            )?;
        }
        if self.db.dialect() == Dialect::Sqlite {
            self.db
                .rows(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"), &[])?;
        }
        Ok(())
    }
}
