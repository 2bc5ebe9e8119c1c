//! The embedded backend: SQLite in `--data-dir` (WAL, synchronous=FULL), owned by the engine
//! thread alone, so it needs no locking.

use std::path::{Path, PathBuf};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;

use super::sql::{Backend, Dialect, Row, Sql, Value};
use super::{schema, Result, StoreError};

pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    /// `<db>-wal`, fsynced by hand after a relaxed batch that turned out to need durability.
    wal_path: PathBuf,
    /// The open batch was begun relaxed (synchronous=NORMAL until it ends).
    relaxed: bool,
}

impl Sqlite {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Sqlite> {
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
            [crate::time::now_millis().to_string()],
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
        Ok(Sqlite {
            conn,
            path: path.to_owned(),
            wal_path: wal_path.into(),
            relaxed: false,
        })
    }

    fn sync_wal(&self) -> Result<()> {
        std::fs::File::open(&self.wal_path)
            .and_then(|wal| wal.sync_data())
            .map_err(|source| StoreError::Sync {
                path: self.wal_path.display().to_string(),
                source,
            })
    }

    fn end_relaxed(&mut self) -> Result<()> {
        if std::mem::take(&mut self.relaxed) {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        Ok(())
    }
}

impl Sql for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec(&self, sql: &str, args: &[Value]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(args))? as u64)
    }

    fn rows(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                    ValueRef::Real(f) => {
                        return Err(StoreError::Corrupt(format!(
                            "column {i}: a real number ({f}) where the schema has none"
                        )))
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

impl Backend for Sqlite {
    /// A relaxed batch commits without SQLite's fsync (synchronous=NORMAL; SQLite refuses to
    /// change that inside a transaction, hence the up-front guess), and when it nevertheless
    /// must be durable, the WAL is fsynced after the commit, which is what FULL would have done.
    /// A commit without fsync is still atomic and ordered: the next fsynced commit makes it
    /// durable too, and a crash before that loses only it.
    fn begin(&mut self, relaxed: bool) -> Result<()> {
        if relaxed {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
            self.relaxed = true;
        }
        if let Err(e) = self.conn.execute_batch("BEGIN") {
            self.end_relaxed()?;
            return Err(e.into());
        }
        Ok(())
    }

    fn commit(&mut self, durable: bool) -> Result<()> {
        let relaxed = self.relaxed;
        let committed = self.conn.execute_batch("COMMIT");
        if committed.is_err() {
            // A failed COMMIT (a full disk) leaves the transaction open: undo it, so the next
            // batch starts clean.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.end_relaxed()?;
        committed?;
        if relaxed && durable {
            self.sync_wal()?;
        }
        Ok(())
    }

    fn rollback(&mut self) {
        if let Err(e) = self.conn.execute_batch("ROLLBACK") {
            tracing::warn!(path = %self.path.display(), "store rollback: {e}");
        }
        if let Err(e) = self.end_relaxed() {
            tracing::warn!(path = %self.path.display(), "store: {e}");
        }
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::TooBig(n) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    Value::too_big(*n).into(),
                ))
            }
        }))
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
