//! Log storage: one file per run, attempt and stream under `<data>/logs/<run id>/`, written at
//! the offsets agents send (so a resent chunk is idempotent) and read back by `rota logs`.
//! Log bytes never go through the SQL store or the engine thread.
//!
//! Paths are built only from a [`RunId`] (a parsed UUID) and numbers, never from a string a
//! request carried. When an attempt's result is accepted its files are synced, checked against
//! the lengths the agent reported and their checksums recorded ([`sums`]); reads of a finished
//! attempt are checked against them ([`LogReader`]).
//!
//! [`LogHub`] tells followers (`logs -f`) that a run's log grew or that the run finished; it is
//! a map behind a `std::sync::Mutex` that is never held across an `.await`.
//!
//! With a PostgreSQL store, finished attempts are also copied into the database ([`archive`])
//! before their result is recorded, and read from there by a coordinator that does not have
//! the files.

pub mod archive;
mod cap;
mod crc32c;
pub mod sums;

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use cap::Ring;
use sums::{Running, StreamSums, Sums, SEGMENT};

/// A run id that is safe in a path: a UUID in its canonical form. Made by parsing; its
/// `Display` (the directory name) is the UUID's own formatting, not the parsed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId(uuid::Uuid);

impl RunId {
    /// Parses a run id as the coordinator makes them (hyphenated lowercase UUID); anything
    /// else (`../x`, `/abs`, other spellings of a UUID) is None.
    pub fn parse(s: &str) -> Option<RunId> {
        let id = uuid::Uuid::try_parse(s).ok()?;
        (id.hyphenated().to_string() == s).then_some(RunId(id))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Why a log could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A finished attempt's log does not match what was recorded when it finished.
    #[error("the log of run {run} attempt {attempt} is damaged: {what}")]
    Damaged {
        run: String,
        attempt: u32,
        what: String,
    },
    /// The agent reported more bytes than are stored: the result waits for the rest.
    #[error("run {run} attempt {attempt}: {stream} has {stored} bytes stored of the {reported} the agent reported")]
    Incomplete {
        run: RunId,
        attempt: u32,
        stream: &'static str,
        stored: u64,
        reported: u64,
    },
    #[error("log of run {run}: {source}")]
    Io {
        run: String,
        #[source]
        source: io::Error,
    },
}

/// Which stream of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn ext(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogHub {
    root: PathBuf,
    /// Log bytes are not stored while the filesystem has less free space than this, so a
    /// chatty run cannot take the room results need (see `datadir`).
    reserve: u64,
    /// Per run: a counter bumped on every write and on finish.
    watchers: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    /// Log bytes taken in since start (`rota_log_stored_bytes_total`): counted here, where
    /// they are written, and shared with the metrics registry.
    stored: prometheus_client::metrics::counter::Counter,
    /// The database copy of finished attempts, with a PostgreSQL store.
    archive: Option<Arc<archive::Archive>>,
}

impl LogHub {
    pub fn new(root: PathBuf, reserve: u64) -> Self {
        LogHub {
            root,
            reserve,
            watchers: Default::default(),
            stored: Default::default(),
            archive: None,
        }
    }

    /// Also keeps finished attempts in `archive` and reads them from there.
    pub fn with_archive(mut self, archive: Option<Arc<archive::Archive>>) -> Self {
        self.archive = archive;
        self
    }

    /// The counter of log bytes taken in, for the metrics registry.
    pub fn stored_bytes(&self) -> prometheus_client::metrics::counter::Counter {
        self.stored.clone()
    }

    fn dir(&self, run: &RunId) -> PathBuf {
        self.root.join(run.to_string())
    }

    pub fn path(&self, run: &RunId, attempt: u32, stream: Stream) -> PathBuf {
        self.dir(run).join(format!("{attempt}.{}", stream.ext()))
    }

    fn sums_path(&self, run: &RunId, attempt: u32) -> PathBuf {
        self.dir(run).join(format!("{attempt}.sums"))
    }

    fn ring_path(&self, run: &RunId, attempt: u32, stream: Stream) -> PathBuf {
        self.dir(run)
            .join(format!("{attempt}.{}.tail", stream.ext()))
    }

    fn recorded(&self, run: &RunId, attempt: u32) -> Option<Sums> {
        match Sums::load(&self.sums_path(run, attempt)) {
            Ok(Some(Ok(sums))) => Some(sums),
            _ => None,
        }
    }

    /// Bytes received so far in the agent's offsets, which acks and resumes name: what the
    /// agent reported once the attempt finished, else the end of the ring once past the
    /// head (see `cap`), else the file's length, else what the archive recorded (an attempt
    /// another coordinator received).
    pub fn len(&self, run: &RunId, attempt: u32, stream: Stream) -> u64 {
        if let Some(sums) = self.recorded(run, attempt) {
            return sums.stream(stream).received;
        }
        if let Ok(Some(ring)) = Ring::open(&self.ring_path(run, attempt, stream)) {
            return ring.end();
        }
        match std::fs::metadata(self.path(run, attempt, stream)) {
            Ok(m) => m.len(),
            // Not received here: what the database's copy recorded, if it has one.
            Err(_) => self
                .archive
                .as_ref()
                .and_then(|a| a.sums(&run.to_string(), attempt).ok().flatten())
                .and_then(Result::ok)
                .map_or(0, |sums| sums.stream(stream).received),
        }
    }

    /// A reader of one stream of one attempt, checked against its recorded sums once the
    /// attempt has finished.
    pub fn reader(&self, run: &str, attempt: u32, stream: Stream) -> Result<LogReader, LogError> {
        let damaged = |what: String| LogError::Damaged {
            run: run.to_string(),
            attempt,
            what,
        };
        let id = RunId::parse(run).ok_or_else(|| damaged("not a run id".into()))?;
        let path = self.path(&id, attempt, stream);
        let io_err = |source| LogError::Io {
            run: run.to_string(),
            source,
        };
        let local = Sums::load(&self.sums_path(&id, attempt)).map_err(io_err)?;
        // Not received here (another coordinator was active then): the database's copy.
        if let (Some(archive), None) = (&self.archive, &local) {
            if !path.exists() {
                return match archive.sums(run, attempt).map_err(io_err)? {
                    None => Ok(LogReader::new(run, attempt, stream, path, None, None)),
                    Some(Err(())) => Err(damaged("its archived checksums do not parse".into())),
                    Some(Ok(sums)) => Ok(LogReader::new(
                        run,
                        attempt,
                        stream,
                        path,
                        Some(sums.stream(stream).clone()),
                        Some(archive.clone()),
                    )),
                };
            }
        }
        let sums = match local {
            None => None,
            Some(Ok(sums)) => Some(sums.stream(stream).clone()),
            Some(Err(())) => return Err(damaged("its checksum file does not parse".into())),
        };
        if let Some(sums) = &sums {
            let stored = match std::fs::metadata(&path) {
                Ok(m) => Some(m.len()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(LogError::Io {
                        run: run.to_string(),
                        source,
                    })
                }
            };
            match stored {
                None if sums.len > 0 => {
                    return Err(damaged(format!(
                        "its {} file is missing ({} bytes were stored)",
                        stream.ext(),
                        sums.len
                    )))
                }
                Some(n) if n != sums.len => {
                    return Err(damaged(format!(
                        "its {} file holds {n} bytes, {} were stored",
                        stream.ext(),
                        sums.len
                    )))
                }
                _ => {}
            }
        }
        Ok(LogReader::new(run, attempt, stream, path, sums, None))
    }

    /// Writes a chunk at its offset (in the agent's offsets) under the run's log cap. A chunk
    /// beyond the current end (a gap) is refused: the agent resends from the acknowledged
    /// offset. Chunks of an attempt already finished change nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        files: &mut LogFiles,
        run: &RunId,
        attempt: u32,
        stream: Stream,
        offset: u64,
        data: &[u8],
        max_log_bytes: u64,
    ) -> io::Result<u64> {
        let log = files.open(self, run, attempt, stream)?;
        let end = offset + data.len() as u64;
        if log.done {
            return Ok(end);
        }
        let file_len = log.file.metadata()?.len();
        let received = log.ring.as_ref().map_or(file_len, Ring::end);
        if offset > received {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log chunk at offset {offset} leaves a gap after {received} stored bytes"),
            ));
        }
        if end > received {
            // (No answer from statvfs is no reason to refuse: the write reports a full disk.)
            let free = crate::datadir::free_bytes(&self.root).unwrap_or(u64::MAX);
            if free < self.reserve.saturating_add(data.len() as u64) {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "{} has {} KiB free, the reserve is {} KiB",
                        self.root.display(),
                        free >> 10,
                        self.reserve >> 10
                    ),
                ));
            }
            // A ring keeps the cap it began under; a file already past a (since lowered)
            // cap's head stays uncapped rather than lose its order.
            let cap = match &log.ring {
                Some(ring) => ring.cap(),
                None if file_len > cap::split(max_log_bytes).0 => u64::MAX,
                None => max_log_bytes,
            };
            let head = cap::split(cap).0;
            let mut pos = received;
            let mut rest = &data[(received - offset) as usize..];
            if pos < head {
                let n = ((head - pos) as usize).min(rest.len());
                log.file.write_all_at(&rest[..n], pos)?;
                match &mut log.running {
                    Some(running) if running.covered() == pos => running.append(&rest[..n]),
                    _ => log.running = None,
                }
                log.written(n);
                pos += n as u64;
                rest = &rest[n..];
            }
            if !rest.is_empty() {
                let ring = match &mut log.ring {
                    Some(ring) => ring,
                    None => log
                        .ring
                        .insert(Ring::create(&self.ring_path(run, attempt, stream), cap)?),
                };
                ring.write(pos, rest)?;
            }
            self.stored.inc_by(end - received);
        }
        self.bump(&run.to_string());
        Ok(end.max(received))
    }

    /// Copies every finished attempt's log under this hub's root into its archive, its files
    /// checked against their recorded sums on the way (`rota-coordinator migrate`); skips the
    /// logs of runs `known` does not know (left by a prune cut short). Returns the attempts
    /// and bytes copied.
    pub fn archive_all(&self, known: impl Fn(&str) -> bool) -> Result<(u64, u64), LogError> {
        let Some(archive) = &self.archive else {
            return Ok((0, 0));
        };
        let io_err = |run: &str| {
            let run = run.to_owned();
            move |source| LogError::Io { run, source }
        };
        let (mut attempts, mut bytes) = (0, 0);
        let dirs = match std::fs::read_dir(&self.root) {
            Ok(dirs) => dirs,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(io_err("*")(e)),
        };
        for dir in dirs {
            let dir = dir.map_err(io_err("*"))?;
            let name = dir.file_name().to_string_lossy().into_owned();
            let Some(run) = RunId::parse(&name).filter(|_| known(&name)) else {
                continue;
            };
            for file in std::fs::read_dir(dir.path()).map_err(io_err(&name))? {
                let file = file.map_err(io_err(&name))?.file_name();
                let Some(attempt) = file
                    .to_str()
                    .and_then(|f| f.strip_suffix(".sums"))
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let sums = match self.recorded(&run, attempt) {
                    Some(sums) => sums,
                    None => {
                        return Err(LogError::Damaged {
                            run: name,
                            attempt,
                            what: "its checksum file does not parse".into(),
                        })
                    }
                };
                archive
                    .store(&run, attempt, &sums, |s| self.path(&run, attempt, s))
                    .map_err(io_err(&name))?;
                attempts += 1;
                bytes += sums.stdout.len + sums.stderr.len;
            }
        }
        Ok((attempts, bytes))
    }

    /// Wakes followers of a run.
    pub fn bump(&self, run: &str) {
        let map = self.watchers.lock().expect("log hub lock");
        if let Some(tx) = map.get(run) {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// A run reached a final state: wake its followers one last time and forget it.
    pub fn finished(&self, run: &str) {
        let mut map = self.watchers.lock().expect("log hub lock");
        if let Some(tx) = map.remove(run) {
            tx.send_modify(|v| *v += 1);
        }
    }

    pub fn subscribe(&self, run: &str) -> watch::Receiver<u64> {
        let mut map = self.watchers.lock().expect("log hub lock");
        map.entry(run.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

/// Open log files of one agent stream (kept open while a run writes).
#[derive(Debug, Default)]
pub struct LogFiles {
    open: HashMap<(RunId, u32, Stream), OpenLog>,
}

/// Bytes a log may hold beyond its last background sync: a big log is written back to disk
/// while it streams in, so the fsync before its result is recorded has little left to do
/// (W3: the final fsync of 200 MB was a fifth of the run's end-to-end time).
const SYNC_AHEAD: u64 = 16 << 20;

/// One open log file and how much of it may still be only in the page cache.
#[derive(Debug)]
struct OpenLog {
    file: File,
    unsynced: u64,
    /// The ring of latest bytes, once the stream went past its cap's head.
    ring: Option<Ring>,
    /// The attempt has finished (its sums are recorded): nothing more is written.
    done: bool,
    /// Sums of the file while it has only been appended to since it was empty.
    running: Option<Running>,
}

impl OpenLog {
    /// Counts new bytes; past [`SYNC_AHEAD`], starts an fsync on the blocking pool and goes on
    /// without waiting for it. Durability still comes from [`LogFiles::finish`].
    fn written(&mut self, n: usize) {
        self.unsynced += n as u64;
        if self.unsynced < SYNC_AHEAD {
            return;
        }
        let (Ok(runtime), Ok(file)) =
            (tokio::runtime::Handle::try_current(), self.file.try_clone())
        else {
            return;
        };
        self.unsynced = 0;
        runtime.spawn_blocking(move || {
            if let Err(err) = file.sync_data() {
                tracing::debug!(%err, "background log sync failed; the final sync will report it");
            }
        });
    }
}

impl LogFiles {
    fn open(
        &mut self,
        hub: &LogHub,
        run: &RunId,
        attempt: u32,
        stream: Stream,
    ) -> io::Result<&mut OpenLog> {
        let key = (*run, attempt, stream);
        match self.open.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let path = hub.path(run, attempt, stream);
                create_parent(&path)?;
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(&path)?;
                let empty = file.metadata()?.len() == 0;
                Ok(e.insert(OpenLog {
                    file,
                    running: empty.then(Running::default),
                    unsynced: 0,
                    ring: Ring::open(&hub.ring_path(run, attempt, stream))?,
                    done: hub.recorded(run, attempt).is_some(),
                }))
            }
        }
    }

    /// Makes an attempt's log whole and durable before its result is recorded: each stream
    /// must have received the `reported` length (fewer bytes: [`LogError::Incomplete`], the
    /// agent resends; more in a file can only be bytes past what the run wrote and are cut),
    /// a capped stream is assembled (head, marker, tail), files and directories are synced
    /// (whichever session wrote them) and the checksums recorded. Finishing again with the
    /// same lengths (the result's commit did not happen) finds it done.
    pub fn finish(
        &mut self,
        hub: &LogHub,
        run: &RunId,
        attempt: u32,
        reported: [u64; 2],
    ) -> Result<(), LogError> {
        let io_err = |source| LogError::Io {
            run: run.to_string(),
            source,
        };
        if let Some(sums) = hub.recorded(run, attempt) {
            if [sums.stdout.received, sums.stderr.received] == reported {
                // Finished before, perhaps not archived yet (that failed, or the process
                // ended in between).
                if let Some(archive) = &hub.archive {
                    let archived = archive.sums(&run.to_string(), attempt).map_err(io_err)?;
                    if archived != Some(Ok(sums.clone())) {
                        archive
                            .store(run, attempt, &sums, |s| hub.path(run, attempt, s))
                            .map_err(io_err)?;
                    }
                }
                return Ok(());
            }
        }
        let mut sums = Sums::default();
        let mut rings = Vec::new();
        for (s, reported) in [Stream::Stdout, Stream::Stderr].into_iter().zip(reported) {
            let running = self
                .open
                .remove(&(*run, attempt, s))
                .and_then(|log| log.running);
            let path = hub.path(run, attempt, s);
            let file = match OpenOptions::new().write(true).open(&path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(e)),
            };
            let stored = match &file {
                Some(f) => f.metadata().map_err(io_err)?.len(),
                None => 0,
            };
            let ring_path = hub.ring_path(run, attempt, s);
            let ring = Ring::open(&ring_path).map_err(io_err)?;
            let received = ring.as_ref().map_or(stored, Ring::end);
            let incomplete = || LogError::Incomplete {
                run: *run,
                attempt,
                stream: s.ext(),
                stored: received,
                reported,
            };
            if received < reported || (ring.is_some() && received != reported) {
                return Err(incomplete());
            }
            let Some(f) = file else { continue };
            match &ring {
                Some(ring) => {
                    let cut = ring.assemble_into(&f).map_err(io_err)?;
                    if cut > 0 {
                        tracing::info!(run = %run, attempt, stream = s.ext(), cut, "log over its cap: head and tail kept");
                    }
                    rings.push(ring_path);
                }
                None if stored > reported => {
                    tracing::warn!(run = %run, attempt, stream = s.ext(), stored, reported, "log longer than the agent reported: cut");
                    f.set_len(reported).map_err(io_err)?;
                }
                None => {}
            }
            f.sync_data().map_err(io_err)?;
            let target = match s {
                Stream::Stdout => &mut sums.stdout,
                Stream::Stderr => &mut sums.stderr,
            };
            // Sums kept while the bytes streamed in spare reading a big log back; a log
            // written across sessions, capped or cut is read.
            *target = match running {
                Some(running) if ring.is_none() && running.covered() == reported => {
                    running.finish()
                }
                _ => StreamSums::of_file(&path).map_err(io_err)?,
            };
            target.received = reported;
        }
        // An attempt without output has no files and nothing to check.
        if sums != Sums::default() {
            sums.write(&hub.sums_path(run, attempt)).map_err(io_err)?;
            // The run's directory entry too, the first time it is made durable.
            File::open(&hub.root)
                .and_then(|root| root.sync_all())
                .map_err(io_err)?;
        }
        for ring in rings {
            std::fs::remove_file(ring).map_err(io_err)?;
        }
        if let (Some(archive), true) = (&hub.archive, sums != Sums::default()) {
            archive
                .store(run, attempt, &sums, |s| hub.path(run, attempt, s))
                .map_err(io_err)?;
        }
        Ok(())
    }
}

/// Reads one stream of one attempt. With recorded sums (a finished attempt) every segment is
/// checked before any of its bytes are returned, and the length was checked when it was made.
#[derive(Debug)]
pub struct LogReader {
    run: String,
    attempt: u32,
    stream: Stream,
    path: PathBuf,
    sums: Option<StreamSums>,
    /// The last segment read and checked: (index, bytes).
    segment: Option<(u64, Vec<u8>)>,
    /// Where the segments are when they are not in `path` (see [`archive`]).
    archive: Option<Arc<archive::Archive>>,
}

impl LogReader {
    fn new(
        run: &str,
        attempt: u32,
        stream: Stream,
        path: PathBuf,
        sums: Option<StreamSums>,
        archive: Option<Arc<archive::Archive>>,
    ) -> LogReader {
        LogReader {
            run: run.to_string(),
            attempt,
            stream,
            path,
            sums,
            segment: None,
            archive,
        }
    }

    /// The bytes stored: as recorded for a finished attempt, else the file's length so far.
    pub fn stored_len(&self) -> u64 {
        match &self.sums {
            Some(sums) => sums.len,
            None => std::fs::metadata(&self.path).map_or(0, |m| m.len()),
        }
    }

    /// Up to `len` bytes at `offset` (fewer at the end, or past the segment `offset` is in).
    pub fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let Some(sums) = &self.sums else {
            return read_at(&self.path, offset, len).map_err(|source| LogError::Io {
                run: self.run.clone(),
                source,
            });
        };
        if offset >= sums.len {
            return Ok(Vec::new());
        }
        let index = offset / SEGMENT;
        if self.segment.as_ref().map(|(i, _)| *i) != Some(index) {
            let start = index * SEGMENT;
            let want = (sums.len - start).min(SEGMENT) as usize;
            let data = match &self.archive {
                Some(archive) => archive.segment(&self.run, self.attempt, self.stream, index),
                None => read_at(&self.path, start, want),
            }
            .map_err(|source| LogError::Io {
                run: self.run.clone(),
                source,
            })?;
            if data.len() != want || crc32c::crc32c(&data) != sums.crcs[index as usize] {
                return Err(LogError::Damaged {
                    run: self.run.clone(),
                    attempt: self.attempt,
                    what: format!(
                        "{} bytes {start}..{} do not match their recorded checksum",
                        self.stream.ext(),
                        start + want as u64
                    ),
                });
            }
            self.segment = Some((index, data));
        }
        let (_, data) = self.segment.as_ref().expect("read above");
        let from = (offset - index * SEGMENT) as usize;
        let to = (from + len).min(data.len());
        Ok(data[from..to].to_vec())
    }
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) => std::fs::create_dir_all(p),
        None => Ok(()),
    }
}

/// Reads `len` bytes at `offset` of a stored log (fewer at its end).
pub fn read_at(path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = f.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}
