//! The agent's work directory: each run starts in its own empty `RUN_DIR`, each job has a
//! `JOB_DIR` that persists on this agent from run to run (dsari's layout), and a run's
//! `RUN_DIR/return_data.{json,yaml}` is read back when it ends.
//!
//! Layout under `--work-dir`: `runs/<run>.<attempt>/` and `jobs/<job>/`. A run directory is
//! removed `--keep-run-dirs` after its run ended, by one timer per directory (and, for those a
//! previous agent process left, one timer each set at startup from their age): nothing scans
//! the tree while the agent runs. A `same_agent_as` run starts in the `RUN_DIR` of the run it
//! is pinned to; while it runs that directory is not removed, and its timer starts again when
//! the last run using it ends.
//!
//! The work directory is not the spool: the spool is the agent's alone (mode 0700), while a
//! `--run-as` user must reach its own directories. So `runs/` and `jobs/` are 0711 (traversable,
//! not listable) and each run or job directory is 0700 and owned by the run's user.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rota_proto::RETURN_DATA_FILES;

use crate::run_as::RunAs;
use crate::RunKey;

/// Why a run's directories could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare {path}: {source}")]
pub struct WorkDirError {
    /// The directory that failed.
    pub path: PathBuf,
    /// The OS error.
    pub source: io::Error,
}

/// What a run left in `RUN_DIR/return_data.*`, as `RunFinished` carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnData {
    /// Which file (one of [`RETURN_DATA_FILES`]).
    pub file: String,
    /// Its bytes, at most [`rota_proto::MAX_RETURN_DATA`].
    pub data: Vec<u8>,
    /// Why the bytes are not there (too large, unreadable), empty otherwise.
    pub problem: String,
}

/// The default work directory of an agent spooling to `spool_dir`: `<spool_dir>/work` when
/// runs are the agent's own user (a directory it can surely write), `<spool_dir>-work` beside
/// it with `--run-as` (the spool, 0700, is closed to that user; the agent is root).
pub fn default_for(spool_dir: &Path, run_as: bool) -> PathBuf {
    if !run_as {
        return spool_dir.join("work");
    }
    let mut name = spool_dir.file_name().unwrap_or_default().to_owned();
    name.push("-work");
    spool_dir.with_file_name(name)
}

/// The agent's work directory (`--work-dir`).
#[derive(Debug)]
pub struct WorkDir {
    root: PathBuf,
    keep: Duration,
    run_as: Option<Arc<RunAs>>,
    /// Per run directory in use or waiting for removal: the runs in it now, and a generation
    /// that each start and end bumps, so a timer set before the latest one does nothing.
    /// Behind a `std::sync::Mutex` never held across an `.await` (style rule 6).
    uses: Mutex<HashMap<PathBuf, Use>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Use {
    runs: u32,
    generation: u64,
}

/// The directories of one run.
#[derive(Debug, Clone)]
pub struct RunDirs {
    /// `RUN_DIR`: empty when the run starts; the process starts in it.
    pub run_dir: PathBuf,
    /// `JOB_DIR`: the job's directory on this agent, kept across runs.
    pub job_dir: PathBuf,
    work: Arc<WorkDir>,
}

impl WorkDir {
    /// Creates `root/runs` and `root/jobs` and sets a removal timer for every run directory a
    /// previous agent process left (due `keep` after it was last modified). Needs a Tokio
    /// runtime (the timers).
    pub fn open(
        root: &Path,
        keep: Duration,
        run_as: Option<Arc<RunAs>>,
    ) -> Result<Arc<WorkDir>, WorkDirError> {
        let work = Arc::new(WorkDir {
            root: root.to_owned(),
            keep,
            run_as,
            uses: Mutex::default(),
        });
        for dir in [root.to_owned(), work.runs(), work.jobs()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&dir)
                .map_err(|source| WorkDirError { path: dir, source })?;
        }
        let runs = work.runs();
        let leftovers = fs::read_dir(&runs).map_err(|source| WorkDirError {
            path: runs.clone(),
            source,
        })?;
        for entry in leftovers.flatten() {
            let age = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                .unwrap_or(Duration::ZERO);
            work.remove_after(entry.path(), keep.saturating_sub(age), 0);
        }
        Ok(work)
    }

    /// The work directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    fn jobs(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// Makes a fresh, empty `RUN_DIR` for this attempt and the job's `JOB_DIR` (kept if it
    /// exists), both owned by the run's user.
    pub fn prepare(self: &Arc<Self>, key: &RunKey, job: &str) -> Result<RunDirs, WorkDirError> {
        let run_dir = self
            .runs()
            .join(format!("{}.{}", path_safe(&key.run_id), key.attempt));
        // An attempt is assigned once; a directory by its name is a leftover of a crash.
        match fs::remove_dir_all(&run_dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(WorkDirError {
                    path: run_dir,
                    source,
                })
            }
        }
        let job_dir = self.jobs().join(path_safe(job));
        for dir in [&run_dir, &job_dir] {
            self.make_owned(dir)?;
        }
        self.change_use(&run_dir, 1);
        Ok(RunDirs {
            run_dir,
            job_dir,
            work: self.clone(),
        })
    }

    /// The `RUN_DIR` of `pinned` (a `same_agent_as` run starts in it, as it was left) and the
    /// job's `JOB_DIR`; fails when that directory is no longer here.
    pub fn reuse(self: &Arc<Self>, pinned: &RunKey, job: &str) -> Result<RunDirs, WorkDirError> {
        let run_dir = self
            .runs()
            .join(format!("{}.{}", path_safe(&pinned.run_id), pinned.attempt));
        if !run_dir.is_dir() {
            return Err(WorkDirError {
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "same_agent_as: the RUN_DIR of run {pinned} is gone from this agent (--keep-run-dirs passed?)"
                    ),
                ),
                path: run_dir,
            });
        }
        let job_dir = self.jobs().join(path_safe(job));
        self.make_owned(&job_dir)?;
        self.change_use(&run_dir, 1);
        Ok(RunDirs {
            run_dir,
            job_dir,
            work: self.clone(),
        })
    }

    /// Counts a run in (`+1`) or out (`-1`) of `dir`; returns the new generation.
    fn change_use(&self, dir: &Path, delta: i32) -> u64 {
        let mut uses = self.uses.lock().unwrap_or_else(|p| p.into_inner());
        let entry = uses.entry(dir.to_owned()).or_default();
        entry.runs = entry.runs.saturating_add_signed(delta);
        entry.generation += 1;
        entry.generation
    }

    /// Whether the timer of `generation` may remove `dir`: no run uses it and nothing started
    /// or ended in it since. Forgets the directory when it may.
    fn may_remove(&self, dir: &Path, generation: u64) -> bool {
        let mut uses = self.uses.lock().unwrap_or_else(|p| p.into_inner());
        match uses.get(dir) {
            Some(u) if u.runs > 0 || u.generation != generation => false,
            _ => {
                uses.remove(dir);
                true
            }
        }
    }

    /// Where the inputs of an attempt are fetched to: beside `runs/`, so they move into its
    /// RUN_DIR by a rename.
    pub fn staging(&self, key: &RunKey) -> PathBuf {
        self.root
            .join("staging")
            .join(format!("{}.{}", path_safe(&key.run_id), key.attempt))
    }

    /// Moves fetched inputs (a staging directory) into a run's RUN_DIR, owned by the run's
    /// user; the staging directory goes.
    pub fn place(&self, staged: &Path, dirs: &RunDirs) -> Result<(), WorkDirError> {
        let failed = |path: &Path, source| WorkDirError {
            path: path.to_owned(),
            source,
        };
        let mut todo = vec![PathBuf::new()];
        while let Some(rel) = todo.pop() {
            let from = staged.join(&rel);
            let entries = fs::read_dir(&from).map_err(|e| failed(&from, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| failed(&from, e))?;
                let rel = rel.join(entry.file_name());
                let target = dirs.run_dir.join(&rel);
                if entry.file_type().map_err(|e| failed(&from, e))?.is_dir() {
                    self.make_owned(&target)?;
                    todo.push(rel);
                } else {
                    fs::rename(entry.path(), &target).map_err(|e| failed(&target, e))?;
                    self.chown(&target)?;
                }
            }
        }
        let _ = fs::remove_dir_all(staged);
        Ok(())
    }

    fn chown(&self, path: &Path) -> Result<(), WorkDirError> {
        if let Some(user) = &self.run_as {
            nix::unistd::chown(
                path,
                Some(nix::unistd::Uid::from_raw(user.uid)),
                Some(nix::unistd::Gid::from_raw(user.gid)),
            )
            .map_err(|errno| WorkDirError {
                path: path.to_owned(),
                source: io::Error::from(errno),
            })?;
        }
        Ok(())
    }

    fn make_owned(&self, dir: &Path) -> Result<(), WorkDirError> {
        let failed = |source| WorkDirError {
            path: dir.to_owned(),
            source,
        };
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(err) => return Err(failed(err)),
        }
        self.chown(dir)
    }

    /// Removes `dir` once `delay` has passed (unless a run started or ended in it since), off
    /// the runtime's worker threads.
    fn remove_after(self: &Arc<Self>, dir: PathBuf, delay: Duration, generation: u64) {
        let work = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if !work.may_remove(&dir, generation) {
                return;
            }
            let removed = tokio::task::spawn_blocking(move || {
                let result = fs::remove_dir_all(&dir);
                (dir, result)
            })
            .await;
            if let Ok((dir, Err(err))) = removed {
                if err.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), %err, "cannot remove a run directory");
                }
            }
        });
    }
}

impl RunDirs {
    /// Reads the run's return data (if it left any) and sets its directory's removal timer.
    /// Called once, when the run has ended.
    pub fn finish(&self) -> Option<ReturnData> {
        let found = read_return_data(&self.run_dir);
        let generation = self.work.change_use(&self.run_dir, -1);
        self.work
            .remove_after(self.run_dir.clone(), self.work.keep, generation);
        found
    }
}

/// The first of [`RETURN_DATA_FILES`] in `run_dir`, read up to the size limit. Not followed
/// through a symlink: the agent may run as root, and the run must not make it read (and
/// send) a file the run's user cannot read itself.
pub fn read_return_data(run_dir: &Path) -> Option<ReturnData> {
    for name in RETURN_DATA_FILES {
        let path = run_dir.join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let mut found = ReturnData {
            file: name.to_owned(),
            ..ReturnData::default()
        };
        let limit = rota_proto::MAX_RETURN_DATA;
        if !meta.is_file() {
            found.problem = format!("{name} is not a regular file");
        } else if meta.len() > limit as u64 {
            found.problem = format!("{name} is {} bytes, more than {limit}", meta.len());
        } else {
            let read = open_no_follow(&path).and_then(|file| {
                let mut data = Vec::new();
                file.take(limit as u64 + 1).read_to_end(&mut data)?;
                Ok(data)
            });
            match read {
                Ok(data) if data.len() > limit => {
                    found.problem = format!("{name} is more than {limit} bytes");
                }
                Ok(data) => found.data = data,
                Err(err) => found.problem = format!("cannot read {name}: {err}"),
            }
        }
        return Some(found);
    }
    None
}

fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// A name as one path component: ASCII letters, digits, `-`, `_` and `.` as they are (a
/// leading `.` escaped, so `.` and `..` stay inside), every other byte as `%XX`.
fn path_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let plain =
            byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0);
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_one_component_that_stays_inside() {
        assert_eq!(path_safe("backup-db1.daily"), "backup-db1.daily");
        assert_eq!(path_safe(".."), "%2E.");
        assert_eq!(path_safe("a/b c"), "a%2Fb%20c");
        assert_eq!(path_safe(""), "%");
    }

    #[test]
    fn return_data_is_the_first_file_found_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_return_data(dir.path()), None);
        fs::write(dir.path().join("return_data.yaml"), "a: 1\n").unwrap();
        fs::write(dir.path().join("return_data.json"), "{\"a\": 2}").unwrap();
        let found = read_return_data(dir.path()).unwrap();
        assert_eq!(found.file, "return_data.json");
        assert_eq!(found.data, b"{\"a\": 2}");
        fs::write(
            dir.path().join("return_data.json"),
            vec![b' '; rota_proto::MAX_RETURN_DATA + 1],
        )
        .unwrap();
        let found = read_return_data(dir.path()).unwrap();
        assert!(found.data.is_empty());
        assert!(found.problem.contains("more than 65536"), "{found:?}");
    }

    #[test]
    fn return_data_through_a_symlink_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), "{}").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("secret"),
            dir.path().join("return_data.json"),
        )
        .unwrap();
        let found = read_return_data(dir.path()).unwrap();
        assert!(found.data.is_empty());
        assert_eq!(found.problem, "return_data.json is not a regular file");
    }
}
