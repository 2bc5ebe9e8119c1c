//! One run as a real process: spawned in its own process group, its two output streams spooled
//! to files, stopped by cancel or timeout with SIGTERM then SIGKILL to the whole group.
//!
//! A run is observed through one `watch` channel of [`Progress`]: the bytes spooled per stream
//! so far and, at the end, the [`Outcome`]. The outcome is published only after the process has
//! exited and both pipes reached EOF, so its lengths are final: whoever sends the log knows it
//! has everything once it has sent up to them.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::io::Write as _;

use bytes::{Bytes, BytesMut};
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::run_as::RunAs;
use crate::spool::{Spool, Stream};
use crate::workdir::{ReturnData, RunDirs};
use crate::RunKey;

/// Largest read from a pipe, and so the largest unit of spooled output.
pub const READ_SIZE: usize = 256 * 1024;

/// Capacity asked for an output pipe (Linux default 64 KiB): a chatty run is read in fewer,
/// larger pieces and blocks less often on a full pipe (W3 at 64 KiB: 360-550 MiB/s; at
/// 256 KiB: 520-730). When the kernel refuses, the default stays.
const PIPE_SIZE: i32 = 256 * 1024;

/// Output pipes enlarged at once, across every run of this process: at most 8 MiB of pipe
/// buffers, far inside the per-user pipe memory limit (`pipe-user-pages-soft`, 64 MiB by
/// default). A user past that limit gets one-page pipes in every program, so an agent with
/// many slots must not spend it; runs beyond the budget keep default pipes.
const MAX_ENLARGED_PIPES: usize = 32;

static ENLARGED_PIPES: AtomicUsize = AtomicUsize::new(0);

/// How long to wait for the pipes to close once the group was killed. A process that left the
/// group (setsid) can keep them open forever; its later output is then lost, not the run.
const PIPE_EOF_TIMEOUT: Duration = Duration::from_secs(10);

/// What to start: the parts of an `Assign` the process needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Which attempt of which run this is.
    pub key: RunKey,
    /// Exact argv; `argv[0]` is looked up on `PATH`.
    pub argv: Vec<String>,
    /// Overlaid on the agent's own environment (the coordinator sends the complete run
    /// environment except `AGENT_NAME`).
    pub env: HashMap<String, String>,
    /// Set as `AGENT_NAME`.
    pub agent_name: String,
    /// Stop the run (as a cancel, but `timed_out`) when it runs this long.
    pub max_execution: Option<Duration>,
    /// Between SIGTERM and SIGKILL on timeout, and on a drain's cancel.
    pub kill_grace: Duration,
    /// The user the process runs as (`--run-as`); `None`: the agent's own.
    pub run_as: Option<Arc<RunAs>>,
    /// The run's `RUN_DIR` (where it starts) and `JOB_DIR`; `None`: it starts in the agent's
    /// current directory (tests of the process handling alone).
    pub dirs: Option<RunDirs>,
    /// Globs (relative to `RUN_DIR`) of the files sent as artifacts when the run succeeds.
    pub artifacts: Vec<String>,
}

/// How a run ended, as `RunFinished` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code when the process exited normally.
    pub exit_code: Option<i32>,
    /// Signal number when a signal killed it.
    pub signal: Option<i32>,
    /// Why the run failed beyond its exit status (spawn error, "cancelled", "timed out"),
    /// empty otherwise.
    pub error: String,
    /// Final length of the spooled stdout.
    pub stdout_len: u64,
    /// Final length of the spooled stderr.
    pub stderr_len: u64,
    /// The run hit its `max_execution`.
    pub timed_out: bool,
    /// The run was cancelled (by the coordinator or a drain's deadline).
    pub cancelled: bool,
    /// The agent refused the run (draining): it never started.
    pub rejected: bool,
    /// What the run left in `RUN_DIR/return_data.*`, read once it ended.
    pub return_data: Option<ReturnData>,
    /// The files the job's artifact globs matched, when the run succeeded.
    pub artifacts: Vec<crate::artifacts::Artifact>,
}

/// What has happened so far: lengths grow while the run writes; `outcome` is set once at the
/// end, with the final lengths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of stdout spooled (written and flushed) so far.
    pub stdout_len: u64,
    /// Bytes of stderr spooled so far.
    pub stderr_len: u64,
    /// Set when the process exited and both pipes reached EOF.
    pub outcome: Option<Outcome>,
    /// Per stream (stdout, stderr), the piece spooled last, so a sender that is caught up can
    /// send it without reading it back from the spool.
    pub recent: [Option<Piece>; 2],
}

/// Bytes of one stream as they were read from the pipe and spooled, at their offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub data: Bytes,
}

impl Progress {
    /// Bytes spooled so far on `stream`.
    pub fn len(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Stdout => self.stdout_len,
            Stream::Stderr => self.stderr_len,
        }
    }

    fn len_mut(&mut self, stream: Stream) -> &mut u64 {
        match stream {
            Stream::Stdout => &mut self.stdout_len,
            Stream::Stderr => &mut self.stderr_len,
        }
    }
}

/// Requests to a run's supervisor task.
#[derive(Debug)]
enum Control {
    /// SIGTERM to the group, SIGKILL after the grace; the outcome says `cancelled`.
    Cancel(Duration),
    /// As `Cancel`, because the coordinator was out of contact for the lease
    /// (`on_disconnect: stop`).
    Disconnected(Duration),
    /// SIGKILL to the group now: the run is being forgotten.
    Kill,
}

/// A handle on one run. Cheap to clone: every clone observes and controls the same process.
#[derive(Debug, Clone)]
pub struct Run {
    key: RunKey,
    pid: Option<u32>,
    kill_grace: Duration,
    progress: watch::Receiver<Progress>,
    control: Option<mpsc::UnboundedSender<Control>>,
}

impl Run {
    /// Spawns the process and its supervisor. Never fails: a run that cannot start is a run
    /// that has already finished with an `error`, so it is reported like any other.
    pub fn start(spec: RunSpec, spool: &Arc<Spool>) -> Run {
        let Some(program) = spec.argv.first() else {
            return Run::failed(spec.key, "empty command");
        };
        let paths = Stream::BOTH.map(|stream| spool.log_path(&spec.key, stream));
        let mut child = match command(&spec).spawn() {
            Ok(child) => child,
            Err(err) => {
                spool.remove_run(&spec.key);
                if let Some(dirs) = &spec.dirs {
                    dirs.finish();
                }
                return Run::failed(spec.key, format!("failed to start {program:?}: {err}"));
            }
        };
        let pid = child.id();
        let pgid = pid.and_then(|pid| i32::try_from(pid).ok());
        let registration = pgid.map(crate::watchdog::register);
        if let Some(pgid) = pgid {
            if let Err(err) = spool.record_pgid(&spec.key, pgid) {
                tracing::warn!(run = %spec.key, %err, "cannot record the process group in the spool");
            }
        }
        let (progress_tx, progress) = watch::channel(Progress::default());
        let progress_tx = Arc::new(progress_tx);
        let [stdout_path, stderr_path] = paths;
        let readers = [
            tokio::spawn(spool_pipe(
                child.stdout.take(),
                stdout_path,
                Stream::Stdout,
                progress_tx.clone(),
            )),
            tokio::spawn(spool_pipe(
                child.stderr.take(),
                stderr_path,
                Stream::Stderr,
                progress_tx.clone(),
            )),
        ];
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            key: spec.key.clone(),
            pgid,
            registration,
            max_execution: spec.max_execution,
            kill_grace: spec.kill_grace,
            spool: spool.clone(),
            dirs: spec.dirs.clone(),
            artifacts: spec.artifacts.clone(),
        };
        tokio::spawn(supervisor.run(child, control_rx, readers, progress_tx));
        Run {
            key: spec.key,
            pid,
            kill_grace: spec.kill_grace,
            progress,
            control: Some(control_tx),
        }
    }

    /// A run that could not start (spawn failure): no process, empty output, `error` set.
    pub fn failed(key: RunKey, error: impl Into<String>) -> Run {
        Run::ended_before_start(
            key,
            Outcome {
                error: error.into(),
                ..Outcome::default()
            },
        )
    }

    /// A run cancelled before its command started (while its inputs were being fetched): it
    /// ends as a cancelled run does, without a process.
    pub fn cancelled_before_start(key: RunKey) -> Run {
        Run::ended_before_start(
            key,
            Outcome {
                error: "cancelled".into(),
                cancelled: true,
                ..Outcome::default()
            },
        )
    }

    /// An `Assign` this agent refuses (it is draining): `rejected` tells the coordinator the
    /// attempt never started, so it requeues it elsewhere.
    pub fn refused(key: RunKey, reason: impl Into<String>) -> Run {
        Run::ended_before_start(
            key,
            Outcome {
                error: reason.into(),
                rejected: true,
                ..Outcome::default()
            },
        )
    }

    fn ended_before_start(key: RunKey, outcome: Outcome) -> Run {
        let (_, progress) = watch::channel(Progress {
            outcome: Some(outcome),
            ..Progress::default()
        });
        Run {
            key,
            pid: None,
            kill_grace: Duration::ZERO,
            progress,
            control: None,
        }
    }

    /// Which attempt of which run this is.
    pub fn key(&self) -> &RunKey {
        &self.key
    }

    /// The process id (also its process group id), if it started.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The grace between SIGTERM and SIGKILL this run was assigned with.
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace
    }

    /// A receiver of the run's progress; it marks changes, so a sender can wait for more.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Whether the process exited and both pipes are at EOF.
    pub fn has_ended(&self) -> bool {
        self.progress.borrow().outcome.is_some()
    }

    /// SIGTERM to the run's process group, SIGKILL after `grace`; the outcome says cancelled.
    /// Does nothing once the run has ended or a stop is already under way.
    pub fn cancel(&self, grace: Duration) {
        if let Some(control) = &self.control {
            let _ = control.send(Control::Cancel(grace));
        }
    }

    /// As [`Run::cancel`], because the agent lost contact with the coordinator and the run's
    /// policy is `on_disconnect: stop`; the outcome says so.
    pub fn stop_disconnected(&self, grace: Duration) {
        if let Some(control) = &self.control {
            let _ = control.send(Control::Disconnected(grace));
        }
    }

    /// SIGKILL to the run's process group now.
    pub fn kill(&self) {
        if let Some(control) = &self.control {
            let _ = control.send(Control::Kill);
        }
    }

    /// Waits until the run has ended and returns how.
    pub async fn ended(&self) -> Outcome {
        let mut progress = self.progress.clone();
        // The supervisor only drops its sender after publishing the outcome, unless the
        // runtime is shutting down; then the last value is all there is.
        let _ = progress
            .wait_for(|progress| progress.outcome.is_some())
            .await;
        let outcome = progress.borrow().outcome.clone();
        outcome.unwrap_or_else(|| Outcome {
            error: "run supervisor stopped".to_owned(),
            ..Outcome::default()
        })
    }
}

fn command(spec: &RunSpec) -> Command {
    let mut command = Command::new(&spec.argv[0]);
    command.args(&spec.argv[1..]);
    for key in agent_only_env() {
        command.env_remove(key);
    }
    if let Some(user) = &spec.run_as {
        user.apply(&mut command);
    }
    command.envs(&spec.env).env("AGENT_NAME", &spec.agent_name);
    if let Some(dirs) = &spec.dirs {
        // Set by the agent after the job's environment: they name directories on this host.
        command
            .current_dir(&dirs.run_dir)
            .env("RUN_DIR", &dirs.run_dir)
            .env("JOB_DIR", &dirs.job_dir);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so cancel, timeout and cleanup reach everything the run started.
        .process_group(0)
        .kill_on_drop(false);
    // With the watchdog the spawn needs no pre-exec hook, so std can use posix_spawn (vfork)
    // instead of fork: about 350 us less agent CPU per run, the difference between 0.39x and
    // 0.55x of xargs' rate in W1.
    if !crate::watchdog::running() {
        die_with_parent(&mut command);
    }
    command
}

/// The variables of the agent's own environment a run does not inherit: every `ROTA_*` one.
/// They are the agent's configuration (`ROTA_TOKEN`, `ROTA_TOKEN_FILE`, `ROTA_COORDINATOR`,
/// `ROTA_CA`, ...), and a run needs none of them: with them it could act as the agent, or
/// find its token. A job that wants one sets it in its own environment, which still applies.
fn agent_only_env() -> &'static [std::ffi::OsString] {
    static KEYS: std::sync::OnceLock<Vec<std::ffi::OsString>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        std::env::vars_os()
            .map(|(key, _)| key)
            .filter(|key| key.as_encoded_bytes().starts_with(b"ROTA_"))
            .collect()
    })
}

/// The fallback when no [`watchdog`](crate::watchdog) could be started: the kernel SIGKILLs
/// the run's main process when the agent dies (parent-death signal). What that process started
/// is then left to the orphan cleanup of the agent's next start, from the spool's records.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed. It uses only prctl(2) and getppid(2), which are plain syscalls, and
    // reads errno through `last_os_error`; it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The agent may have died between fork and prctl: then no signal will come.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// One enlarged pipe of the [`MAX_ENLARGED_PIPES`] budget, given back when dropped (with the
/// pipe).
struct EnlargedPipe;

impl Drop for EnlargedPipe {
    fn drop(&mut self) {
        ENLARGED_PIPES.fetch_sub(1, Ordering::Relaxed);
    }
}

fn enlarge_pipe(pipe: &impl AsFd) -> Option<EnlargedPipe> {
    use nix::fcntl::{fcntl, FcntlArg};
    if ENLARGED_PIPES.fetch_add(1, Ordering::Relaxed) >= MAX_ENLARGED_PIPES {
        ENLARGED_PIPES.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let guard = EnlargedPipe;
    match fcntl(pipe, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE)) {
        Ok(_) => Some(guard),
        Err(err) => {
            tracing::debug!(%err, "output pipe keeps its default size");
            None
        }
    }
}

/// Copies one pipe to its spool file, publishing each new length only after the bytes are
/// written to the file, so a reader never asks for bytes not yet there.
///
/// The file is created with the first byte: most runs of a busy farm print nothing on one of
/// their streams, and creating and deleting files was a visible share of W1's agent CPU.
/// Writes are plain blocking `write`s on the async task: they land in the page cache in
/// microseconds, where a trip through the blocking pool per chunk cost more than the copy.
async fn spool_pipe(
    pipe: Option<impl AsyncRead + AsFd + Unpin>,
    path: PathBuf,
    stream: Stream,
    progress: Arc<watch::Sender<Progress>>,
) -> Option<String> {
    let mut pipe = pipe?;
    let _enlarged = enlarge_pipe(&pipe);
    let mut buf = BytesMut::new();
    let mut write_error = None;
    let mut file = None;
    loop {
        // A fresh buffer while the last piece is still shared (with `Progress::recent`, a
        // sender): nothing is zeroed and nothing copied.
        buf.reserve(READ_SIZE);
        let n = match pipe.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::warn!(%err, ?stream, "cannot read the run's output pipe");
                break;
            }
        };
        let piece = buf.split().freeze();
        // After a write error keep draining the pipe, so the process is not blocked on a full
        // pipe; the bytes are lost and the outcome says so.
        if write_error.is_some() {
            continue;
        }
        if file.is_none() {
            match std::fs::File::create(&path) {
                Ok(created) => file = Some(created),
                Err(err) => {
                    write_error = Some(format!(
                        "cannot create spool file {}: {err}",
                        path.display()
                    ));
                    continue;
                }
            }
        }
        let file = file.as_mut().expect("created above");
        match file.write_all(&piece) {
            Ok(()) => progress.send_modify(|progress| {
                let offset = progress.len(stream);
                *progress.len_mut(stream) += n as u64;
                progress.recent[stream.index()] = Some(Piece {
                    offset,
                    data: piece,
                });
            }),
            Err(err) => {
                write_error = Some(format!("cannot write spool file {}: {err}", path.display()))
            }
        }
    }
    write_error
}

/// Owns the child: waits for it, applies cancel and timeout, cleans up its group, and publishes
/// the outcome.
struct Supervisor {
    key: RunKey,
    pgid: Option<i32>,
    /// The group's place in the watchdog's table, held until the group is cleaned up.
    registration: Option<crate::watchdog::Registration>,
    max_execution: Option<Duration>,
    kill_grace: Duration,
    spool: Arc<Spool>,
    dirs: Option<RunDirs>,
    artifacts: Vec<String>,
}

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    TimedOut,
    Disconnected,
}

impl Supervisor {
    async fn run(
        mut self,
        mut child: Child,
        mut control: mpsc::UnboundedReceiver<Control>,
        readers: [tokio::task::JoinHandle<Option<String>>; 2],
        progress: Arc<watch::Sender<Progress>>,
    ) {
        let deadline = self.max_execution.map(|limit| Instant::now() + limit);
        let mut stop = None;
        let mut kill_at: Option<Instant> = None;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(request) = control.recv() => match request {
                    Control::Cancel(grace) if stop.is_none() => {
                        stop = Some(Stop::Cancelled);
                        self.signal(Signal::SIGTERM);
                        kill_at = Some(Instant::now() + grace);
                    }
                    Control::Disconnected(grace) if stop.is_none() => {
                        tracing::warn!(run = %self.key, "no contact with the coordinator for its lease: stopping the run (on_disconnect: stop)");
                        stop = Some(Stop::Disconnected);
                        self.signal(Signal::SIGTERM);
                        kill_at = Some(Instant::now() + grace);
                    }
                    Control::Cancel(_) | Control::Disconnected(_) => {}
                    Control::Kill => self.signal(Signal::SIGKILL),
                },
                () = sleep_until(deadline), if stop.is_none() && deadline.is_some() => {
                    tracing::info!(run = %self.key, "run reached its max execution time");
                    stop = Some(Stop::TimedOut);
                    self.signal(Signal::SIGTERM);
                    kill_at = Some(Instant::now() + self.kill_grace);
                }
                () = sleep_until(kill_at), if kill_at.is_some() => {
                    self.signal(Signal::SIGKILL);
                    kill_at = None;
                }
            }
        };
        // Whatever the main process left behind in its group (a shell's background child)
        // must not outlive the run, and must not hold the pipes open.
        self.signal(Signal::SIGKILL);
        let mut spool_errors = Vec::new();
        for reader in readers {
            let abort = reader.abort_handle();
            match tokio::time::timeout(PIPE_EOF_TIMEOUT, reader).await {
                Ok(Ok(Some(error))) => spool_errors.push(error),
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(run = %self.key, "output pipe still open after the run ended; a process escaped its group");
                    abort.abort();
                }
            }
        }
        self.spool.clear_pgid(&self.key);
        drop(self.registration.take());
        let mut outcome = exit_outcome(status);
        match stop {
            Some(Stop::Cancelled) => {
                outcome.cancelled = true;
                outcome.error = "cancelled".to_owned();
            }
            Some(Stop::TimedOut) => {
                outcome.timed_out = true;
                outcome.error = "timed out".to_owned();
            }
            Some(Stop::Disconnected) => {
                outcome.cancelled = true;
                outcome.error =
                    "stopped: no contact with the coordinator (on_disconnect: stop)".to_owned();
            }
            None => {}
        }
        if outcome.error.is_empty() {
            outcome.error = spool_errors.join("; ");
        }
        let succeeded = outcome.exit_code == Some(0) && outcome.error.is_empty();
        if let Some(dirs) = self.dirs.as_ref().filter(|_| succeeded) {
            // Matched before `finish` starts the directory's removal timer.
            outcome.artifacts = crate::artifacts::collect(&dirs.run_dir, &self.artifacts);
        }
        outcome.return_data = self.dirs.as_ref().and_then(RunDirs::finish);
        progress.send_modify(|progress| {
            outcome.stdout_len = progress.stdout_len;
            outcome.stderr_len = progress.stderr_len;
            progress.outcome = Some(outcome);
        });
    }

    fn signal(&self, signal: Signal) {
        let Some(pgid) = self.pgid else { return };
        match killpg(Pid::from_raw(pgid), signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => {
                tracing::warn!(run = %self.key, pgid, %err, ?signal, "cannot signal the run's process group")
            }
        }
    }
}

fn exit_outcome(status: io::Result<ExitStatus>) -> Outcome {
    match status {
        Ok(status) => Outcome {
            exit_code: status.code(),
            signal: status.signal(),
            ..Outcome::default()
        },
        Err(err) => Outcome {
            error: format!("cannot wait for the process: {err}"),
            ..Outcome::default()
        },
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
