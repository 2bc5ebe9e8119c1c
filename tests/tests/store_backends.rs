//! One store, two backends: every test here runs on SQLite (a temp dir) and on a real
//! PostgreSQL (a fresh database on the test process's server, see `rota_tests::pg`), through
//! the same `Store` API the engine uses, including closing the store and opening it again.

use std::collections::HashSet;

use rota_coordinator::store::{
    ArtifactRecord, AttemptRecord, AuditRecord, JobsetRecord, OutboxRecord, PruneCandidate,
    ReturnDataRecord, RunFilter, RunRecord, RunSpecData, Store, StoreError, StoreLocation,
};

use rota_tests::on_both_stores;
use rota_tests::pg::Backend;

/// A test's store, opened again at each [`Stores::open`] (a reopen after a restart).
struct Stores {
    at: StoreLocation,
    _dir: tempfile::TempDir,
}

impl Stores {
    fn of(backend: Backend) -> Stores {
        let dir = tempfile::tempdir().unwrap();
        Stores {
            at: backend.location(dir.path()),
            _dir: dir,
        }
    }

    fn open(&self) -> Store {
        Store::open_at(&self.at).unwrap()
    }
}

/// Far past `u32::MAX`, as millisecond times and large farms' run numbers are.
const BIG: u64 = 5_000_000_000;

fn run(number: u64, state: &str) -> RunRecord {
    RunRecord {
        number,
        id: format!("id-{number}"),
        name: format!("n{number}"),
        jobset: "js".into(),
        priority: -3,
        state: state.into(),
        attempt: 1,
        submitted_at: BIG + number,
        spec: RunSpecData {
            command: vec!["echo".into(), "héllo".into()],
            after: if number > 1 { vec![number - 1] } else { vec![] },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn finished(number: u64, job: Option<&str>, jobset: &str, state: &str, at: u64) -> RunRecord {
    let mut r = run(number, state);
    r.spec.after.clear();
    r.spec.job = job.map(Into::into);
    r.jobset = jobset.into();
    r.finished_at = at;
    r
}

fn numbers(runs: &[RunRecord]) -> Vec<u64> {
    runs.iter().map(|r| r.number).collect()
}

fn runs_survive_a_reopen_with_every_field(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut full = run(2, "running");
    full.agent = "host-a".into();
    full.group = "db".into();
    full.exit_code = Some(-1);
    full.signal = Some(9);
    full.error = "lost ✗".into();
    full.not_before = BIG;
    full.started_at = BIG + 7;
    full.stdout_len = BIG;
    full.spec.env = [("K".to_string(), "v w".to_string())].into();
    {
        let mut s = open();
        s.batch(|b| {
            b.insert_run(&run(1, "success"))?;
            b.insert_run(&full)?;
            b.insert_run(&run(3, "pending"))
        })
        .unwrap();
    }
    let s = open();
    let r = s.read();
    assert_eq!(r.max_number().unwrap(), 3);
    assert_eq!(r.oldest_submitted_at().unwrap(), Some(BIG + 1));
    assert_eq!(r.run_by_number(2).unwrap().unwrap(), full);
    assert_eq!(r.run_by_id("id-2").unwrap().unwrap(), full);
    assert_eq!(r.run_by_id("nope").unwrap(), None);
    assert_eq!(numbers(&r.unfinished_runs().unwrap()), vec![2, 3]);
    assert_eq!(numbers(&r.dependents(1).unwrap()), vec![2]);
    assert_eq!(numbers(&r.dependents(3).unwrap()), Vec::<u64>::new());
}

fn an_update_writes_every_mutable_field(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    s.batch(|b| b.insert_run(&run(1, "pending"))).unwrap();
    let mut r = run(1, "errored");
    r.attempt = 3;
    r.exit_code = Some(2);
    r.finished_at = BIG * 2;
    r.stderr_len = 12;
    s.batch(|b| b.update_run(&r)).unwrap();
    assert_eq!(s.read().run_by_number(1).unwrap().unwrap(), r);
}

fn a_failed_batch_writes_nothing_and_the_next_one_works(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    let res = s.batch(|b| {
        b.insert_run(&run(1, "pending"))?;
        b.insert_run(&run(1, "pending")) // the same number twice
    });
    assert!(res.is_err());
    let failed: Result<(), StoreError> = s.batch(|b| {
        b.insert_run(&run(2, "pending"))?;
        Err(StoreError::Corrupt("the caller gave up".into()))
    });
    assert!(failed.is_err());
    assert_eq!(s.read().max_number().unwrap(), 0);
    s.batch(|b| b.insert_run(&run(1, "pending"))).unwrap();
    // Relaxed batches commit too, durable or not.
    s.batch_then(true, |b| {
        b.insert_run(&run(2, "pending")).map(|()| ((), false))
    })
    .unwrap();
    s.batch_then(true, |b| {
        b.insert_run(&run(3, "pending")).map(|()| ((), true))
    })
    .unwrap();
    drop(s);
    assert_eq!(open().read().max_number().unwrap(), 3);
}

fn pages_of_runs_filter_by_jobset_and_state(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    s.batch(|b| {
        for n in 1..=10 {
            let mut r = run(n, if n % 2 == 0 { "success" } else { "pending" });
            r.jobset = if n <= 6 { "a" } else { "b" }.into();
            b.insert_run(&r)?;
        }
        Ok::<_, StoreError>(())
    })
    .unwrap();
    let r = s.read();
    let page = |jobset: Option<&str>, state: Option<&str>, after: u64, limit: u32| {
        numbers(
            &r.runs(&RunFilter {
                jobset: jobset.map(Into::into),
                state: state.map(Into::into),
                after_number: after,
                limit,
            })
            .unwrap(),
        )
    };
    assert_eq!(page(None, None, 0, 0), (1..=10).collect::<Vec<_>>());
    assert_eq!(page(None, None, 3, 2), vec![4, 5]);
    assert_eq!(page(Some("a"), None, 0, 0), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(page(None, Some("success"), 0, 3), vec![2, 4, 6]);
    assert_eq!(page(Some("b"), Some("pending"), 7, 0), vec![9]);
    // A number no column can hold is an error naming it, not a lookup of another number.
    let err = r
        .runs(&RunFilter {
            after_number: u64::MAX,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("18446744073709551615 out of range"), "{err}");
    let mut counts = r.jobset_counts("a").unwrap();
    counts.sort();
    assert_eq!(counts, vec![("pending".into(), 3), ("success".into(), 3)]);
    let mut all = r.run_counts().unwrap();
    all.sort();
    assert_eq!(all, vec![("pending".into(), 5), ("success".into(), 5)]);
}

fn attempts_and_cancels_are_upserted_once(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    let mut a = AttemptRecord {
        run: 1,
        attempt: 1,
        agent: "host-a".into(),
        group: "g".into(),
        state: "running".into(),
        started_at: BIG,
        ..Default::default()
    };
    s.batch(|b| {
        b.insert_run(&run(1, "running"))?;
        b.put_attempt(&a)?;
        b.request_cancel(1, 1)?;
        b.request_cancel(1, 1)
    })
    .unwrap();
    a.state = "cancelled".into();
    a.finished_at = BIG + 1;
    a.signal = Some(15);
    let second = AttemptRecord {
        attempt: 2,
        ..a.clone()
    };
    s.batch(|b| {
        b.put_attempt(&a)?;
        b.put_attempt(&second)
    })
    .unwrap();
    drop(s);
    let s = open();
    assert_eq!(s.read().attempts(1).unwrap(), vec![a, second]);
    assert_eq!(
        s.read().cancel_requests().unwrap(),
        HashSet::from([(1u64, 1u32)])
    );
}

fn jobsets_groups_and_config_are_set_and_unset(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    let js = |name: &str, parallel, created_at| JobsetRecord {
        name: name.into(),
        parallel,
        created_at,
    };
    s.batch(|b| {
        b.upsert_jobset(&js("b", 2, BIG))?;
        b.upsert_jobset(&js("a", 1, BIG + 1))?;
        b.upsert_jobset(&js("b", 8, 0))?; // parallel changes, created_at stays
        b.set_group_max("db", Some(3))?;
        b.set_group_max("web", Some(1))?;
        b.set_group_max("web", None)?;
        b.set_config("k", "v1")?;
        b.set_config("k", "v2")
    })
    .unwrap();
    drop(s);
    let s = open();
    let r = s.read();
    assert_eq!(
        r.jobsets().unwrap(),
        vec![js("b", 8, BIG), js("a", 1, BIG + 1)]
    );
    assert_eq!(r.jobset("a").unwrap(), Some(js("a", 1, BIG + 1)));
    assert_eq!(r.jobset("z").unwrap(), None);
    assert_eq!(r.groups().unwrap(), vec![("db".to_string(), 3)]);
    assert_eq!(r.config("k").unwrap().as_deref(), Some("v2"));
    assert_eq!(r.config("none").unwrap(), None);
}

fn the_outbox_keeps_order_and_outcomes(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    let row = |run: u64| OutboxRecord {
        created_at: BIG,
        run,
        jobset: "js".into(),
        event: "finished".into(),
        url: "http://127.0.0.1:1/h".into(),
        format: "json".into(),
        payload: "{\"x\":1}".into(),
        next_at: BIG,
        ..Default::default()
    };
    let (first, second) = s
        .batch(|b| Ok::<_, StoreError>((b.insert_outbox(&row(1))?, b.insert_outbox(&row(2))?)))
        .unwrap();
    assert!(second > first, "ids grow: {first} then {second}");
    s.batch(|b| {
        b.outbox_outcome(first, "delivered", 1, BIG, 204, "", BIG + 5)?;
        b.set_jobset_notify("js", "[\"http://x\"]")?;
        b.set_jobset_notify("js", "[\"http://y\"]")
    })
    .unwrap();
    drop(s);
    let s = open();
    let r = s.read();
    let pending: Vec<u64> = r.pending_outbox().unwrap().iter().map(|o| o.run).collect();
    assert_eq!(pending, vec![2]);
    let all = r.outbox(0, 10).unwrap();
    assert_eq!(
        all.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![second, first]
    );
    let one = r.outbox(1, 10).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (
            one[0].state.as_str(),
            one[0].last_status,
            one[0].delivered_at
        ),
        ("delivered", 204, BIG + 5)
    );
    assert_eq!(
        r.jobset_notify().unwrap(),
        vec![("js".to_string(), "[\"http://y\"]".to_string())]
    );
}

fn the_audit_trail_links_runs_and_prunes_only_what_names_none(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    let entry = |at: u64, runs: Vec<u64>| AuditRecord {
        at,
        caller: "admin".into(),
        role: "admin".into(),
        peer: "127.0.0.1:5".into(),
        method: "Cancel".into(),
        target: "run 1".into(),
        runs,
        ..Default::default()
    };
    s.batch(|b| {
        b.insert_run(&run(1, "cancelled"))?;
        b.insert_audit(&entry(BIG, vec![1, 1]))?;
        b.insert_audit(&entry(10, vec![]))?;
        b.insert_audit(&entry(BIG + 9, vec![]))
    })
    .unwrap();
    let r = s.read();
    let of_run = r.audit(1, 0, 10).unwrap();
    assert_eq!(of_run.len(), 1);
    assert_eq!(of_run[0].runs, vec![1]);
    assert_eq!(r.audit(0, 0, 10).unwrap().len(), 3);
    assert_eq!(r.audit(0, BIG, 10).unwrap().len(), 2);
    let pruned = s.batch(|b| b.prune_audit(BIG + 1, 100)).unwrap();
    assert_eq!(pruned, 1, "only the old entry that names no run");
    assert_eq!(s.read().audit(0, 0, 10).unwrap().len(), 2);
}

fn artifacts_and_return_data_replace_and_go_with_their_run(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    let art = |path: &str, sha: &str| ArtifactRecord {
        path: path.into(),
        sha256: sha.into(),
        size: BIG,
    };
    let data = |attempt| ReturnDataRecord {
        attempt,
        data: "{\"rows\":3}".into(),
        problem: String::new(),
    };
    s.batch(|b| {
        b.insert_run(&finished(1, None, "js", "success", 5))?;
        b.put_artifacts(1, &[art("out/a", "aa"), art("out/b", "bb")])?;
        b.add_artifact(1, &art("out/a", "cc"))?;
        b.put_return_data(1, &data(1))?;
        b.put_return_data(1, &data(2))
    })
    .unwrap();
    let r = s.read();
    assert_eq!(
        r.artifacts(1).unwrap(),
        vec![art("out/a", "cc"), art("out/b", "bb")]
    );
    assert!(r.artifact_content_used("bb").unwrap());
    assert!(!r.artifact_content_used("aa").unwrap());
    assert_eq!(r.return_data(1).unwrap(), Some(data(2)));
    s.batch(|b| b.clear_artifacts(1)).unwrap();
    assert!(s.read().artifacts(1).unwrap().is_empty());
    s.batch(|b| {
        b.add_artifact(1, &art("x", "dd"))?;
        b.queue_prune(&[(1, "id-1".into())])?;
        b.delete_runs(&[1])
    })
    .unwrap();
    assert_eq!(s.read().return_data(1).unwrap(), None);
    assert!(!s.read().artifact_content_used("dd").unwrap());
}

fn retention_reads_by_index_and_deletes_in_two_steps(backend: Backend) {
    let stores = Stores::of(backend);
    let open = || stores.open();
    let mut s = open();
    s.batch(|b| {
        b.insert_run(&finished(1, Some("nightly"), "js", "success", BIG + 30))?;
        b.insert_run(&finished(2, Some("nightly"), "js", "errored", BIG + 10))?;
        b.insert_run(&finished(3, None, "js", "success", BIG + 20))?;
        b.insert_run(&finished(4, None, "other", "cancelled", BIG + 40))?;
        b.insert_run(&run(5, "pending"))?;
        b.upsert_jobset(&JobsetRecord {
            name: "other".into(),
            parallel: 1,
            created_at: 1,
        })
    })
    .unwrap();
    let r = s.read();
    let nums = |c: Vec<PruneCandidate>| c.into_iter().map(|c| c.number).collect::<Vec<_>>();
    assert_eq!(
        nums(r.finished_before(BIG + 35, (0, 0), 10).unwrap()),
        vec![2, 3, 1]
    );
    assert_eq!(
        nums(r.finished_before(BIG + 35, (BIG + 10, 2), 1).unwrap()),
        vec![3]
    );
    assert_eq!(
        nums(r.finished_of_job("nightly", 0, 10).unwrap()),
        vec![2, 1]
    );
    assert_eq!(nums(r.finished_of_job("nightly", 1, 10).unwrap()), vec![1]);
    let adhoc = r.finished_adhoc_of_jobset("js", 0, 10).unwrap();
    assert_eq!(adhoc.len(), 1);
    assert_eq!((adhoc[0].number, adhoc[0].job.as_deref()), (3, None));
    assert_eq!(
        r.last_finished_of_job("nightly").unwrap(),
        Some(("id-2".to_string(), None))
    );
    assert_eq!(
        r.last_of_job("nightly", 2, true).unwrap(),
        Some(("id-1".to_string(), 1, None))
    );
    assert_eq!(r.last_of_job("nightly", 2, false).unwrap(), None);
    s.batch(|b| b.queue_prune(&[(4, "id-4".into()), (3, "id-3".into())]))
        .unwrap();
    drop(s);
    // A crash between the steps: the queue is still there after a reopen.
    let mut s = open();
    assert_eq!(
        s.read().prune_queue().unwrap(),
        vec![(3, "id-3".to_string()), (4, "id-4".to_string())]
    );
    s.batch(|b| b.delete_runs(&[3, 4])).unwrap();
    let r = s.read();
    assert!(r.prune_queue().unwrap().is_empty());
    assert_eq!(r.run_by_number(4).unwrap(), None);
    assert_eq!(r.jobset("other").unwrap(), None, "a jobset left empty goes");
    assert_eq!(r.max_number().unwrap(), 5);
}

fn done(number: u64, job: Option<&str>, jobset: &str, finished_at: u64) -> RunRecord {
    let mut r = run(number, "success");
    r.spec.after.clear();
    r.spec.job = job.map(Into::into);
    r.jobset = jobset.into();
    r.finished_at = finished_at;
    r
}

fn candidates(c: Vec<PruneCandidate>) -> Vec<u64> {
    c.into_iter().map(|c| c.number).collect()
}

fn prune_reads_finished_runs_by_finish_time_and_by_key_newest_first(backend: Backend) {
    let stores = Stores::of(backend);
    let mut s = stores.open();
    s.batch(|b| {
        b.insert_run(&done(1, Some("build"), "js", 300))?;
        b.insert_run(&done(2, None, "js", 100))?;
        b.insert_run(&done(3, Some("build"), "js", 200))?;
        b.insert_run(&done(4, None, "js", 400))?;
        b.insert_run(&done(5, Some("build"), "other", 500))?;
        let mut live = done(6, Some("build"), "js", 0);
        live.state = "running".into();
        b.insert_run(&live)
    })
    .unwrap();
    let r = s.read();
    assert_eq!(
        candidates(r.finished_before(450, (0, 0), 10).unwrap()),
        [2, 3, 1, 4]
    );
    assert_eq!(
        candidates(r.finished_before(450, (200, 3), 10).unwrap()),
        [1, 4]
    );
    assert_eq!(
        candidates(r.finished_before(450, (0, 0), 2).unwrap()),
        [2, 3]
    );
    // Newest first, the running run not counted.
    assert_eq!(
        candidates(r.finished_of_job("build", 0, 10).unwrap()),
        [5, 3, 1]
    );
    assert_eq!(
        candidates(r.finished_of_job("build", 1, 10).unwrap()),
        [3, 1]
    );
    assert_eq!(
        candidates(r.finished_adhoc_of_jobset("js", 0, 10).unwrap()),
        [4, 2]
    );
}

fn deleting_pruned_runs_takes_attempts_queue_rows_and_emptied_jobsets(backend: Backend) {
    let stores = Stores::of(backend);
    let mut s = stores.open();
    s.batch(|b| {
        for js in ["a", "b"] {
            b.upsert_jobset(&JobsetRecord {
                name: js.into(),
                parallel: 0,
                created_at: 0,
            })?;
        }
        b.insert_run(&done(1, None, "a", 1))?;
        b.insert_run(&done(2, None, "b", 1))?;
        b.insert_run(&done(3, None, "b", 1))?;
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

on_both_stores!(
    runs_survive_a_reopen_with_every_field,
    an_update_writes_every_mutable_field,
    a_failed_batch_writes_nothing_and_the_next_one_works,
    pages_of_runs_filter_by_jobset_and_state,
    attempts_and_cancels_are_upserted_once,
    jobsets_groups_and_config_are_set_and_unset,
    the_outbox_keeps_order_and_outcomes,
    the_audit_trail_links_runs_and_prunes_only_what_names_none,
    artifacts_and_return_data_replace_and_go_with_their_run,
    retention_reads_by_index_and_deletes_in_two_steps,
    prune_reads_finished_runs_by_finish_time_and_by_key_newest_first,
    deleting_pruned_runs_takes_attempts_queue_rows_and_emptied_jobsets,
);

#[test]
fn a_postgres_schema_newer_than_the_binary_is_refused_naming_both_versions() {
    let Some(url) = rota_tests::pg::database() else {
        return;
    };
    let at = StoreLocation::Postgres(url.clone());
    drop(Store::open_at(&at).unwrap());
    rota_tests::pg::execute(&url, "UPDATE rota_schema SET version = 99");
    let err = Store::open_at(&at).unwrap_err().to_string();
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("newer rota-coordinator"), "{err}");
}

#[test]
fn coordinators_starting_together_on_one_database_migrate_it_once() {
    let Some(url) = rota_tests::pg::database() else {
        return;
    };
    let at = StoreLocation::Postgres(url);
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let at = at.clone();
            std::thread::spawn(move || Store::open_at(&at).map(drop))
        })
        .collect();
    for t in opened {
        t.join().unwrap().unwrap();
    }
    let mut s = Store::open_at(&at).unwrap();
    s.batch(|b| b.insert_run(&run(1, "pending"))).unwrap();
}

#[test]
fn a_bad_or_unreachable_postgres_url_is_a_clear_error_without_the_password() {
    let err = Store::open_at(&StoreLocation::Postgres(
        "postgres://rota:pw@/x?bogus=1".into(),
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a PostgreSQL URL"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Store::open_at(&StoreLocation::Postgres(format!(
        "postgres://rota:pw@127.0.0.1:{port}/rota?connect_timeout=5"
    )))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!(
            "store at postgres://rota@127.0.0.1:{port}/rota: cannot connect"
        )),
        "{err}"
    );
    assert!(!err.contains("pw"), "{err}");
}

#[test]
fn a_store_whose_lease_another_coordinator_took_commits_nothing() {
    let Some(url) = rota_tests::pg::database() else {
        return;
    };
    let at = StoreLocation::Postgres(url.clone());
    let mut s = Store::open_at(&at).unwrap();
    s.batch(|b| b.insert_run(&run(1, "pending"))).unwrap();
    // Another coordinator takes the lease over (as after this one's pause outlasted it).
    rota_tests::pg::execute(
        &url,
        "UPDATE rota_lease SET holder = 'other', epoch = epoch + 1",
    );
    let err = s
        .batch(|b| b.insert_run(&run(2, "pending")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("another coordinator is active"), "{err}");
    assert_eq!(s.read().max_number().unwrap(), 1, "nothing of the batch");
    drop(s);
    // The other coordinator holds the session lock too, as a live active does.
    let mut other = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    other
        .execute(
            "SELECT pg_advisory_lock($1)",
            &[&rota_coordinator::store::lease::LOCK_KEY],
        )
        .unwrap();
    // A coordinator that is not the holder waits as a standby while the lease is held ...
    let (tx, rx) = std::sync::mpsc::channel();
    let waiting = at.clone();
    std::thread::spawn(move || tx.send(Store::open_at(&waiting).map(drop)));
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(1)).is_err(),
        "a standby opens nothing while the lease is held"
    );
    // ... and takes over once it lapses (the other one paused: its session lives on).
    rota_tests::pg::execute(&url, "UPDATE rota_lease SET expires_at = 0");
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the standby took over")
        .unwrap();
    drop(other);
}

#[test]
fn a_standby_takes_over_at_once_when_the_active_is_gone_before_its_lease_lapses() {
    let Some(url) = rota_tests::pg::database() else {
        return;
    };
    let at = StoreLocation::Postgres(url.clone());
    drop(Store::open_at(&at).unwrap());
    // A lease far from lapsing, by a holder with no session left (killed).
    rota_tests::pg::execute(
        &url,
        "UPDATE rota_lease SET holder = 'killed', expires_at = expires_at + 600000",
    );
    let started = std::time::Instant::now();
    let mut s = Store::open_at(&at).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    s.batch(|b| b.insert_run(&run(1, "pending"))).unwrap();
}

#[test]
fn a_holder_paused_inside_a_transaction_is_ended_once_its_lease_lapses_and_cannot_commit() {
    let Some(url) = rota_tests::pg::database() else {
        return;
    };
    let at = StoreLocation::Postgres(url.clone());
    drop(Store::open_at(&at).unwrap());
    // The paused holder, by its sessions' name: it holds the session lock and is inside a
    // write transaction that read the fence (`FOR SHARE` on the lease row), as an active
    // coordinator stopped mid-batch is.
    use rota_coordinator::store::lease::{session_name, Lease, LOCK_KEY};
    let mut config: ::postgres::Config = url.parse().unwrap();
    config.application_name(&session_name("paused"));
    let mut paused = config.connect(::postgres::NoTls).unwrap();
    paused
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .unwrap();
    rota_tests::pg::execute(
        &url,
        "UPDATE rota_lease SET holder = 'paused', epoch = epoch + 1, \
         expires_at = (extract(epoch from clock_timestamp()) * 1000)::bigint + 2000",
    );
    let mut tx = paused.transaction().unwrap();
    tx.query_one(Lease::FENCE, &[]).unwrap();
    // While its lease holds, a standby waits ...
    let (done_tx, done) = std::sync::mpsc::channel();
    let waiting = at.clone();
    std::thread::spawn(move || done_tx.send(Store::open_at(&waiting).map(drop)));
    assert!(
        done.recv_timeout(std::time::Duration::from_secs(1))
            .is_err(),
        "a standby opens nothing while the lease is held"
    );
    // ... and once it lapses (2 s after it was taken; a write to the row would wait on the
    // paused transaction), ends the paused holder's sessions instead of waiting on the row
    // its transaction holds, which it would until the holder woke.
    done.recv_timeout(std::time::Duration::from_secs(6))
        .expect("the standby took over")
        .unwrap();
    let mut other = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    // The woken holder's transaction is gone: nothing it does commits.
    let woken = tx
        .execute("UPDATE rota_lease SET holder = 'paused'", &[])
        .and_then(|_| tx.commit());
    assert!(woken.is_err(), "the paused holder's transaction was ended");
    let holder: String = other
        .query_one("SELECT holder FROM rota_lease", &[])
        .unwrap()
        .get(0);
    assert_ne!(holder, "paused");
}
