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
        let file = files.open(self, run, attempt, stream)?;
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
    open: HashMap<(String, u32, Stream), File>,
}

impl LogFiles {
    fn open(&mut self, hub: &LogHub, run: &str, attempt: u32, stream: Stream) -> io::Result<&File> {
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
            self.open.insert(key.clone(), f);
        }
        Ok(&self.open[&key])
    }

    /// Flushes a run's files to disk and closes them: called before its result is recorded,
    /// so a finished run's log is durable.
    pub fn sync_and_close(&mut self, run: &str, attempt: u32) -> io::Result<()> {
        for s in [Stream::Stdout, Stream::Stderr] {
            if let Some(f) = self.open.remove(&(run.to_string(), attempt, s)) {
                f.sync_data()?;
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
