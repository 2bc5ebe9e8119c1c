//! Finished attempts' logs and artifact contents in the PostgreSQL store, so that any
//! coordinator on the database can serve any log or artifact, also after the one that received
//! it is gone. (Artifacts: [`Archive::store_content`] when an upload is whole, before it counts
//! as stored; a coordinator without the file fetches it into its data dir on first use.)
//!
//! Bytes stream into the active coordinator's data dir as they always do (at the agents'
//! offsets, capped, synced in the background). When an attempt finishes, before its result is
//! recorded, [`Archive::store`] copies its files into `log_segments`, one row per checksummed
//! [`SEGMENT`] (read from the file one segment at a time: no whole log in memory), and its sums
//! into `log_sums`, in one transaction fenced by the lease's epoch, as the store's batches are.
//! A `log_sums` row therefore means every segment of that attempt is there. Bytes of a run
//! still running are not lost with the active coordinator: the agent keeps its whole spool
//! until the result is acknowledged and resends from the offsets the new active has.
//!
//! A read finds the local files first (the coordinator that received them) and the archive
//! otherwise, every segment checked against the recorded sums either way. The rows go with
//! their run (`ON DELETE CASCADE`), so retention needs nothing here.
//!
//! The blocking client runs inside `block_in_place` (a no-op off the runtime), on a
//! connection of the archive's own, made again after an error.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use postgres::{Client, NoTls};

use super::sums::{Sums, SEGMENT};
use super::{read_at, RunId, Stream};
use crate::store::lease::Lease;
use crate::store::Shared;

/// The PostgreSQL copy of finished attempts' logs.
pub struct Archive {
    db: Shared,
    conn: Mutex<Option<Client>>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Archive({})", self.db.location)
    }
}

fn stream_code(s: Stream) -> i16 {
    match s {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    }
}

impl Archive {
    pub fn new(db: Shared) -> Archive {
        Archive {
            db,
            conn: Mutex::new(None),
        }
    }

    /// Runs `f` on the archive's connection (made if there is none); an error drops the
    /// connection, so the next call makes a fresh one. `f` turns database errors into
    /// `io::Error`s with [`Archive::error`].
    fn with<T>(&self, f: impl FnOnce(&mut Client) -> io::Result<T>) -> io::Result<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| io::Error::other("log archive lock poisoned"))?;
        if conn.as_ref().is_none_or(Client::is_closed) {
            let client = tokio::task::block_in_place(|| self.db.config.connect(NoTls))
                .map_err(|e| self.error(e))?;
            *conn = Some(client);
        }
        let client = conn.as_mut().expect("connected above");
        tokio::task::block_in_place(|| f(client)).inspect_err(|_| *conn = None)
    }

    /// A database error as an `io::Error` naming the database.
    fn error(&self, e: postgres::Error) -> io::Error {
        let why = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string());
        io::Error::other(format!("log archive in {}: {why}", self.db.location))
    }

    /// Copies a finished attempt's files (`path` of each stream, as `sums` recorded them)
    /// into the database, replacing what an earlier try left. Refused, with nothing written,
    /// once another coordinator holds the lease; a file that no longer matches its sums is
    /// an error, not rows that would fail every later read.
    pub fn store(
        &self,
        run: &RunId,
        attempt: u32,
        sums: &Sums,
        path: impl Fn(Stream) -> std::path::PathBuf,
    ) -> io::Result<()> {
        let id = run.to_string();
        let attempt = i64::from(attempt);
        let db = |e| self.error(e);
        self.with(|client| {
            let mut tx = client.transaction().map_err(db)?;
            self.fence(&mut tx)?;
            tx.execute(
                "DELETE FROM log_segments WHERE run_id = $1 AND attempt = $2",
                &[&id, &attempt],
            )
            .map_err(db)?;
            let insert = tx
                .prepare(
                    "INSERT INTO log_segments (run_id, attempt, stream, seg, data) VALUES ($1, $2, $3, $4, $5)",
                )
                .map_err(db)?;
            for s in [Stream::Stdout, Stream::Stderr] {
                let recorded = sums.stream(s);
                for (seg, crc) in recorded.crcs.iter().enumerate() {
                    let start = seg as u64 * SEGMENT;
                    let want = (recorded.len - start).min(SEGMENT) as usize;
                    let data = segment_of(&path(s), start, want, *crc)?;
                    tx.execute(
                        &insert,
                        &[&id, &attempt, &stream_code(s), &(seg as i64), &data],
                    )
                    .map_err(db)?;
                }
            }
            tx.execute(
                "INSERT INTO log_sums (run_id, attempt, sums) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, attempt) DO UPDATE SET sums = excluded.sums",
                &[&id, &attempt, &sums.encode()],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
    }

    fn fenced(&self, found: Option<i64>) -> io::Error {
        io::Error::other(format!(
            "log archive in {}: this coordinator's lease (epoch {}) is no longer current{}: another coordinator is active",
            self.db.location,
            self.db.epoch,
            found.map(|e| format!(" (epoch {e})")).unwrap_or_default()
        ))
    }

    /// The sums recorded for an attempt; None when it was not archived.
    pub fn sums(&self, run: &str, attempt: u32) -> io::Result<Option<Result<Sums, ()>>> {
        let text: Option<String> = self.with(|client| {
            Ok(client
                .query_opt(
                    "SELECT sums FROM log_sums WHERE run_id = $1 AND attempt = $2",
                    &[&run, &i64::from(attempt)],
                )
                .map_err(|e| self.error(e))?
                .map(|r| r.get(0)))
        })?;
        Ok(text.map(|t| Sums::decode(&t).ok_or(())))
    }

    /// Segment `seg` of a stream (empty when there is no such row).
    pub fn segment(&self, run: &str, attempt: u32, s: Stream, seg: u64) -> io::Result<Vec<u8>> {
        self.with(|client| {
            Ok(client
                .query_opt(
                    "SELECT data FROM log_segments WHERE run_id = $1 AND attempt = $2 AND stream = $3 AND seg = $4",
                    &[&run, &i64::from(attempt), &stream_code(s), &(seg as i64)],
                )
                .map_err(|e| self.error(e))?
                .map(|r| r.get(0))
                .unwrap_or_default())
        })
    }
}

impl Archive {
    /// The fence every write transaction begins with: nothing is written once another
    /// coordinator holds the lease.
    fn fence(&self, tx: &mut postgres::Transaction<'_>) -> io::Result<()> {
        if self.db.lost.load(Ordering::SeqCst) {
            return Err(self.fenced(None));
        }
        let epoch: Option<i64> = tx
            .query_opt(Lease::FENCE, &[])
            .map_err(|e| self.error(e))?
            .map(|r| r.get(0));
        if epoch != Some(self.db.epoch) {
            return Err(self.fenced(epoch));
        }
        Ok(())
    }

    /// Copies the artifact content in `path` (whole and checked against its digest) into the
    /// database, segment by segment; the `artifact_contents` row goes last.
    pub fn store_content(&self, sha256: &str, path: &Path) -> io::Result<()> {
        let size = std::fs::metadata(path)?.len();
        let db = |e| self.error(e);
        self.with(|client| {
            let mut tx = client.transaction().map_err(db)?;
            self.fence(&mut tx)?;
            tx.execute(
                "DELETE FROM artifact_segments WHERE sha256 = $1",
                &[&sha256],
            )
            .map_err(db)?;
            let insert = tx
                .prepare("INSERT INTO artifact_segments (sha256, seg, data) VALUES ($1, $2, $3)")
                .map_err(db)?;
            for seg in 0..size.div_ceil(SEGMENT) {
                let data = read_at(path, seg * SEGMENT, SEGMENT as usize)?;
                tx.execute(&insert, &[&sha256, &(seg as i64), &data])
                    .map_err(db)?;
            }
            tx.execute(
                "INSERT INTO artifact_contents (sha256, size) VALUES ($1, $2) \
                 ON CONFLICT (sha256) DO UPDATE SET size = excluded.size",
                &[&sha256, &(size as i64)],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
    }

    /// The size of a content stored whole in the database, if it is.
    pub fn content_size(&self, sha256: &str) -> io::Result<Option<u64>> {
        self.with(|client| {
            Ok(client
                .query_opt(
                    "SELECT size FROM artifact_contents WHERE sha256 = $1",
                    &[&sha256],
                )
                .map_err(|e| self.error(e))?
                .map(|r| r.get::<_, i64>(0) as u64))
        })
    }

    /// Writes a content stored in the database into `dest`, segment by segment (the caller
    /// checks its digest before using it).
    pub fn fetch_content(&self, sha256: &str, size: u64, dest: &Path) -> io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::File::create(dest)?;
        self.with(|client| {
            for seg in 0..size.div_ceil(SEGMENT) {
                let data: Vec<u8> = client
                    .query_opt(
                        "SELECT data FROM artifact_segments WHERE sha256 = $1 AND seg = $2",
                        &[&sha256, &(seg as i64)],
                    )
                    .map_err(|e| self.error(e))?
                    .map(|r| r.get(0))
                    .unwrap_or_default();
                file.write_all_at(&data, seg * SEGMENT)?;
            }
            Ok(())
        })?;
        file.sync_all()
    }

    /// Deletes a content no run refers to any more.
    pub fn delete_content(&self, sha256: &str) -> io::Result<()> {
        let db = |e| self.error(e);
        self.with(|client| {
            let mut tx = client.transaction().map_err(db)?;
            self.fence(&mut tx)?;
            tx.execute(
                "DELETE FROM artifact_contents WHERE sha256 = $1",
                &[&sha256],
            )
            .map_err(db)?;
            tx.execute(
                "DELETE FROM artifact_segments WHERE sha256 = $1",
                &[&sha256],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
    }
}

/// `want` bytes at `start` of a finished log file, which must match their recorded `crc`.
fn segment_of(path: &Path, start: u64, want: usize, crc: u32) -> io::Result<Vec<u8>> {
    let data = read_at(path, start, want)?;
    if data.len() != want || super::crc32c::crc32c(&data) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes {start}..{} do not match their recorded checksum",
                path.display(),
                start + want as u64
            ),
        ));
    }
    Ok(data)
}
