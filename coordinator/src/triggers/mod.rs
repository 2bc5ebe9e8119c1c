//! Trigger files, dsari's way to start a run from outside: a file
//! `DATA_DIR/trigger/JOB/trigger.json` (or `.yaml`) starts a run of JOB, with the file's
//! `environment`, at its `schedule_time` (now when none; a time in the past also means now).
//!
//! The directory is watched with inotify (the `notify` crate), not scanned: a file written
//! and closed, or renamed into place, is acted on at once; files already there when the
//! coordinator starts are acted on at start. The watcher is a task that sends the engine the
//! same Trigger command `rota trigger` sends, with trigger type "file", and removes the file
//! once the run is accepted (committed), so a file is never lost to a crash in between (a crash
//! after the commit and before the removal starts it twice). A file that cannot be used
//! (unparsable, an unknown job, a bad environment) is renamed to `trigger.json.bad`, and the
//! reason is logged and written to `trigger.json.bad.reason`: it is not retried, and nothing of
//! it reaches the engine. A trigger for a later `schedule_time` stays in place, and is read
//! again when its time comes (one timer for the earliest, no polling); unlike dsari's, it
//! survives a restart.

mod file;

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use rota_proto as pb;
use tokio::sync::mpsc;

use crate::engine::{Command, EngineHandle, JobTrigger};
use crate::error::Error;

pub use file::{parse, Trigger, MAX_TRIGGER_BYTES};

/// The watch and its task; dropping it stops both.
pub struct TriggerWatch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TriggerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TriggerWatch")
    }
}

impl Drop for TriggerWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `data_dir/trigger` (made if missing) for `engine`.
pub fn watch(engine: EngineHandle, data_dir: &Path) -> Result<TriggerWatch, String> {
    let root = data_dir.join("trigger");
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let events_root = root.clone();
    let events_tx = tx.clone();
    let mut watcher = notify::RecommendedWatcher::new(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !wakes(&event.kind) {
                return;
            }
            for path in &event.paths {
                if let Some(job) = job_of(&events_root, path) {
                    let _ = events_tx.send(job);
                }
            }
        },
        notify::Config::default().with_follow_symlinks(false),
    )
    .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
    // After the watch is set up, so a file written in between is seen one way or the other.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str() {
                let _ = tx.send(name.to_string());
            }
        }
    }
    let task = tokio::spawn(run(engine, root, rx));
    Ok(TriggerWatch {
        _watcher: watcher,
        task,
    })
}

/// Events after which a trigger may be complete: a file closed after writing, a rename into
/// place, a new directory (which may arrive with its file inside). A bare create or write is
/// not: the file may be half written.
fn wakes(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_))
            | EventKind::Create(CreateKind::Folder)
    )
}

/// The job directory a path under `root` belongs to (its first component).
fn job_of(root: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    let first = rest.components().next()?;
    let name = first.as_os_str().to_str()?;
    // A file directly in trigger/ names no job.
    (rest.components().count() > 1 || root.join(name).is_dir()).then(|| name.to_string())
}

fn now_ms() -> u64 {
    rota_proto::clock::now_millis()
}

/// What became of a job's trigger directory.
enum Outcome {
    /// A run started, or a bad file went aside: look again (a `.yaml` may wait behind it).
    Handled,
    /// A trigger for later: look again at this time (ms).
    Later(u64),
    /// Nothing to do (no file, or the engine is shutting down).
    Idle,
}

async fn run(engine: EngineHandle, root: PathBuf, mut rx: mpsc::UnboundedReceiver<String>) {
    // Jobs whose trigger waits for its schedule_time, by when.
    let mut later: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let next = later.values().min().copied();
        let job = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => return,
            },
            () = sleep_until_ms(next), if next.is_some() => {
                let now = now_ms();
                let Some(job) = later.iter().find(|(_, t)| **t <= now).map(|(j, _)| j.clone()) else {
                    continue;
                };
                job
            }
        };
        later.remove(&job);
        loop {
            match handle_job(&engine, &root, &job).await {
                Outcome::Handled => continue,
                Outcome::Later(t) => {
                    later.insert(job.clone(), t);
                }
                Outcome::Idle => {}
            }
            break;
        }
    }
}

async fn sleep_until_ms(t: Option<u64>) {
    let wait = t.unwrap_or(0).saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// Acts on the first trigger file of `job`'s directory, if any.
async fn handle_job(engine: &EngineHandle, root: &Path, job: &str) -> Outcome {
    let dir = root.join(job);
    // The job directory must be a real directory in the data dir, not a link out of it.
    if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Outcome::Idle;
    }
    let Some(path) = file::NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|p| std::fs::symlink_metadata(p).is_ok())
    else {
        return Outcome::Idle;
    };
    let trigger = match file::read(&path) {
        Ok(t) => t,
        Err(reason) => return set_aside(&path, job, &reason),
    };
    // dsari: with no schedule_time, the file's mtime is the schedule time.
    let scheduled = trigger.schedule_time_ms.or_else(|| {
        let mtime = std::fs::symlink_metadata(&path).ok()?.modified().ok()?;
        Some(rota_proto::clock::millis_of(mtime))
    });
    if let Some(t) = trigger.schedule_time_ms.filter(|t| *t > now_ms()) {
        tracing::info!(job, path = %path.display(), "trigger file waits for its schedule_time");
        return Outcome::Later(t);
    }
    // The same checks as `rota trigger`'s request: the file is as untrusted as a request.
    let request = pb::TriggerRequest {
        job: job.to_string(),
        env: trigger.env.clone().into_iter().collect(),
    };
    if let Err(e) = crate::service::validate::trigger(&request) {
        return set_aside(&path, job, &e.to_string());
    }
    let command = JobTrigger {
        job: job.to_string(),
        env: trigger.env,
        trigger_type: "file",
        schedule_time: scheduled,
    };
    match engine
        .ask(|t| Command::Trigger(command, crate::engine::Actor::trigger_file(), t))
        .await
    {
        Ok(run) => {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::error!(job, path = %path.display(), "trigger file started run {} but cannot be removed: {e}", run.id);
                return Outcome::Idle;
            }
            tracing::info!(job, run = %run.id, number = run.number, path = %path.display(), "trigger file started a run");
            Outcome::Handled
        }
        Err(Error::ShuttingDown) => Outcome::Idle,
        // Nothing wrong with the file: it stays for the next look (a write in the directory,
        // or the scan at the next start).
        Err(e @ Error::ResourceExhausted(_)) => {
            tracing::warn!(job, path = %path.display(), "trigger file left in place: {e}");
            Outcome::Idle
        }
        Err(e) => set_aside(&path, job, &e.to_string()),
    }
}

/// Renames a refused trigger file to `NAME.bad` and writes the reason to `NAME.bad.reason`.
fn set_aside(path: &Path, job: &str, reason: &str) -> Outcome {
    let mut bad = path.as_os_str().to_owned();
    bad.push(".bad");
    let bad = PathBuf::from(bad);
    let mut why = bad.as_os_str().to_owned();
    why.push(".reason");
    tracing::warn!(job, path = %path.display(), "trigger file refused, renamed to {}: {reason}", bad.display());
    if let Err(e) = std::fs::rename(path, &bad) {
        tracing::error!(job, path = %path.display(), "cannot rename a refused trigger file aside: {e}");
        return Outcome::Idle;
    }
    // Not through a symlink someone left there: O_NOFOLLOW refuses one.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&why)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{reason}\n").as_bytes()));
    if let Err(e) = written {
        tracing::error!(job, path = %PathBuf::from(&why).display(), "cannot write why a trigger file was refused: {e}");
    }
    Outcome::Handled
}
