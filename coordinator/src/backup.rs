//! `rota-coordinator backup --data-dir D --to DIR`: a copy of a data dir that a coordinator
//! can start from, taken while one runs and dispatches.
//!
//! The store is copied with SQLite's online backup API in one step from a read-only
//! connection: one read transaction, so the copy is one consistent snapshot, and in WAL mode
//! a reader never blocks the running coordinator's writes (nor needs its data-dir lock, which
//! only keeps a second *coordinator* out). Then the log files of exactly the runs in that
//! snapshot are copied, so the backup holds no log without its run. Everything is written
//! into `DIR.partial` and renamed to `DIR` at the end: a backup that was interrupted is never
//! mistaken for a whole one. Restoring is starting a coordinator with `--data-dir DIR` (or
//! copying DIR's contents into an empty data dir): see docs/operations.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub runs: u64,
    pub log_files: u64,
    pub log_bytes: u64,
}

/// Backs `data_dir` up into the new directory `to`.
pub fn backup(data_dir: &Path, to: &Path) -> anyhow::Result<Summary> {
    let db = data_dir.join("rota.db");
    if !db.is_file() {
        bail!(
            "{} holds no store (rota.db): not a rota data dir",
            data_dir.display()
        );
    }
    if to.exists() {
        bail!(
            "{} already exists: back up into a new directory",
            to.display()
        );
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove the unfinished {}", partial.display()))?;
    }
    std::fs::create_dir_all(partial.join("logs"))
        .with_context(|| format!("cannot create {}", partial.display()))?;

    let source = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {} read-only", db.display()))?;
    source.busy_timeout(Duration::from_secs(10))?;
    let copy = partial.join("rota.db");
    let mut dest =
        Connection::open(&copy).with_context(|| format!("cannot create {}", copy.display()))?;
    copy_store(&source, &mut dest).with_context(|| format!("backup of {}", db.display()))?;

    let ids: Vec<String> = {
        let mut stmt = dest.prepare("SELECT id FROM runs ORDER BY number")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // The copy is closed (and its file whole) before the logs are read.
    drop(dest);
    let mut summary = Summary {
        runs: ids.len() as u64,
        log_files: 0,
        log_bytes: 0,
    };
    for id in &ids {
        // Only ids the coordinator could have made name a directory of ours.
        if crate::logs::RunId::parse(id).is_none() {
            continue;
        }
        let (files, bytes) = copy_dir(
            &data_dir.join("logs").join(id),
            &partial.join("logs").join(id),
        )?;
        summary.log_files += files;
        summary.log_bytes += bytes;
    }
    std::fs::rename(&partial, to)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), to.display()))?;
    Ok(summary)
}

/// The whole store in one backup step (one snapshot); a busy or locked source is waited for.
fn copy_store(source: &Connection, dest: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(source, dest)?;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies the files of one run's log directory (there is none for a run that never ran).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<(u64, u64)> {
    let entries = match std::fs::read_dir(from) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        other => other.with_context(|| format!("cannot read {}", from.display()))?,
    };
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let (mut files, mut bytes) = (0, 0);
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let dest = to.join(entry.file_name());
        bytes += std::fs::copy(entry.path(), &dest)
            .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        files += 1;
    }
    Ok((files, bytes))
}
