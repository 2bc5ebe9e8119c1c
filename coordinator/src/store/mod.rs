//! The store: runs, attempts, jobsets, group limits, job definitions, the outbox and the
//! audit trail, in SQLite embedded in `--data-dir` (WAL, synchronous=FULL; the default) or in
//! PostgreSQL (`--store postgres://…`). Log bytes are not here; they live in files (see `logs`).
//!
//! The queries are written once against [`sql::Sql`]; the two backends ([`sqlite`],
//! [`pg`]) differ only in how they connect, migrate and commit. The store is owned by
//! the engine thread alone, so it needs no locking. Writes happen inside [`Store::batch`]: one
//! transaction per dispatch cycle, so durability costs one fsync per batch, not one per run.

mod artifacts;
mod audit;
mod copy;
pub mod lease;
mod model;
mod outbox;
mod pg;
mod pg_schema;
mod prune;
mod return_data;
mod runs;
mod schema;
pub mod sql;
mod sqlite;

use std::path::Path;

use sql::{args, Backend, Sql};

pub use artifacts::ArtifactRecord;
pub use audit::AuditRecord;
pub use copy::Copied;
pub use model::*;
pub use outbox::OutboxRecord;
pub use prune::PruneCandidate;

/// What another writer to a PostgreSQL store needs to write as this coordinator: the database,
/// and the lease epoch its transactions must find (see [`lease::Lease::FENCE`]).
#[derive(Debug, Clone)]
pub struct Shared {
    pub config: postgres::Config,
    /// The database, for messages (no password).
    pub location: String,
    pub epoch: i64,
    /// Set once the lease is found lost: nothing may commit after that.
    pub lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}
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
    #[error("store: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("store at {location}: cannot connect: {}", postgres_message(.source))]
    Connect {
        location: String,
        #[source]
        source: postgres::Error,
    },
    #[error("--store {url}: not a PostgreSQL URL ({reason}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    Url { url: String, reason: String },
    #[error(
        "store at {location}: another coordinator is active (lease epoch {found}, this one held \
         {mine}): this one commits nothing more"
    )]
    Fenced {
        location: String,
        mine: i64,
        found: i64,
    },
    #[error(
        "store at {location} is not empty ({rows} rows in {table}): migrate into a new database"
    )]
    NotEmpty {
        location: String,
        table: &'static str,
        rows: u64,
    },
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

/// A PostgreSQL error with its cause: the driver's own Display says only "db error" or
/// "error connecting to server" and keeps the server's message in its source.
fn postgres_message(e: &postgres::Error) -> String {
    let message = rota_proto::errors::chain(e);
    if e.code() == Some(&postgres::error::SqlState::ADMIN_SHUTDOWN) {
        // A standby ends the sessions of a holder whose lease lapsed (`lease`), which is
        // what a paused coordinator meets when it wakes.
        return format!(
            "{message} (if the server is not shutting down: this coordinator's lease lapsed and another coordinator took over)"
        );
    }
    message
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded SQLite database at this path (`DATA_DIR/rota.db`).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database, by its connection URL.
    Postgres(String),
}

pub struct Store {
    db: Box<dyn Backend>,
    /// How long the last batch's commit (and its fsync) took, for the commit-latency metric.
    last_commit: std::time::Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.db.location())
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        Ok(Store::with(Box::new(sqlite::Sqlite::open(path)?)))
    }

    /// Opens the store at `location`, migrating its schema; on PostgreSQL as this process,
    /// and a lost lease is only logged (see [`Store::open_as`]).
    pub fn open_at(location: &StoreLocation) -> Result<Store> {
        let holder = format!("{}:pid {}", host_name(), std::process::id());
        Store::open_as(location, &lease::Claim::quiet(holder))
    }

    /// Opens the store at `location`; a PostgreSQL store once `claim` holds its lease, which
    /// waits (as a standby) while another coordinator is active on it. Should the lease be
    /// lost later, no batch commits any more, and `claim.on_lost` is called.
    pub fn open_as(location: &StoreLocation, claim: &lease::Claim) -> Result<Store> {
        match location {
            StoreLocation::Sqlite(path) => Store::open(path),
            StoreLocation::Postgres(url) => {
                Ok(Store::with(Box::new(pg::Postgres::connect(url, claim)?)))
            }
        }
    }

    fn with(db: Box<dyn Backend>) -> Store {
        Store {
            db,
            last_commit: std::time::Duration::ZERO,
        }
    }

    /// Where the store is, for messages (a PostgreSQL URL without its password).
    pub fn location(&self) -> String {
        self.db.location()
    }

    /// The database shared with writers beside the store, when it is PostgreSQL.
    pub fn shared(&self) -> Option<Shared> {
        self.db.shared()
    }

    /// Runs `f` in one transaction; commits when it returns Ok, durably.
    pub fn batch<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Batch<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.batch_then(false, |b| f(b).map(|out| (out, true)))
    }

    /// Runs `f` in one transaction, which `f` ends by saying whether it must be durable
    /// before this returns. With `relaxed` the backend may commit without waiting for the
    /// disk when `f` says it need not be durable: such a commit is still atomic and ordered,
    /// and a crash loses only it (and relaxed ones after it), so it is only for changes nobody
    /// was told are durable.
    pub fn batch_then<T, E: From<StoreError>>(
        &mut self,
        relaxed: bool,
        f: impl FnOnce(&Batch<'_>) -> std::result::Result<(T, bool), E>,
    ) -> std::result::Result<T, E> {
        self.db.begin(relaxed)?;
        let buffered = sql::Buffered::new(&*self.db);
        let done = f(&Batch {
            db: &buffered,
            buffered: &buffered,
        })
        .and_then(|done| {
            buffered.flush()?;
            Ok(done)
        });
        drop(buffered);
        let (out, durable) = match done {
            Ok(done) => done,
            Err(e) => {
                self.db.rollback();
                return Err(e);
            }
        };
        let committing = std::time::Instant::now();
        self.db.commit(durable)?;
        self.last_commit = committing.elapsed();
        Ok(out)
    }

    /// How long the last batch took to commit, fsync included.
    pub fn last_commit(&self) -> std::time::Duration {
        self.last_commit
    }

    /// Read access outside a batch.
    pub fn read(&self) -> Reader<'_> {
        Reader { db: &*self.db }
    }
}

/// Writes (and reads) inside one transaction.
pub struct Batch<'a> {
    /// The batch's statements, through `buffered`.
    db: &'a dyn Sql,
    /// Run inserts wait here and go in rows of many (one round trip to PostgreSQL for
    /// hundreds of runs), before any other statement of the batch and before its commit.
    buffered: &'a sql::Buffered<'a>,
}

/// Reads on the store's connection.
pub struct Reader<'a> {
    db: &'a dyn Sql,
}

impl Batch<'_> {
    pub fn read(&self) -> Reader<'_> {
        Reader { db: self.db }
    }

    pub fn upsert_jobset(&self, js: &JobsetRecord) -> Result<()> {
        self.db.exec(
            "INSERT INTO jobsets(name, parallel, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET parallel = excluded.parallel",
            args![js.name, js.parallel, js.created_at],
        )?;
        Ok(())
    }

    /// Sets a group's max; None removes the definition (back to the implicit 1).
    pub fn set_group_max(&self, name: &str, max: Option<u32>) -> Result<()> {
        match max {
            Some(m) => self.db.exec(
                "INSERT INTO groups(name, max) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET max = excluded.max",
                args![name, m],
            )?,
            None => self.db.exec("DELETE FROM groups WHERE name = ?1", args![name])?,
        };
        Ok(())
    }

    pub fn set_config(&self, key: &str, value: &str) -> Result<()> {
        self.db.exec(
            "INSERT INTO config(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            args![key, value],
        )?;
        Ok(())
    }
}

impl Reader<'_> {
    pub fn jobset(&self, name: &str) -> Result<Option<JobsetRecord>> {
        self.db.first(
            "SELECT name, parallel, created_at FROM jobsets WHERE name = ?1",
            args![name],
            jobset_from_row,
        )
    }

    pub fn jobsets(&self) -> Result<Vec<JobsetRecord>> {
        self.db.map(
            "SELECT name, parallel, created_at FROM jobsets ORDER BY created_at, name",
            &[],
            jobset_from_row,
        )
    }

    /// Run counts per state of one jobset.
    pub fn jobset_counts(&self, name: &str) -> Result<Vec<(String, u64)>> {
        self.pairs(
            "SELECT state, COUNT(*) FROM runs WHERE jobset = ?1 GROUP BY state",
            args![name],
        )
    }

    /// Run counts per state over the whole store, from the `runs_by_state` index.
    pub fn run_counts(&self) -> Result<Vec<(String, u64)>> {
        self.pairs("SELECT state, COUNT(*) FROM runs GROUP BY state", &[])
    }

    /// Rows of two columns.
    fn pairs<A: sql::FromValue, B: sql::FromValue>(
        &self,
        sql: &str,
        args: &[sql::Value],
    ) -> Result<Vec<(A, B)>> {
        self.db.map(sql, args, |r| Ok((r.get(0)?, r.get(1)?)))
    }

    pub fn groups(&self) -> Result<Vec<(String, u32)>> {
        self.pairs("SELECT name, max FROM groups ORDER BY name", &[])
    }

    pub fn config(&self, key: &str) -> Result<Option<String>> {
        self.db
            .first("SELECT value FROM config WHERE key = ?1", args![key], |r| {
                r.get(0)
            })
    }

    /// When the oldest run held was submitted (numbers grow with time: the lowest number is
    /// the oldest, one primary-key lookup); `None` for an empty store.
    pub fn oldest_submitted_at(&self) -> Result<Option<u64>> {
        self.db.first(
            "SELECT submitted_at FROM runs ORDER BY number LIMIT 1",
            &[],
            |r| r.get(0),
        )
    }

    /// The highest run number ever given out (numbers are gap-free from 1).
    pub fn max_number(&self) -> Result<u64> {
        self.db
            .value("SELECT COALESCE(MAX(number), 0) FROM runs", &[])
    }
}

/// Runs `f` on a thread of its own and waits for it: the PostgreSQL client blocks on a runtime
/// of its own, which tokio refuses to start inside the caller's async runtime, so whatever
/// opens or uses a store from async code (the engine's start, `migrate`) goes through here.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// This machine's name, for naming a lease's holder.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

fn jobset_from_row(r: &sql::Row) -> Result<JobsetRecord> {
    Ok(JobsetRecord {
        name: r.get(0)?,
        parallel: r.get(1)?,
        created_at: r.get(2)?,
    })
}

#[cfg(test)]
mod tests;
