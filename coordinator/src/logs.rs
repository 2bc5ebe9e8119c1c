//! Log storage: one file per run, attempt and stream under `<data>/logs/<run id>/`, written at
//! the offsets agents send (so a resent chunk is idempotent) and read back by `rota logs`.
//! Log bytes never go through the SQL store or the engine thread.
//!
//! [`LogHub`] tells followers (`logs -f`) that a run's log grew or that the run finished; it is
//! a map behind a `std::sync::Mutex` that is never held across an `.await`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

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
    /// Per run: a counter bumped on every write and on finish.
    watchers: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl LogHub {
    pub fn new(root: PathBuf) -> Self {
        LogHub {
            root,
            watchers: Default::default(),
        }
    }

    pub fn path(&self, run: &str, attempt: u32, stream: Stream) -> PathBuf {
        self.root
            .join(run)
            .join(format!("{attempt}.{}", stream.ext()))
    }

    /// Bytes stored so far.
    pub fn len(&self, run: &str, attempt: u32, stream: Stream) -> u64 {
        std::fs::metadata(self.path(run, attempt, stream)).map_or(0, |m| m.len())
    }

    /// Writes a chunk at its offset. A chunk beyond the current end (a gap) is refused: the
    /// agent resends from the acknowledged offset.
    pub fn write(
        &self,
        files: &mut LogFiles,
        run: &str,
        attempt: u32,
        stream: Stream,
        offset: u64,
        data: &[u8],
    ) -> io::Result<u64> {
        let log = files.open(self, run, attempt, stream)?;
        let file = &log.file;
        let len = file.metadata()?.len();
        if offset > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log chunk at offset {offset} leaves a gap after {len} stored bytes"),
            ));
        }
        let end = offset + data.len() as u64;
        if end > len {
            let skip = (len - offset) as usize;
            file.write_all_at(&data[skip..], len)?;
            log.written(data.len() - skip);
        }
        self.bump(run);
        Ok(end.max(len))
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
    open: HashMap<(String, u32, Stream), OpenLog>,
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
}

impl OpenLog {
    /// Counts new bytes; past [`SYNC_AHEAD`], starts an fsync on the blocking pool and goes on
    /// without waiting for it. Durability still comes from [`LogFiles::sync_and_close`].
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
        run: &str,
        attempt: u32,
        stream: Stream,
    ) -> io::Result<&mut OpenLog> {
        let key = (run.to_string(), attempt, stream);
        if !self.open.contains_key(&key) {
            let path = hub.path(run, attempt, stream);
            create_parent(&path)?;
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)?;
            self.open.insert(
                key.clone(),
                OpenLog {
                    file: f,
                    unsynced: 0,
                },
            );
        }
        Ok(self.open.get_mut(&key).expect("inserted above"))
    }

    /// Flushes a run's files to disk and closes them: called before its result is recorded,
    /// so a finished run's log is durable.
    pub fn sync_and_close(&mut self, run: &str, attempt: u32) -> io::Result<()> {
        for s in [Stream::Stdout, Stream::Stderr] {
            if let Some(log) = self.open.remove(&(run.to_string(), attempt, s)) {
                log.file.sync_data()?;
            }
        }
        Ok(())
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
