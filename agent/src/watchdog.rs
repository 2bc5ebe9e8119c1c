//! The watchdog: one small process per agent process that kills every run's process group when
//! the agent dies, even by `kill -9`, so nothing the agent started runs on unsupervised.
//!
//! A dead agent cannot kill anything, and a parent-death signal reaches only a run's main
//! process, not what it started (a shell's background child). So at the first run the agent
//! forks a watchdog. The two share a table of process groups in shared memory (an anonymous
//! `MAP_SHARED` mapping made before the fork): the agent writes a run's group into a free slot
//! when it starts and clears the slot when the run is cleaned up: an atomic store, no system
//! call, no wake-up. The watchdog sleeps in `read` on a pipe whose write end only the agent
//! holds; when the agent process is gone the kernel closes it, `read` returns 0, and the
//! watchdog SIGKILLs every group still in the table, then exits.
//!
//! A group is registered right after `spawn` returns: an agent killed in the microseconds
//! between the two leaves that one run unsupervised (a known, accepted gap). The
//! alternative, a parent-death signal set in a pre-exec hook, forces `fork` instead of
//! `posix_spawn` on every run and cost a third of W1's throughput; it is the fallback when the
//! watchdog cannot start.
//!
//! The watchdog is a `fork` without `exec` of a multi-threaded process, so between `fork` and
//! `_exit` it only makes plain system calls on memory mapped before the fork: no allocation,
//! no locks, no Rust runtime.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Groups the table holds at once; far more than any agent's slots. A run beyond it is
/// covered only by the spool's records at the agent's next start.
const CAPACITY: usize = 16 * 1024;

/// The table shared with the watchdog; `None` when the watchdog could not be started.
fn table() -> Option<&'static [AtomicI32]> {
    static TABLE: OnceLock<Option<&'static [AtomicI32]>> = OnceLock::new();
    *TABLE.get_or_init(|| match start() {
        Ok(table) => Some(table),
        Err(err) => {
            tracing::warn!(%err, "cannot start the watchdog; a run's background children may outlive a crashed agent");
            None
        }
    })
}

/// Whether the watchdog runs (starting it on first use). Without it each run falls back to a
/// parent-death signal on its main process.
pub fn running() -> bool {
    table().is_some()
}

/// A run's process group in the watchdog's table; dropping it takes the group out.
#[derive(Debug)]
pub struct Registration {
    slot: Option<&'static AtomicI32>,
}

/// Puts a run's process group in the watchdog's table until the returned registration drops.
pub fn register(pgid: i32) -> Registration {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Some(table) = table() else {
        return Registration { slot: None };
    };
    let first = NEXT.fetch_add(1, Ordering::Relaxed);
    let slot = (0..CAPACITY)
        .map(|i| &table[(first + i) % CAPACITY])
        .find(|slot| {
            slot.compare_exchange(0, pgid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
    if slot.is_none() {
        tracing::warn!(
            pgid,
            "the watchdog's table is full; this run is not covered"
        );
    }
    Registration { slot }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            slot.store(0, Ordering::Release);
        }
    }
}

#[allow(unsafe_code)]
fn start() -> std::io::Result<&'static [AtomicI32]> {
    let bytes = CAPACITY * std::mem::size_of::<AtomicI32>();
    // SAFETY: a fresh anonymous mapping; the kernel zero-fills it, which is a valid
    // `AtomicI32` array. It is never unmapped, so the `'static` slice stays valid.
    let table = unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        std::slice::from_raw_parts(addr.cast::<AtomicI32>(), CAPACITY)
    };
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [lifeline, agent_end] = fds;
    // SAFETY: see the module doc: the child runs only `watch`, which makes plain system calls
    // on `table` and `lifeline` and never returns.
    match unsafe { libc::fork() } {
        -1 => {
            let err = std::io::Error::last_os_error();
            // SAFETY: closing the two descriptors we just created and nobody else holds.
            unsafe {
                libc::close(lifeline);
                libc::close(agent_end);
            }
            Err(err)
        }
        0 => watch(lifeline, table),
        _ => {
            // SAFETY: the read end belongs to the watchdog now. The write end stays open, and
            // unused, for the rest of this process's life.
            unsafe { libc::close(lifeline) };
            Ok(table)
        }
    }
}

/// The watchdog's whole life, in the forked child.
#[allow(unsafe_code)]
fn watch(lifeline: RawFd, table: &[AtomicI32]) -> ! {
    // SAFETY: every call below is a plain, async-signal-safe system call on our own memory.
    unsafe {
        // Hold nothing of the agent's: not its sockets, pipes, terminal or spool files, so no
        // peer waits on an end-of-file this process would keep from happening.
        if lifeline > 0 {
            close_range(0, lifeline as u32 - 1);
        }
        close_range(lifeline as u32 + 1, u32::MAX);
        // Out of the terminal's process group and session: a Ctrl-C aimed at `rota run`
        // must not take the watchdog first. Signals a shell sends a job are ignored too.
        libc::setsid();
        for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_IGN);
        }
        // So `pkill rota-agent` does not take it for the agent.
        libc::prctl(libc::PR_SET_NAME, c"rota-watchdog".as_ptr());
        let mut byte = 0u8;
        loop {
            let n = libc::read(lifeline, (&raw mut byte).cast(), 1);
            if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
                break; // The agent is gone.
            }
        }
        for slot in table {
            let pgid = slot.load(Ordering::Acquire);
            if pgid > 0 {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        libc::_exit(0)
    }
}

/// Closes descriptors `first..=last`; falls back to one `close` each up to a bound when the
/// kernel has no `close_range` (before Linux 5.9).
#[allow(unsafe_code)]
unsafe fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors of this process.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc != 0 {
        for fd in first..last.min(65_536) {
            // SAFETY: as above, one descriptor at a time.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}
