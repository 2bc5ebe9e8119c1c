//! Run and attempt rows.

use rusqlite::{params, OptionalExtension, Row};

use super::{AttemptRecord, Batch, Reader, Result, RunFilter, RunRecord, StoreError};

const RUN_COLUMNS: &str =
    "number, id, name, jobset, priority, spec, state, attempt, agent, grp, exit_code, signal, \
     error, not_before, submitted_at, started_at, finished_at, stdout_len, stderr_len";

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<(RunRecord, String)> {
    Ok((
        RunRecord {
            number: r.get(0)?,
            id: r.get(1)?,
            name: r.get(2)?,
            jobset: r.get(3)?,
            priority: r.get(4)?,
            spec: Default::default(),
            state: r.get(6)?,
            attempt: r.get(7)?,
            agent: r.get(8)?,
            group: r.get(9)?,
            exit_code: r.get(10)?,
            signal: r.get(11)?,
            error: r.get(12)?,
            not_before: r.get(13)?,
            submitted_at: r.get(14)?,
            started_at: r.get(15)?,
            finished_at: r.get(16)?,
            stdout_len: r.get(17)?,
            stderr_len: r.get(18)?,
        },
        r.get(5)?,
    ))
}

fn with_spec((mut rec, spec): (RunRecord, String)) -> Result<RunRecord> {
    rec.spec = serde_json::from_str(&spec)
        .map_err(|e| StoreError::Corrupt(format!("run {}: spec: {e}", rec.number)))?;
    Ok(rec)
}

fn attempt_from_row(r: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        run: r.get(0)?,
        attempt: r.get(1)?,
        agent: r.get(2)?,
        group: r.get(3)?,
        state: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        exit_code: r.get(7)?,
        signal: r.get(8)?,
        error: r.get(9)?,
    })
}

impl Batch<'_> {
    pub fn insert_run(&self, run: &RunRecord) -> Result<()> {
        let spec =
            serde_json::to_string(&run.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut stmt = self.tx.prepare_cached(&format!(
            "INSERT INTO runs({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ))?;
        stmt.execute(params![
            run.number,
            run.id,
            run.name,
            run.jobset,
            run.priority,
            spec,
            run.state,
            run.attempt,
            run.agent,
            run.group,
            run.exit_code,
            run.signal,
            run.error,
            run.not_before,
            run.submitted_at,
            run.started_at,
            run.finished_at,
            run.stdout_len,
            run.stderr_len
        ])?;
        Ok(())
    }

    /// Writes every mutable field of a run.
    pub fn update_run(&self, run: &RunRecord) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "UPDATE runs SET state = ?2, attempt = ?3, agent = ?4, grp = ?5, exit_code = ?6, signal = ?7, error = ?8, \
             not_before = ?9, started_at = ?10, finished_at = ?11, stdout_len = ?12, stderr_len = ?13 WHERE number = ?1",
        )?;
        stmt.execute(params![
            run.number,
            run.state,
            run.attempt,
            run.agent,
            run.group,
            run.exit_code,
            run.signal,
            run.error,
            run.not_before,
            run.started_at,
            run.finished_at,
            run.stdout_len,
            run.stderr_len
        ])?;
        Ok(())
    }

    /// Stores that a cancel was requested for this attempt of a running run. Rows are keyed by
    /// attempt, so a later retry of the run is not affected and nothing needs deleting.
    pub fn request_cancel(&self, run: u64, attempt: u32) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO cancel_requests(run, attempt) VALUES (?1, ?2)",
        )?;
        stmt.execute(params![run, attempt])?;
        Ok(())
    }

    /// Inserts or replaces one attempt row.
    pub fn put_attempt(&self, a: &AttemptRecord) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO attempts(run, attempt, agent, grp, state, started_at, finished_at, exit_code, signal, error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        stmt.execute(params![
            a.run,
            a.attempt,
            a.agent,
            a.group,
            a.state,
            a.started_at,
            a.finished_at,
            a.exit_code,
            a.signal,
            a.error
        ])?;
        Ok(())
    }
}

impl Reader<'_> {
    pub fn run_by_number(&self, number: u64) -> Result<Option<RunRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE number = ?1"))?;
        stmt.query_row(params![number], run_from_row)
            .optional()?
            .map(with_spec)
            .transpose()
    }

    pub fn run_by_id(&self, id: &str) -> Result<Option<RunRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?;
        stmt.query_row(params![id], run_from_row)
            .optional()?
            .map(with_spec)
            .transpose()
    }

    /// Runs matching a filter, by number, a page at a time (`after_number`, `limit`).
    ///
    /// One statement per shape of filter, each naming only the columns it tests: with
    /// `?1 IS NULL OR jobset = ?1` SQLite cannot use an index and walks the table, so a
    /// filtered page of a 100,000-run jobset would read every run before it.
    pub fn runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>> {
        let limit = if f.limit == 0 { -1 } else { f.limit as i64 };
        let filter = match (&f.jobset, &f.state) {
            (Some(_), Some(_)) => "jobset = ?1 AND state = ?2 AND",
            (Some(_), None) => "jobset = ?1 AND",
            (None, Some(_)) => "state = ?2 AND",
            (None, None) => "",
        };
        // Every statement names ?4, so all four parameters bind even where ?1 or ?2 is unused.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE {filter} number > ?3 ORDER BY number LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![f.jobset, f.state, f.after_number, limit],
            run_from_row,
        )?;
        rows.map(|r| with_spec(r?)).collect()
    }

    /// Every run not in a final state, by number: what the scheduler reloads after a restart.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE state IN ('pending', 'assigned', 'running') ORDER BY number"
        ))?;
        let rows = stmt.query_map([], run_from_row)?;
        rows.map(|r| with_spec(r?)).collect()
    }

    /// The (run, attempt) pairs a cancel was requested for while they ran: a restart must not
    /// forget them, or the cancelled process's report would queue the run again.
    pub fn cancel_requests(&self) -> Result<std::collections::HashSet<(u64, u32)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT run, attempt FROM cancel_requests")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Runs that list `number` in their `after`, by number.
    pub fn dependents(&self, number: u64) -> Result<Vec<RunRecord>> {
        // `after` lives in the JSON spec; json_each keeps this a single query.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE number > ?1 AND EXISTS \
             (SELECT 1 FROM json_each(runs.spec, '$.after') WHERE value = ?1) ORDER BY number"
        ))?;
        let rows = stmt.query_map(params![number], run_from_row)?;
        rows.map(|r| with_spec(r?)).collect()
    }

    /// (id, exit code) of the last finished run of a defined job.
    pub fn last_finished_of_job(&self, job: &str) -> Result<Option<(String, Option<i32>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, exit_code FROM runs WHERE json_extract(spec, '$.job') = ?1 \
             AND state IN ('success', 'errored', 'cancelled', 'retired') ORDER BY number DESC LIMIT 1",
        )?;
        Ok(stmt
            .query_row(params![job], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// (id, number, exit code) of the last run of a defined job before run `before` that
    /// succeeded (`good`) or finished otherwise (errored, cancelled or retired): dsari's
    /// PREVIOUS_GOOD_* and PREVIOUS_BAD_*.
    pub fn last_of_job(
        &self,
        job: &str,
        before: u64,
        good: bool,
    ) -> Result<Option<(String, u64, Option<i32>)>> {
        let states = if good {
            "('success')"
        } else {
            "('errored', 'cancelled', 'retired')"
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, number, exit_code FROM runs WHERE json_extract(spec, '$.job') = ?1 \
             AND number < ?2 AND state IN {states} ORDER BY number DESC LIMIT 1"
        ))?;
        Ok(stmt
            .query_row(params![job, before], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?)
    }

    pub fn attempts(&self, run: u64) -> Result<Vec<AttemptRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run, attempt, agent, grp, state, started_at, finished_at, exit_code, signal, error \
             FROM attempts WHERE run = ?1 ORDER BY attempt",
        )?;
        let rows = stmt.query_map(params![run], attempt_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
