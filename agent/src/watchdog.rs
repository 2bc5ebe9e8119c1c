//! The watchdog: one small process per agent process that kills every run's process group when
//! the agent dies, even by `kill -9`, so nothing the agent started runs on unsupervised.
//!
//! The parent-death signal set on each run's main process does not reach what that process
//! started (a shell's background child), and a dead agent cannot kill anything. So at the first
//! run the agent forks a watchdog and keeps one end of a `SOCK_SEQPACKET` socket pair; it sends
//! each run's process group as it starts (`+pgid`) and as it is cleaned up (`-pgid`). When the
//! agent process is gone the kernel closes its end, the watchdog's `recv` returns 0, and it
//! SIGKILLs every group still registered, then exits.
//!
//! The watchdog is a `fork` without `exec` of a multi-threaded process, so between `fork` and
//! `_exit` it only makes plain system calls on memory allocated before the fork: no allocation,
//! no locks, no Rust runtime.

use std::os::fd::RawFd;
use std::sync::OnceLock;

/// Groups the watchdog can hold at once; far more than any agent's slots.
const CAPACITY: usize = 16 * 1024;

/// The agent's end of the socket pair, or `None` when the watchdog could not be started (the
/// parent-death signal then still covers each run's main process).
fn channel() -> Option<RawFd> {
    static CHANNEL: OnceLock<Option<RawFd>> = OnceLock::new();
    *CHANNEL.get_or_init(|| match start() {
        Ok(fd) => Some(fd),
        Err(err) => {
            tracing::warn!(%err, "cannot start the watchdog; a run's background children may outlive a crashed agent");
            None
        }
    })
}

/// Tells the watchdog a run's process group started.
pub fn register(pgid: i32) {
    send(pgid);
}

/// Tells the watchdog a run's process group was cleaned up and must no longer be killed.
pub fn unregister(pgid: i32) {
    send(-pgid);
}

#[allow(unsafe_code)]
fn send(message: i32) {
    let Some(fd) = channel() else { return };
    let bytes = message.to_ne_bytes();
    // SAFETY: sends 4 bytes from a live local array on a socket this process owns for its
    // whole life. MSG_NOSIGNAL: a dead watchdog gives EPIPE, not SIGPIPE.
    let sent = unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if sent != bytes.len() as isize {
        let err = std::io::Error::last_os_error();
        tracing::warn!(%err, message, "cannot tell the watchdog about a run's process group");
    }
}

#[allow(unsafe_code)]
fn start() -> std::io::Result<RawFd> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two descriptors into the array we own.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [agent_end, watchdog_end] = fds;
    // Allocated before the fork: the watchdog must not allocate.
    let mut groups = vec![0i32; CAPACITY];
    // SAFETY: see the module doc: the child runs only `watch`, which makes plain system calls
    // on `groups` and `watchdog_end` and never returns.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => {
            let err = std::io::Error::last_os_error();
            // SAFETY: closing the two descriptors we just created and nobody else holds.
            unsafe {
                libc::close(agent_end);
                libc::close(watchdog_end);
            }
            Err(err)
        }
        0 => watch(watchdog_end, &mut groups),
        _ => {
            // SAFETY: the watchdog's end belongs to the child now.
            unsafe { libc::close(watchdog_end) };
            Ok(agent_end)
        }
    }
}

/// The watchdog's whole life, in the forked child.
#[allow(unsafe_code)]
fn watch(fd: RawFd, groups: &mut [i32]) -> ! {
    // SAFETY: every call below is a plain, async-signal-safe system call on our own memory.
    unsafe {
        // Hold nothing of the agent's: not its sockets, pipes, terminal or spool files, so no
        // peer waits on an end-of-file this process would keep from happening.
        if fd > 0 {
            close_range(0, fd as u32 - 1);
        }
        close_range(fd as u32 + 1, u32::MAX);
        // Out of the terminal's process group and session: a Ctrl-C aimed at `rota run`
        // must not take the watchdog first. Signals a shell sends a job are ignored too.
        libc::setsid();
        for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_IGN);
        }
        // So `pkill rota-agent` does not take it for the agent.
        libc::prctl(libc::PR_SET_NAME, c"rota-watchdog".as_ptr());
        let mut count = 0usize;
        loop {
            let mut message = [0u8; 4];
            let n = libc::recv(fd, message.as_mut_ptr().cast(), message.len(), 0);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n != 4 {
                break; // 0: the agent is gone.
            }
            let value = i32::from_ne_bytes(message);
            if value > 0 && count < groups.len() {
                groups[count] = value;
                count += 1;
            } else if value < 0 {
                if let Some(at) = groups[..count].iter().position(|&g| g == -value) {
                    count -= 1;
                    groups[at] = groups[count];
                }
            }
        }
        for &pgid in &groups[..count] {
            libc::kill(-pgid, libc::SIGKILL);
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
