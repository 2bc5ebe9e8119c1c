//! `--run-as USER`: runs get that user's uid, gid and supplementary groups, and `HOME`, `USER`
//! and `LOGNAME` to match, while the agent stays root.
//!
//! Why: a run of the agent's own user can read whatever the agent can, the token file first
//! of all. Run as another user it can read neither the token file (mode 0600, the agent's)
//! nor the agent's `/proc` entries (another user's, and not dumpable anyway). Changing the
//! user needs root, so the agent refuses `--run-as` otherwise rather than run as itself.

use std::ffi::CString;
use std::io;
use std::path::PathBuf;

use nix::unistd::{geteuid, getgrouplist, User};

/// The user runs become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, from the group database (`getgrouplist`); include `gid`.
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

/// Why `--run-as` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunAsError {
    #[error(
        "--run-as needs root (this agent runs as uid {0}): start it as root, or leave --run-as off"
    )]
    NotRoot(u32),
    #[error("--run-as {0}: no such user")]
    NoSuchUser(String),
    #[error("--run-as {0}: cannot look the user up: {1}")]
    Lookup(String, nix::Error),
}

impl RunAs {
    /// Looks `name` up in the user and group databases; only root may use the result.
    pub fn lookup(name: &str) -> Result<RunAs, RunAsError> {
        let euid = geteuid();
        if !euid.is_root() {
            return Err(RunAsError::NotRoot(euid.as_raw()));
        }
        let user = User::from_name(name)
            .map_err(|err| RunAsError::Lookup(name.to_owned(), err))?
            .ok_or_else(|| RunAsError::NoSuchUser(name.to_owned()))?;
        let c_name = CString::new(name).map_err(|_| RunAsError::NoSuchUser(name.to_owned()))?;
        let groups = getgrouplist(&c_name, user.gid)
            .map_err(|err| RunAsError::Lookup(name.to_owned(), err))?
            .into_iter()
            .map(|gid| gid.as_raw())
            .collect();
        Ok(RunAs {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups,
            home: user.dir,
        })
    }

    /// Makes `command` start as this user. The job's own environment, set afterwards, may
    /// still override `HOME`.
    #[allow(unsafe_code)]
    pub(crate) fn apply(&self, command: &mut tokio::process::Command) {
        command
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        let groups: Vec<libc::gid_t> = self.groups.clone();
        let (uid, gid) = (self.uid, self.gid);
        // std's own `uid`/`gid` would drop every supplementary group (its `groups` is
        // unstable), so the switch is one hook: groups, then gid, then uid (after setuid
        // there is no permission left to change the others).
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed: setgroups(2), setgid(2) and setuid(2) on
        // memory allocated before the fork; nothing is allocated and no lock is taken. In
        // the child only one thread exists, so glibc's all-threads set*id is one call.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
