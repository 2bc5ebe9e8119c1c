//! The store's schema as numbered migrations, applied at open: SQLite's `user_version` holds
//! how many have been applied. A store written by a newer binary (a higher version than this
//! one knows) is refused rather than guessed at, so a downgrade cannot silently misread rows.
//!
//! To change the schema, append a migration; never edit one that has shipped. Version 1 is the
//! schema from before versioning (every statement `IF NOT EXISTS`), so stores made then open
//! as version 1 without a change.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

/// Migration `i` brings the store from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs, attempts, cancels, jobsets, groups, config.
    "
CREATE TABLE IF NOT EXISTS runs (
    number       INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    jobset       TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    spec         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    agent        TEXT NOT NULL DEFAULT '',
    grp          TEXT NOT NULL DEFAULT '',
    exit_code    INTEGER,
    signal       INTEGER,
    error        TEXT NOT NULL DEFAULT '',
    not_before   INTEGER NOT NULL DEFAULT 0,
    submitted_at INTEGER NOT NULL,
    started_at   INTEGER NOT NULL DEFAULT 0,
    finished_at  INTEGER NOT NULL DEFAULT 0,
    stdout_len   INTEGER NOT NULL DEFAULT 0,
    stderr_len   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs(state, number);
CREATE INDEX IF NOT EXISTS runs_by_jobset ON runs(jobset, number);
CREATE TABLE IF NOT EXISTS attempts (
    run         INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    agent       TEXT NOT NULL,
    grp         TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL DEFAULT 0,
    exit_code   INTEGER,
    signal      INTEGER,
    error       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run, attempt)
);
CREATE TABLE IF NOT EXISTS cancel_requests (
    run     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    PRIMARY KEY (run, attempt)
);
CREATE TABLE IF NOT EXISTS jobsets (
    name       TEXT PRIMARY KEY,
    parallel   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    max  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
",
    // Return data (what a run left in RUN_DIR/return_data.{json,yaml}, as JSON) and
    // artifacts (which content, by SHA-256, a run kept under which path).
    "
CREATE TABLE return_data (
    run     INTEGER PRIMARY KEY REFERENCES runs(number) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    data    TEXT NOT NULL,
    problem TEXT NOT NULL
);
CREATE TABLE artifacts (
    run    INTEGER NOT NULL REFERENCES runs(number) ON DELETE CASCADE,
    path   TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size   INTEGER NOT NULL,
    PRIMARY KEY (run, path)
);
CREATE INDEX artifacts_by_content ON artifacts(sha256);
",
    // The webhook outbox, the jobsets' webhooks, the audit trail. Outbox and audit rows
    // carry the run number and a time, so retention prunes them like runs.
    "
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    run          INTEGER NOT NULL,
    jobset       TEXT NOT NULL,
    event        TEXT NOT NULL,
    url          TEXT NOT NULL,
    format       TEXT NOT NULL,
    secret_file  TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_status  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    delivered_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox(state) WHERE state = 'pending';
CREATE INDEX outbox_by_run ON outbox(run);
CREATE TABLE jobset_notify (
    jobset  TEXT PRIMARY KEY,
    targets TEXT NOT NULL
);
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    caller TEXT NOT NULL,
    role   TEXT NOT NULL,
    peer   TEXT NOT NULL,
    method TEXT NOT NULL,
    target TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit(at);
CREATE TABLE audit_runs (
    run   INTEGER NOT NULL,
    audit INTEGER NOT NULL,
    PRIMARY KEY (run, audit)
) WITHOUT ROWID;
CREATE INDEX audit_runs_by_audit ON audit_runs(audit);
",
    // A jobset's runs in one state by number (the dashboard's filtered pages, retry
    // --failed) and its counts by state, from the index alone.
    "CREATE INDEX IF NOT EXISTS runs_by_jobset_state ON runs(jobset, state, number);",
    // Retention. Indexes so a prune batch reads only what it deletes (finished runs by
    // finish time; runs by job, the expression `last_of_job` also filters on), and the queue
    // of runs whose files are being deleted, so a crash mid-prune is finished at the next
    // start (see `retention`).
    "
CREATE INDEX IF NOT EXISTS runs_done_by_finish ON runs(finished_at, number)
    WHERE state IN ('success', 'errored', 'cancelled', 'skipped', 'retired');
CREATE INDEX IF NOT EXISTS runs_by_job ON runs(json_extract(spec, '$.job'), number);
CREATE TABLE IF NOT EXISTS prune_queue (
    number INTEGER PRIMARY KEY,
    id     TEXT NOT NULL
);
",
];

/// The schema version this binary writes.
pub fn current_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// Applies the migrations `conn` lacks, each in its own transaction with its version bump.
pub fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = current_version();
    if found > known {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as u32 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
        ))
        .map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        if found > 0 || version > 1 {
            tracing::info!(path = %path.display(), version, "store schema migrated");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_store_gets_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.db");
        let conn = Connection::open(&path).unwrap();
        migrate(&conn, &path).unwrap();
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, current_version());
        // Applying again is a no-op.
        migrate(&conn, &path).unwrap();
    }

    #[test]
    fn unversioned_store_from_before_migrations_opens_as_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("INSERT INTO config(key, value) VALUES ('k', 'v')")
            .unwrap();
        migrate(&conn, &path).unwrap();
        let kept: String = conn
            .query_row("SELECT value FROM config WHERE key = 'k'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "v");
    }

    #[test]
    fn newer_store_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.db");
        let conn = Connection::open(&path).unwrap();
        let newer = current_version() + 3;
        conn.execute_batch(&format!("PRAGMA user_version = {newer}"))
            .unwrap();
        let err = migrate(&conn, &path).unwrap_err().to_string();
        assert!(err.contains(&format!("schema version {newer}")), "{err}");
        assert!(
            err.contains(&format!("knows ({})", current_version())),
            "{err}"
        );
        assert!(err.contains("newer rota-coordinator"), "{err}");
    }
}
