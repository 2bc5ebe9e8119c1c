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
