//! Removing the files of pruned runs, on a thread of its own so the engine never waits on the
//! filesystem: the engine hands over a batch whose `prune_queue` rows are committed, this
//! thread removes each run's files and tells the engine, which then deletes the rows.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc;

use crate::logs::RunId;

/// Something that keeps files per run and deletes them when the run is pruned. The logs are
/// one; artifacts (kept beside the logs in the data dir) add theirs here, so a pruned run
/// leaves nothing of its own behind.
pub trait RunFiles: Send {
    /// Removes every file of `run`, returning the bytes freed. A run with no files is Ok(0),
    /// so a batch redone after a crash finds nothing to do.
    fn remove(&self, run: &RunId) -> io::Result<u64>;
}

/// The per-run directories under `<data>/logs/`.
#[derive(Debug, Clone)]
pub struct LogFiles {
    pub root: PathBuf,
}

impl RunFiles for LogFiles {
    fn remove(&self, run: &RunId) -> io::Result<u64> {
        let dir = self.root.join(run.to_string());
        let bytes = dir_bytes(&dir)?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(bytes),
        }
    }
}

/// Bytes of the files directly in `dir` (0 when it does not exist).
pub fn dir_bytes(dir: &std::path::Path) -> io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        other => other?,
    };
    let mut total = 0;
    for entry in entries.flatten() {
        if let Ok(m) = entry.metadata() {
            if m.is_file() {
                total += m.len();
            }
        }
    }
    Ok(total)
}

/// Bytes of every run's log files: read once at start for `rota status`; afterwards the engine
/// adds what finishes and subtracts what it prunes.
pub fn logs_bytes(root: &std::path::Path) -> u64 {
    std::fs::read_dir(root)
        .map(|runs| {
            runs.flatten()
                .map(|run| dir_bytes(&run.path()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// One batch: the runs whose rows are queued for deletion, (number, id).
pub type Batch = Vec<(u64, String)>;

/// What the thread reports for a batch: every run it was given, those whose files are gone
/// (the engine deletes their rows) and the bytes freed. A run whose files could not be
/// removed keeps its rows and its place in `prune_queue`: the policy picks it again later, and
/// a start tries its files again.
#[derive(Debug)]
pub struct Removed {
    pub batch: Vec<u64>,
    pub numbers: Vec<u64>,
    pub bytes: u64,
}

/// Test hook: `ROTA_TEST_PRUNE_ABORT_AFTER=N` aborts the process (no cleanup, like `kill -9`)
/// once the files of N runs are removed, before their rows are deleted, so a test can prove a
/// start finishes an interrupted prune.
const ABORT_ENV: &str = "ROTA_TEST_PRUNE_ABORT_AFTER";

/// Starts the thread; `done` is called with each batch's result on that thread.
pub fn start(
    stores: Vec<Box<dyn RunFiles>>,
    done: impl Fn(Removed) + Send + 'static,
) -> io::Result<mpsc::Sender<Batch>> {
    let (tx, rx) = mpsc::channel::<Batch>();
    let abort_after: Option<usize> = std::env::var(ABORT_ENV).ok().and_then(|v| v.parse().ok());
    std::thread::Builder::new()
        .name("rota-prune".into())
        .spawn(move || {
            let mut removed_total = 0usize;
            for batch in rx {
                let mut out = Removed {
                    batch: batch.iter().map(|(n, _)| *n).collect(),
                    numbers: Vec::with_capacity(batch.len()),
                    bytes: 0,
                };
                for (number, id) in batch {
                    // Ids come from the store; one that is not a UUID has no files of ours.
                    let result = match RunId::parse(&id) {
                        None => Ok(0),
                        Some(run) => stores
                            .iter()
                            .map(|s| s.remove(&run))
                            .sum::<io::Result<u64>>(),
                    };
                    match result {
                        Ok(bytes) => {
                            out.bytes += bytes;
                            out.numbers.push(number);
                        }
                        Err(e) => tracing::error!(run = %id, "cannot remove the files of a pruned run (kept queued, tried again at the next start): {e}"),
                    }
                    removed_total += 1;
                    if abort_after == Some(removed_total) {
                        eprintln!("rota-coordinator: {ABORT_ENV} reached, aborting");
                        std::process::abort();
                    }
                }
                done(out);
            }
        })?;
    Ok(tx)
}
