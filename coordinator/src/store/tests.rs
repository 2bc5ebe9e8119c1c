use super::*;

fn run(number: u64, state: &str) -> RunRecord {
    RunRecord {
        number,
        id: format!("id-{number}"),
        name: "n".into(),
        jobset: "js".into(),
        state: state.into(),
        attempt: 1,
        spec: RunSpecData {
            command: vec!["true".into()],
            after: if number > 1 { vec![number - 1] } else { vec![] },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn committed_runs_survive_reopen_and_unfinished_ones_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rota.db");
    {
        let mut s = Store::open(&path).unwrap();
        s.batch(|b| {
            b.insert_run(&run(1, "success"))?;
            b.insert_run(&run(2, "pending"))?;
            b.insert_run(&run(3, "running"))
        })
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    let r = s.read();
    assert_eq!(r.max_number().unwrap(), 3);
    let unfinished: Vec<u64> = r
        .unfinished_runs()
        .unwrap()
        .iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(unfinished, vec![2, 3]);
    assert_eq!(
        r.run_by_id("id-1").unwrap().unwrap().spec.command,
        vec!["true"]
    );
    assert_eq!(r.dependents(1).unwrap().len(), 1);
}

#[test]
fn a_failed_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("rota.db")).unwrap();
    let res = s.batch(|b| {
        b.insert_run(&run(1, "pending"))?;
        b.insert_run(&run(1, "pending")) // duplicate number
    });
    assert!(res.is_err());
    assert_eq!(s.read().max_number().unwrap(), 0);
}

fn synchronous(s: &Store) -> i64 {
    s.conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn relaxed_batches_commit_and_leave_the_store_fully_synchronous() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rota.db");
    {
        let mut s = Store::open(&path).unwrap();
        assert_eq!(synchronous(&s), 2, "FULL by default");
        // A relaxed batch that stays relaxed, and one that turns out to need durability
        // (synced by hand through the WAL file).
        s.batch_then(true, |b| {
            b.insert_run(&run(1, "running")).map(|()| ((), false))
        })
        .unwrap();
        s.batch_then(true, |b| {
            b.insert_run(&run(2, "pending")).map(|()| ((), true))
        })
        .unwrap();
        assert_eq!(synchronous(&s), 2, "FULL again after relaxed batches");
        // A failing relaxed batch rolls back and restores FULL too.
        let failed: Result<()> = s.batch_then(true, |b| {
            b.insert_run(&run(3, "pending"))?;
            Err(StoreError::Corrupt("boom".into()))
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(&s), 2);
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.read().max_number().unwrap(), 2);
}

fn finished(number: u64, job: Option<&str>, jobset: &str, finished_at: u64) -> RunRecord {
    let mut r = run(number, "success");
    r.spec.after.clear();
    r.spec.job = job.map(Into::into);
    r.jobset = jobset.into();
    r.finished_at = finished_at;
    r
}

fn numbers(c: Vec<PruneCandidate>) -> Vec<u64> {
    c.into_iter().map(|c| c.number).collect()
}

#[test]
fn a_new_store_returns_deleted_space_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("rota.db")).unwrap();
    let mode: u32 = s
        .conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "INCREMENTAL");
}

#[test]
fn a_store_from_before_retention_is_switched_to_incremental_vacuum_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rota.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
    }
    let s = Store::open(&path).unwrap();
    let mode: u32 = s
        .conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2);
}

#[test]
fn prune_reads_finished_runs_by_finish_time_and_by_key_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("rota.db")).unwrap();
    s.batch(|b| {
        b.insert_run(&finished(1, Some("build"), "js", 300))?;
        b.insert_run(&finished(2, None, "js", 100))?;
        b.insert_run(&finished(3, Some("build"), "js", 200))?;
        b.insert_run(&finished(4, None, "js", 400))?;
        b.insert_run(&finished(5, Some("build"), "other", 500))?;
        let mut live = finished(6, Some("build"), "js", 0);
        live.state = "running".into();
        b.insert_run(&live)
    })
    .unwrap();
    let r = s.read();
    assert_eq!(
        numbers(r.finished_before(450, (0, 0), 10).unwrap()),
        [2, 3, 1, 4]
    );
    assert_eq!(
        numbers(r.finished_before(450, (200, 3), 10).unwrap()),
        [1, 4]
    );
    assert_eq!(numbers(r.finished_before(450, (0, 0), 2).unwrap()), [2, 3]);
    // Newest first, the running run not counted.
    assert_eq!(
        numbers(r.finished_of_job("build", 0, 10).unwrap()),
        [5, 3, 1]
    );
    assert_eq!(numbers(r.finished_of_job("build", 1, 10).unwrap()), [3, 1]);
    assert_eq!(
        numbers(r.finished_adhoc_of_jobset("js", 0, 10).unwrap()),
        [4, 2]
    );
}

#[test]
fn deleting_pruned_runs_takes_attempts_queue_rows_and_emptied_jobsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("rota.db")).unwrap();
    s.batch(|b| {
        for js in ["a", "b"] {
            b.upsert_jobset(&JobsetRecord {
                name: js.into(),
                parallel: 0,
                created_at: 0,
            })?;
        }
        b.insert_run(&finished(1, None, "a", 1))?;
        b.insert_run(&finished(2, None, "b", 1))?;
        b.insert_run(&finished(3, None, "b", 1))?;
        b.put_attempt(&AttemptRecord {
            run: 1,
            attempt: 1,
            state: "success".into(),
            ..Default::default()
        })?;
        b.queue_prune(&[(1, "id-1".into()), (2, "id-2".into())])
    })
    .unwrap();
    assert_eq!(s.read().prune_queue().unwrap().len(), 2);
    s.batch(|b| b.delete_runs(&[1, 2])).unwrap();
    let r = s.read();
    assert!(r.prune_queue().unwrap().is_empty());
    assert!(r.run_by_number(1).unwrap().is_none());
    assert!(r.attempts(1).unwrap().is_empty());
    assert!(r.jobset("a").unwrap().is_none(), "its last run went");
    assert!(r.jobset("b").unwrap().is_some(), "run 3 is left");
    // Deleting again (a batch redone after a crash) is a no-op.
    s.batch(|b| b.delete_runs(&[1, 2])).unwrap();
}
