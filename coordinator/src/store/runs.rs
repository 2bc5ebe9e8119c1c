//! Run and attempt rows.

use super::sql::{args, Row, ToValue, Value};
use super::{AttemptRecord, Batch, Reader, Result, RunFilter, RunRecord, StoreError};

/// The columns of a run, in the order [`run_from_row`] reads them and `insert_run` binds them.
macro_rules! run_columns {
    () => {
        "number, id, name, jobset, priority, spec, state, attempt, agent, grp, exit_code, signal, \
         error, not_before, submitted_at, started_at, finished_at, stdout_len, stderr_len"
    };
}

pub(super) const RUN_COLUMNS: &str = run_columns!();

const INSERT_RUN: &str = concat!("INSERT INTO runs(", run_columns!(), ")");

fn run_from_row(r: &Row) -> Result<RunRecord> {
    with_spec((
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

fn attempt_from_row(r: &Row) -> Result<AttemptRecord> {
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
    /// Inserts a run; it reaches the database with the batch's next statement or its commit,
    /// in one multi-row insert with the runs inserted beside it.
    pub fn insert_run(&self, run: &RunRecord) -> Result<()> {
        let spec =
            serde_json::to_string(&run.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.buffered.insert_later(
            INSERT_RUN,
            args![
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
            ]
            .to_vec(),
        )
    }

    /// Writes every mutable field of a run.
    pub fn update_run(&self, run: &RunRecord) -> Result<()> {
        self.db.exec(
            "UPDATE runs SET state = ?2, attempt = ?3, agent = ?4, grp = ?5, exit_code = ?6, signal = ?7, error = ?8, \
             not_before = ?9, started_at = ?10, finished_at = ?11, stdout_len = ?12, stderr_len = ?13 WHERE number = ?1",
            args![
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
            ],
        )?;
        Ok(())
    }

    /// Stores that a cancel was requested for this attempt of a running run. Rows are keyed by
    /// attempt, so a later retry of the run is not affected and nothing needs deleting.
    pub fn request_cancel(&self, run: u64, attempt: u32) -> Result<()> {
        self.db.exec(
            "INSERT INTO cancel_requests(run, attempt) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![run, attempt],
        )?;
        Ok(())
    }

    /// Inserts or replaces one attempt row.
    pub fn put_attempt(&self, a: &AttemptRecord) -> Result<()> {
        self.db.exec(
            "INSERT INTO attempts(run, attempt, agent, grp, state, started_at, finished_at, exit_code, signal, error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(run, attempt) DO UPDATE SET \
             agent = excluded.agent, grp = excluded.grp, state = excluded.state, started_at = excluded.started_at, \
             finished_at = excluded.finished_at, exit_code = excluded.exit_code, signal = excluded.signal, \
             error = excluded.error",
            args![
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
            ],
        )?;
        Ok(())
    }
}

impl Reader<'_> {
    pub fn run_by_number(&self, number: u64) -> Result<Option<RunRecord>> {
        self.db.first(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE number = ?1"),
            args![number],
            run_from_row,
        )
    }

    pub fn run_by_id(&self, id: &str) -> Result<Option<RunRecord>> {
        self.db.first(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
            args![id],
            run_from_row,
        )
    }

    /// Runs matching a filter, by number, a page at a time (`after_number`, `limit`).
    ///
    /// The statement names only the columns the filter tests: with `?1 IS NULL OR jobset =
    /// ?1` SQLite cannot use an index and walks the table, so a filtered page of a 100,000-run
    /// jobset would read every run before it. It binds only the arguments it names, as
    /// PostgreSQL cannot type a parameter no expression uses.
    pub fn runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>> {
        let limit = if f.limit == 0 {
            i64::MAX
        } else {
            i64::from(f.limit)
        };
        let mut filter = String::new();
        let mut values: Vec<Value> = Vec::with_capacity(4);
        for (column, value) in [("jobset", &f.jobset), ("state", &f.state)] {
            if let Some(v) = value {
                values.push(v.to_value());
                filter.push_str(&format!("{column} = ?{} AND ", values.len()));
            }
        }
        let after = values.len() + 1;
        values.extend([f.after_number.to_value(), Value::Int(limit)]);
        self.db.map(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE {filter}number > ?{after} ORDER BY number LIMIT ?{}",
                after + 1
            ),
            &values,
            run_from_row,
        )
    }

    /// Every run not in a final state, by number: what the scheduler reloads after a restart.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        self.db.map(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE state IN ('pending', 'assigned', 'running') ORDER BY number"
            ),
            &[],
            run_from_row,
        )
    }

    /// The (run, attempt) pairs a cancel was requested for while they ran: a restart must not
    /// forget them, or the cancelled process's report would queue the run again.
    pub fn cancel_requests(&self) -> Result<std::collections::HashSet<(u64, u32)>> {
        Ok(self
            .pairs("SELECT run, attempt FROM cancel_requests", &[])?
            .into_iter()
            .collect())
    }

    /// Runs that list `number` in their `after`, by number.
    pub fn dependents(&self, number: u64) -> Result<Vec<RunRecord>> {
        // `after` lives in the JSON spec; the dialect's JSON keeps this a single query.
        let after = self.db.dialect().after_contains_first_arg();
        self.db.map(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE number > ?1 AND {after} ORDER BY number"
            ),
            args![number],
            run_from_row,
        )
    }

    /// (id, exit code) of the last finished run of a defined job.
    pub fn last_finished_of_job(&self, job: &str) -> Result<Option<(String, Option<i32>)>> {
        let job_of = self.db.dialect().job_of_spec();
        self.db.first(
            &format!(
                "SELECT id, exit_code FROM runs WHERE {job_of} = ?1 \
                 AND state IN ('success', 'errored', 'cancelled', 'retired') ORDER BY number DESC LIMIT 1"
            ),
            args![job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
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
        let job_of = self.db.dialect().job_of_spec();
        self.db.first(
            &format!(
                "SELECT id, number, exit_code FROM runs WHERE {job_of} = ?1 \
                 AND number < ?2 AND state IN {states} ORDER BY number DESC LIMIT 1"
            ),
            args![job, before],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    pub fn attempts(&self, run: u64) -> Result<Vec<AttemptRecord>> {
        self.db.map(
            "SELECT run, attempt, agent, grp, state, started_at, finished_at, exit_code, signal, error \
             FROM attempts WHERE run = ?1 ORDER BY attempt",
            args![run],
            attempt_from_row,
        )
    }
}
