//! The data dir as a whole: one coordinator at a time, no silent start on a lost store, and the
//! free space that keeps results recordable.
//!
//! - Two coordinators on one dir would both dispatch the same runs, so the first holds an
//!   exclusive `flock` on `<data>/lock` (released by the kernel when its process dies, so a
//!   `kill -9` leaves no stale lock) with its pid written inside for the second one's message.
//! - A `rota.db` that is missing or empty while `logs/` holds runs means the store was lost;
//!   starting empty would silently forget every run, so that needs `--fresh`.
//! - [`free_bytes`] lets the engine refuse new work while the disk is nearly full, keeping a
//!   reserve for what it already promised (results, acknowledgements, cancels).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why the data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot use data dir {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data dir {path} is in use by another rota-coordinator (pid {pid})")]
    Locked { path: String, pid: String },
    #[error(
        "data dir {path}: the store rota.db is {what} but logs/ holds the logs of {runs} runs: \
         the store was lost; restore rota.db, or start with --fresh to begin an empty store"
    )]
    StoreLost {
        path: String,
        what: &'static str,
        runs: usize,
    },
}

/// The locked data dir; the lock lasts as long as this value.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: Flock<File>,
}

impl DataDir {
    /// Creates (if needed) and locks `path`; with `fresh` false, refuses a lost store.
    pub fn open(path: &Path, fresh: bool) -> Result<DataDir, DataDirError> {
        let io = |source| DataDirError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path.join("lock"))
            .map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DataDirError::Locked {
                    path: path.display().to_string(),
                    pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
                });
            }
            Err((_, errno)) => return Err(io(errno.into())),
        };
        write_pid(&mut lock);
        if !fresh {
            check_store(path)?;
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes our pid into the held lock file, for the message of a second coordinator (best
/// effort: the lock, not the pid, is what keeps it out).
fn write_pid(lock: &mut Flock<File>) {
    let file: &mut File = lock;
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
}

/// A missing or empty `rota.db` next to a `logs/` that holds runs is a lost store.
fn check_store(path: &Path) -> Result<(), DataDirError> {
    let what = match std::fs::metadata(path.join("rota.db")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
        Ok(m) if m.len() == 0 => "empty",
        _ => return Ok(()),
    };
    let runs = std::fs::read_dir(path.join("logs"))
        .map(|dir| dir.flatten().count())
        .unwrap_or(0);
    if runs == 0 {
        return Ok(());
    }
    Err(DataDirError::StoreLost {
        path: path.display().to_string(),
        what,
        runs,
    })
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path)?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_a_locked_dir_names_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DataDir::open(dir.path(), false).unwrap();
        let err = DataDir::open(dir.path(), false).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    }

    #[test]
    fn the_lock_is_released_when_the_holder_goes() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), false).unwrap());
        DataDir::open(dir.path(), false).unwrap();
    }

    #[test]
    fn an_empty_store_beside_run_logs_is_refused_unless_fresh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs/some-run")).unwrap();
        std::fs::write(dir.path().join("rota.db"), b"").unwrap();
        let err = DataDir::open(dir.path(), false).unwrap_err().to_string();
        assert!(
            err.contains("rota.db is empty") && err.contains("--fresh"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("rota.db")).unwrap();
        let err = DataDir::open(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("rota.db is missing"), "{err}");
        DataDir::open(dir.path(), true).unwrap();
    }
}
