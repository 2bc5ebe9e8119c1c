//! The spool directory across agent processes: a restarted agent kills its predecessor's
//! orphans and drops their files, never touches a recycled pid, and two agents cannot share
//! one directory.

mod support;

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::Command;

use rota_agent::spool::{Spool, SpoolError, Stream};
use rota_agent::RunKey;

fn sleeper() -> std::process::Child {
    Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .expect("spawn sleep")
}

#[test]
fn opening_a_spool_kills_the_process_groups_a_previous_agent_left_and_drops_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = RunKey::new("orphan", 2);
    let mut orphan = sleeper();
    let stdout_path;
    {
        let previous = Spool::open(dir.path()).unwrap();
        previous
            .record_pgid(&key, i32::try_from(orphan.id()).unwrap())
            .unwrap();
        stdout_path = previous.log_path(&key, Stream::Stdout);
        std::fs::write(&stdout_path, b"half a log").unwrap();
        // Dropping it is what `kill -9` of the agent does to the lock.
    }

    let _next = Spool::open(dir.path()).unwrap();

    assert_eq!(orphan.wait().unwrap().signal(), Some(9));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, ["lock"], "run files must be dropped");
}

#[test]
fn a_recorded_group_whose_pid_was_recycled_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut unrelated = sleeper();
    // A record for this pid but with another start time: the pid now names another process.
    std::fs::write(
        dir.path().join("old.1.pgid"),
        format!("{} 1\n", unrelated.id()),
    )
    .unwrap();

    let _spool = Spool::open(dir.path()).unwrap();

    assert!(
        unrelated.try_wait().unwrap().is_none(),
        "an unrelated process was killed"
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

#[test]
fn a_spool_directory_serves_one_agent_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Spool::open(dir.path()).unwrap();
    match Spool::open(dir.path()) {
        Err(SpoolError::InUse { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected InUse, got {other:?}"),
    }
}
