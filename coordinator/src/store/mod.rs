//! The embedded SQL store (SQLite, WAL, synchronous=FULL): runs, attempts, jobsets, group
//! limits, job definitions. Log bytes are not here; they live in files (see `logs`).
//!
//! The store is owned by the engine thread alone, so it needs no locking. Writes happen inside
//! [`Store::batch`]: one transaction per dispatch cycle, so durability costs one fsync per
//! batch, not one per run.

mod artifacts;
mod audit;
mod model;
mod outbox;
mod prune;
mod return_data;
mod runs;
mod schema;

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

pub use artifacts::ArtifactRecord;
pub use audit::AuditRecord;
pub use model::*;
pub use outbox::OutboxRecord;
pub use prune::PruneCandidate;
pub use return_data::ReturnDataRecord;

/// Errors of the store, carrying what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: corrupt record: {0}")]
    Corrupt(String),
    #[error(
        "store at {path} has schema version {found}, newer than this binary knows ({known}): \
         it was written by a newer rota-coordinator; run that version (or newer), or restore a backup"
    )]
    TooNew {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("store: cannot sync the write-ahead log {path}: {source}")]
    Sync {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
    /// `<db>-wal`, fsynced by hand after a relaxed batch that turned out to need durability.
    wal_path: std::path::PathBuf,
    /// How long the last batch's commit (and its fsync) took, for the commit-latency metric.
    last_commit: std::time::Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        // WAL + synchronous=FULL: a committed transaction survives kill -9 and power loss.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // After a checkpoint the WAL is cut back to this size, so one large batch (a 100,000
        // run submit) does not leave a WAL of its size on disk for the life of the process.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(open_err)?;
        // Pages of deleted runs go back to the filesystem in small steps after each prune
        // batch (`PRAGMA incremental_vacuum`), never in one long VACUUM. This takes effect at
        // once on a new store (before its first table).
        // Only on a new store: setting it writes the header, which a start on a full disk
        // must not need.
        let tables: u32 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(open_err)?;
        if tables == 0 {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .map_err(open_err)?;
        }
        schema::migrate(&conn, path)?;
        match enable_incremental_vacuum(&conn, path) {
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                tracing::warn!(path = %path.display(), "no space to switch the store to incremental vacuum, tried again at the next start: {e}");
            }
            other => other.map_err(open_err)?,
        }
        // One small write now, so a store that cannot be written (read-only file or mount)
        // fails the start before the address is announced, not the first submit. A full disk
        // is not such a store: the coordinator starts and refuses new work until space returns.
        let probe = conn.execute(
            "INSERT INTO config(key, value) VALUES ('opened_at', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![crate::time::now_millis().to_string()],
        );
        match probe {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                tracing::warn!(path = %path.display(), "store opened on a full disk: {e}");
            }
            Err(e) => return Err(open_err(e)),
        }
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        Ok(Store {
            conn,
            wal_path: wal_path.into(),
            last_commit: std::time::Duration::ZERO,
        })
    }

    /// Runs `f` in one transaction; commits when it returns Ok, with an fsync.
    pub fn batch<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Batch<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.batch_then(false, |b| f(b).map(|out| (out, true)))
    }

    /// Runs `f` in one transaction, which `f` ends by saying whether it must be durable
    /// before this returns. With `relaxed` the commit skips SQLite's fsync (synchronous=NORMAL;
    /// SQLite refuses to change that inside a transaction, hence the up-front guess), and when
    /// `f` nevertheless says durable, the WAL is fsynced here, which is what FULL would have
    /// done. A commit without fsync is still atomic and ordered: the next fsynced commit makes
    /// it durable too, and a crash before that loses only it, so it is only for changes nobody
    /// was told are durable.
    pub fn batch_then<T, E: From<StoreError>>(
        &mut self,
        relaxed: bool,
        f: impl FnOnce(&Batch<'_>) -> std::result::Result<(T, bool), E>,
    ) -> std::result::Result<T, E> {
        if relaxed {
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(StoreError::from)?;
        }
        let mut committing = None;
        let result = (|| -> std::result::Result<(T, bool), E> {
            let tx = self.conn.transaction().map_err(StoreError::from)?;
            let (out, durable) = f(&Batch { tx: &tx })?;
            committing = Some(std::time::Instant::now());
            tx.commit().map_err(StoreError::from)?;
            Ok((out, durable))
        })();
        if relaxed {
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(StoreError::from)?;
        }
        let (out, durable) = result?;
        if relaxed && durable {
            self.sync_wal().map_err(E::from)?;
        }
        self.last_commit = committing.map_or(std::time::Duration::ZERO, |t| t.elapsed());
        Ok(out)
    }

    /// How long the last batch took to commit, fsync included.
    pub fn last_commit(&self) -> std::time::Duration {
        self.last_commit
    }

    fn sync_wal(&self) -> Result<()> {
        std::fs::File::open(&self.wal_path)
            .and_then(|wal| wal.sync_data())
            .map_err(|source| StoreError::Sync {
                path: self.wal_path.display().to_string(),
                source,
            })
    }

    /// Read access outside a batch.
    pub fn read(&self) -> Reader<'_> {
        Reader { conn: &self.conn }
    }
}

/// A store made before retention has `auto_vacuum = NONE`, which only a VACUUM can change.
/// Below [`VACUUM_AT_OPEN_MAX`] that is done at open, once (seconds at most); a larger store is
/// left as it is with a warning, and docs/operations.md says how to switch it while stopped.
fn enable_incremental_vacuum(conn: &Connection, path: &Path) -> rusqlite::Result<()> {
    let mode: u32 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == 2 {
        return Ok(());
    }
    let bytes: u64 = conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?;
    if bytes > VACUUM_AT_OPEN_MAX {
        tracing::warn!(path = %path.display(), bytes, "store does not return deleted space to the filesystem (auto_vacuum NONE); stop the coordinator and run: sqlite3 rota.db 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM;'");
        return Ok(());
    }
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    tracing::info!(path = %path.display(), bytes, "store switched to incremental vacuum");
    Ok(())
}

/// Bytes the WAL keeps after a checkpoint (`PRAGMA journal_size_limit`).
const WAL_SIZE_LIMIT: i64 = 4 << 20;

/// The largest store switched to incremental vacuum at open (a VACUUM rewrites it whole).
const VACUUM_AT_OPEN_MAX: u64 = 1 << 30;

/// Writes (and reads) inside one transaction.
pub struct Batch<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

/// Reads on the store's connection.
pub struct Reader<'a> {
    conn: &'a Connection,
}

impl Batch<'_> {
    pub fn read(&self) -> Reader<'_> {
        Reader { conn: self.tx }
    }

    pub fn upsert_jobset(&self, js: &JobsetRecord) -> Result<()> {
        self.tx.execute(
            "INSERT INTO jobsets(name, parallel, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET parallel = excluded.parallel",
            params![js.name, js.parallel, js.created_at],
        )?;
        Ok(())
    }

    /// Sets a group's max; None removes the definition (back to the implicit 1).
    pub fn set_group_max(&self, name: &str, max: Option<u32>) -> Result<()> {
        match max {
            Some(m) => self.tx.execute(
                "INSERT INTO groups(name, max) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET max = excluded.max",
                params![name, m],
            )?,
            None => self.tx.execute("DELETE FROM groups WHERE name = ?1", params![name])?,
        };
        Ok(())
    }

    pub fn set_config(&self, key: &str, value: &str) -> Result<()> {
        self.tx.execute(
            "INSERT INTO config(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

impl Reader<'_> {
    pub fn jobset(&self, name: &str) -> Result<Option<JobsetRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT name, parallel, created_at FROM jobsets WHERE name = ?1",
                params![name],
                |r| {
                    Ok(JobsetRecord {
                        name: r.get(0)?,
                        parallel: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn jobsets(&self) -> Result<Vec<JobsetRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, parallel, created_at FROM jobsets ORDER BY created_at, name")?;
        let rows = stmt.query_map([], |r| {
            Ok(JobsetRecord {
                name: r.get(0)?,
                parallel: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Run counts per state of one jobset.
    pub fn jobset_counts(&self, name: &str) -> Result<Vec<(String, u64)>> {
        self.pairs(
            "SELECT state, COUNT(*) FROM runs WHERE jobset = ?1 GROUP BY state",
            params![name],
        )
    }

    /// Run counts per state over the whole store, from the `runs_by_state` index.
    pub fn run_counts(&self) -> Result<Vec<(String, u64)>> {
        self.pairs("SELECT state, COUNT(*) FROM runs GROUP BY state", [])
    }

    /// Rows of two columns, from a cached statement.
    fn pairs<A, B>(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<(A, B)>>
    where
        A: rusqlite::types::FromSql,
        B: rusqlite::types::FromSql,
    {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn groups(&self) -> Result<Vec<(String, u32)>> {
        self.pairs("SELECT name, max FROM groups ORDER BY name", [])
    }

    pub fn config(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM config WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// When the oldest run held was submitted (numbers grow with time: the lowest number is
    /// the oldest, one primary-key lookup); `None` for an empty store.
    pub fn oldest_submitted_at(&self) -> Result<Option<u64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT submitted_at FROM runs ORDER BY number LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The highest run number ever given out (numbers are gap-free from 1).
    pub fn max_number(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(number), 0) FROM runs", [], |r| {
                r.get(0)
            })?)
    }
}

#[cfg(test)]
mod tests;
