//! The spool directory: run output lands here before it is sent, and each run's process group
//! is recorded here while it runs.
//!
//! Output is written to disk first so that memory stays small whatever a run prints, and so
//! that the first send and a resend after a reconnect are the same code: read the file from an
//! offset. The recorded process groups let a restarted agent kill the orphans of a predecessor
//! that was `kill -9`ed, so no run goes on unsupervised. One agent process owns a spool
//! directory at a time (an exclusive `flock` on `<dir>/lock`): a second agent on the same
//! directory would otherwise kill the first one's runs at startup.
//!
//! Layout: `<run>.<attempt>.stdout`, `<run>.<attempt>.stderr`, `<run>.<attempt>.pgid`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::RunKey;

/// One of a run's two output streams; they are separate pipes and separate files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

impl Stream {
    /// Both streams, in the order the sender serves them.
    pub const BOTH: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

    /// This stream's place in [`Stream::BOTH`] (and in per-stream arrays).
    pub fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// The wire value of this stream.
    pub fn to_proto(self) -> rota_proto::LogStream {
        match self {
            Stream::Stdout => rota_proto::LogStream::Stdout,
            Stream::Stderr => rota_proto::LogStream::Stderr,
        }
    }
}

/// Why the spool directory could not be taken into use.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The directory or its lock file could not be created or opened.
    #[error("cannot create spool directory {path}: {source}")]
    Create {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another agent process holds the directory.
    #[error("spool directory {path} is in use by another rota-agent process")]
    InUse {
        /// The spool directory.
        path: PathBuf,
    },
    /// `flock` failed for another reason than contention.
    #[error("cannot lock spool directory {path}: {source}")]
    Lock {
        /// The spool directory.
        path: PathBuf,
        /// The OS error.
        source: Errno,
    },
    /// Leftovers of a previous agent process could not be listed.
    #[error("cannot read spool directory {path}: {source}")]
    Read {
        /// The spool directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// An opened, locked spool directory. Dropping it releases the lock.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Spool {
    /// Creates and locks `dir`, kills the process groups a previous agent process recorded
    /// there and deletes its files: runs are only held by the process that started them.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        // The agent's alone: it holds every run's output, which a run of another user
        // (`--run-as`) has no business reading.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| SpoolError::Create {
                path: dir.to_owned(),
                source,
            })?;
        let lock_path = dir.join("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| SpoolError::Create {
                path: lock_path,
                source,
            })?;
        let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(SpoolError::InUse {
                    path: dir.to_owned(),
                })
            }
            Err((_, source)) => {
                return Err(SpoolError::Lock {
                    path: dir.to_owned(),
                    source,
                })
            }
        };
        reap_leftovers(dir)?;
        Ok(Spool {
            dir: dir.to_owned(),
            _lock: lock,
        })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a run's stream is spooled to.
    pub fn log_path(&self, key: &RunKey, stream: Stream) -> PathBuf {
        self.file(key, stream.suffix())
    }

    /// Records the process group of a started run, with the leader's start time so that a
    /// recycled pid is never mistaken for it.
    pub fn record_pgid(&self, key: &RunKey, pgid: i32) -> io::Result<()> {
        let start = process_start_time(pgid).unwrap_or(0);
        fs::write(self.file(key, "pgid"), format!("{pgid} {start}\n"))
    }

    /// Forgets a run's process group once nothing of it runs any more.
    pub fn clear_pgid(&self, key: &RunKey) {
        remove_quietly(&self.file(key, "pgid"));
    }

    /// Deletes every file of a run: called once the coordinator has recorded its end.
    pub fn remove_run(&self, key: &RunKey) {
        for suffix in ["stdout", "stderr", "pgid"] {
            remove_quietly(&self.file(key, suffix));
        }
    }

    fn file(&self, key: &RunKey, suffix: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.{}.{suffix}",
            file_stem(&key.run_id),
            key.attempt
        ))
    }
}

/// Reads a spooled stream at arbitrary offsets; the file is opened on first use because a run
/// that never wrote anything may have no file.
#[derive(Debug)]
pub struct SpoolReader {
    path: PathBuf,
    file: Option<File>,
}

impl SpoolReader {
    /// A reader for the spool file at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    /// Reads exactly `len` bytes at `offset`: the caller only asks for bytes the writer has
    /// already written, so a short file is an error.
    ///
    /// A plain blocking read: the bytes were just written and come from the page cache, faster
    /// than a hop through the blocking pool.
    pub fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if self.file.is_none() {
            self.file = Some(File::open(&self.path)?);
        }
        let file = self.file.as_ref().expect("opened above");
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

/// Run ids come from the coordinator; anything but `[A-Za-z0-9_-]` is %-escaped so that an id
/// can never name a path outside the spool directory.
fn file_stem(run_id: &str) -> String {
    let mut stem = String::with_capacity(run_id.len());
    for byte in run_id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            stem.push(char::from(byte));
        } else {
            stem.push_str(&format!("%{byte:02X}"));
        }
    }
    stem
}

fn remove_quietly(path: &Path) {
    if let Err(err) = fs::remove_file(path) {
        if err.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), %err, "cannot remove spool file");
        }
    }
}

/// Kills every process group a previous agent process recorded, and deletes all run files:
/// held runs live only in the process that started them, so its leftovers serve nobody.
fn reap_leftovers(dir: &Path) -> Result<(), SpoolError> {
    let entries = fs::read_dir(dir).map_err(|source| SpoolError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SpoolError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        match path.extension().and_then(|ext| ext.to_str()) {
            Some("pgid") => {
                if let Some((pgid, start)) = fs::read_to_string(&path)
                    .ok()
                    .as_deref()
                    .and_then(parse_pgid_record)
                {
                    kill_orphan_group(pgid, start);
                }
                remove_quietly(&path);
            }
            Some("stdout" | "stderr") => remove_quietly(&path),
            _ => {}
        }
    }
    Ok(())
}

fn parse_pgid_record(text: &str) -> Option<(i32, u64)> {
    let mut fields = text.split_whitespace();
    let pgid = fields.next()?.parse().ok().filter(|&pgid: &i32| pgid > 1)?;
    let start = fields
        .next()
        .and_then(|start| start.parse().ok())
        .unwrap_or(0);
    Some((pgid, start))
}

/// SIGKILLs a recorded group unless its id now belongs to an unrelated process. The kernel
/// never reuses a pid while a process group of that id exists, so: if a process with that pid
/// lives and started at another time, the old group is gone and the pid was recycled; if no
/// such process lives, only members of the old group can still carry that group id.
fn kill_orphan_group(pgid: i32, recorded_start: u64) {
    if let Some(start) = process_start_time(pgid) {
        if recorded_start != 0 && start != recorded_start {
            return;
        }
    }
    match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        Ok(()) => tracing::warn!(
            pgid,
            "killed the processes of a run left by a previous agent process"
        ),
        Err(Errno::ESRCH) => {}
        Err(err) => {
            tracing::warn!(pgid, %err, "cannot kill a process group left by a previous agent process")
        }
    }
}

/// The start time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot) of a process.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count from the
    // last ')' instead; the field after it is field 3.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_spool_directory_is_the_agents_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new");
        let _spool = Spool::open(&dir).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn run_ids_cannot_escape_the_spool_directory() {
        assert_eq!(
            file_stem("../../etc/passwd"),
            "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"
        );
        assert_eq!(
            file_stem("0b6e2b9c-7f7e-4c7a-a1f2-9b1b2f0c6a11"),
            "0b6e2b9c-7f7e-4c7a-a1f2-9b1b2f0c6a11"
        );
    }

    #[test]
    fn pgid_records_parse_with_and_without_start_time() {
        assert_eq!(parse_pgid_record("1234 5678\n"), Some((1234, 5678)));
        assert_eq!(parse_pgid_record("1234"), Some((1234, 0)));
        assert_eq!(parse_pgid_record("1"), None, "never killpg(1)");
        assert_eq!(parse_pgid_record("garbage"), None);
    }

    #[test]
    fn own_start_time_is_readable() {
        let pid = i32::try_from(std::process::id()).unwrap();
        assert!(process_start_time(pid).is_some());
    }
}
