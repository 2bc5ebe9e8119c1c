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

fn pragma(s: &Store, name: &str) -> i64 {
    let db: &dyn sql::Sql = &*s.db;
    db.value(&format!("PRAGMA {name}"), &[]).unwrap()
}

fn synchronous(s: &Store) -> i64 {
    pragma(s, "synchronous")
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

#[test]
fn a_new_store_returns_deleted_space_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("rota.db")).unwrap();
    let mode = pragma(&s, "auto_vacuum");
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
    let mode = pragma(&s, "auto_vacuum");
    assert_eq!(mode, 2);
}
