//! Unit tests of the scheduler core: each test is one scheduling rule (docs/architecture.md).

use std::sync::Arc;

use super::*;

fn info(number: RunNo) -> RunInfo {
    RunInfo {
        number,
        jobset: Arc::from("js"),
        groups: vec![],
        priority: 0,
        after: vec![],
        exclusive_job: None,
        retries: 0,
        stop_on_disconnect: None,
        same_agent_as: None,
    }
}

fn with(number: RunNo, f: impl FnOnce(&mut RunInfo)) -> RunInfo {
    let mut i = info(number);
    f(&mut i);
    i
}

fn groups(names: &[&str]) -> Vec<Arc<str>> {
    names.iter().map(|n| Arc::from(*n)).collect()
}

fn pending() -> Initial {
    Initial::Pending { not_before: None }
}

fn assigned(d: &[Decision]) -> Vec<RunNo> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Assign { run, .. } => Some(*run),
            _ => None,
        })
        .collect()
}

fn finishes(d: &[Decision]) -> Vec<(RunNo, Final)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Finish { run, state, .. } => Some((*run, *state)),
            _ => None,
        })
        .collect()
}

fn sched() -> Scheduler {
    Scheduler::new(SchedConfig::default())
}

#[test]
fn higher_priority_first_then_lowest_number() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.add(with(2, |i| i.priority = 10), 1, pending(), 0)
        .unwrap();
    s.add(with(3, |i| i.priority = 10), 1, pending(), 0)
        .unwrap();
    s.add(with(4, |i| i.priority = -10), 1, pending(), 0)
        .unwrap();
    s.add(info(5), 1, pending(), 0).unwrap();
    s.agent_connected(1, 1, vec![]);
    let mut order = vec![];
    for _ in 0..5 {
        s.dispatch();
        let a = assigned(&s.take_decisions());
        assert_eq!(a.len(), 1, "one slot: one start per finish");
        order.push(a[0]);
        s.finished(a[0], 1, Outcome::Success, 0).unwrap();
    }
    assert_eq!(order, vec![2, 3, 1, 5, 4]);
}

#[test]
fn agent_slots_hold() {
    let mut s = sched();
    for n in 1..=10 {
        s.add(info(n), 1, pending(), 0).unwrap();
    }
    s.agent_connected(1, 3, vec![]);
    s.agent_connected(2, 2, vec![]);
    assert_eq!(s.dispatch(), 5);
    assert_eq!(s.agent(1).unwrap().running.len(), 3);
    assert_eq!(s.agent(2).unwrap().running.len(), 2);
    assert_eq!(s.dispatch(), 0);
}

#[test]
fn jobset_parallel_limit_holds_and_other_jobsets_are_not_blocked() {
    let mut s = sched();
    s.set_parallel("js", 2);
    for n in 1..=5 {
        s.add(info(n), 1, pending(), 0).unwrap();
    }
    s.add(with(6, |i| i.jobset = Arc::from("other")), 1, pending(), 0)
        .unwrap();
    s.agent_connected(1, 10, vec![]);
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![1, 2, 6]);
    assert_eq!(s.jobset_running("js"), 2);
    assert_eq!(s.waiting_reason(3).unwrap(), "jobset limit 2/2");
}

#[test]
fn raising_parallel_starts_more_at_once_and_lowering_kills_nothing() {
    let mut s = sched();
    s.set_parallel("js", 1);
    for n in 1..=6 {
        s.add(info(n), 1, pending(), 0).unwrap();
    }
    s.agent_connected(1, 10, vec![]);
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![1]);
    s.set_parallel("js", 4);
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![2, 3, 4]);
    s.set_parallel("js", 1);
    s.dispatch();
    let d = s.take_decisions();
    assert!(d.is_empty(), "lowering emits no kill and no start: {d:?}");
    assert_eq!(s.jobset_running("js"), 4);
    for run in [1, 2, 3] {
        s.finished(run, 1, Outcome::Success, 0).unwrap();
        s.dispatch();
        assert!(
            assigned(&s.take_decisions()).is_empty(),
            "still above the lowered limit"
        );
    }
    s.finished(4, 1, Outcome::Success, 0).unwrap();
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![5]);
}

#[test]
fn dependencies_wait_and_failed_dependency_skips_transitively() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.add(with(2, |i| i.after = vec![1]), 1, pending(), 0)
        .unwrap();
    s.add(with(3, |i| i.after = vec![2]), 1, pending(), 0)
        .unwrap();
    s.add(with(4, |i| i.after = vec![1]), 1, pending(), 0)
        .unwrap();
    s.agent_connected(1, 4, vec![]);
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![1]);
    assert_eq!(s.waiting_reason(2).unwrap(), "waiting for run 1");
    s.finished(1, 1, Outcome::Success, 0).unwrap();
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![2, 4]);
    s.finished(2, 1, Outcome::Failed, 0).unwrap();
    let d = s.take_decisions();
    assert_eq!(finishes(&d), vec![(2, Final::Errored), (3, Final::Skipped)]);
}

#[test]
fn retry_brings_back_skipped_dependents_and_counts_attempts() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.add(with(2, |i| i.after = vec![1]), 1, pending(), 0)
        .unwrap();
    s.add(with(3, |i| i.after = vec![2]), 1, pending(), 0)
        .unwrap();
    s.agent_connected(1, 4, vec![]);
    s.dispatch();
    s.finished(1, 1, Outcome::Failed, 0).unwrap();
    assert_eq!(
        finishes(&s.take_decisions()),
        vec![
            (1, Final::Errored),
            (2, Final::Skipped),
            (3, Final::Skipped)
        ]
    );
    assert_eq!(s.retry(1, 0).unwrap(), 2);
    let d = s.take_decisions();
    assert!(d.contains(&Decision::Reopen { run: 1, attempt: 2 }));
    assert!(d.contains(&Decision::Reopen { run: 2, attempt: 1 }));
    assert!(d.contains(&Decision::Reopen { run: 3, attempt: 1 }));
    s.dispatch();
    assert_eq!(
        s.take_decisions(),
        vec![Decision::Assign {
            run: 1,
            attempt: 2,
            agent: 1,
            group: None
        }]
    );
    assert!(
        s.finished(1, 1, Outcome::Success, 0).is_err(),
        "old attempt is fenced"
    );
    s.finished(1, 2, Outcome::Success, 0).unwrap();
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![2]);
}

#[test]
fn retire_only_errored_runs() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    assert!(matches!(s.retire(1), Err(SchedError::WrongState { .. })));
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    s.finished(1, 1, Outcome::Failed, 0).unwrap();
    s.take_decisions();
    s.retire(1).unwrap();
    assert_eq!(finishes(&s.take_decisions()), vec![(1, Final::Retired)]);
    assert!(s.retry(1, 0).is_err(), "a retired run stays retired");
}

#[test]
fn retries_requeue_with_exponential_backoff() {
    let mut s = sched();
    s.add(with(1, |i| i.retries = 2), 1, pending(), 0).unwrap();
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    s.take_decisions();
    s.finished(1, 1, Outcome::Failed, 100).unwrap();
    assert_eq!(
        s.take_decisions(),
        vec![Decision::Requeue {
            run: 1,
            attempt: 2,
            not_before: 1_100,
            reason: String::new()
        }]
    );
    s.dispatch();
    assert!(s.take_decisions().is_empty(), "back-off holds the retry");
    assert_eq!(s.next_deadline(), Some(1_100));
    s.tick(1_100);
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![1]);
    s.finished(1, 2, Outcome::Failed, 2_000).unwrap();
    assert!(matches!(
        s.take_decisions()[0],
        Decision::Requeue {
            attempt: 3,
            not_before: 4_000,
            ..
        }
    ));
    s.tick(4_000);
    s.dispatch();
    s.take_decisions();
    s.finished(1, 3, Outcome::Failed, 5_000).unwrap();
    assert_eq!(finishes(&s.take_decisions()), vec![(1, Final::Errored)]);
}

#[test]
fn groups_limit_runs_and_least_loaded_group_wins() {
    let mut s = sched();
    s.set_group_max("host-a_group", Some(2));
    s.set_group_max("host-b_group", Some(1));
    for n in 1..=5 {
        s.add(
            with(n, |i| i.groups = groups(&["host-a_group", "host-b_group"])),
            1,
            pending(),
            0,
        )
        .unwrap();
    }
    s.agent_connected(1, 10, groups(&["host-a_group"]));
    s.agent_connected(2, 10, groups(&["host-b_group"]));
    s.dispatch();
    let d = s.take_decisions();
    let picked: Vec<_> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Assign { group, agent, .. } => {
                Some((group.clone().unwrap().to_string(), *agent))
            }
            _ => None,
        })
        .collect();
    // a: 0/2, b: 0/1 tie on load → name; then a 1/2 vs b 0/1 → b; then a 1/2 → a.
    assert_eq!(
        picked,
        vec![
            ("host-a_group".into(), 1),
            ("host-b_group".into(), 2),
            ("host-a_group".into(), 1)
        ]
    );
    assert_eq!(
        s.waiting_reason(4).unwrap(),
        "host-a_group 2/2 and host-b_group 1/1 are full"
    );
}

#[test]
fn undefined_group_has_max_one_and_unserved_group_says_so() {
    let mut s = sched();
    s.add(with(1, |i| i.groups = groups(&["g"])), 1, pending(), 0)
        .unwrap();
    s.add(with(2, |i| i.groups = groups(&["g"])), 1, pending(), 0)
        .unwrap();
    s.add(
        with(3, |i| i.groups = groups(&["host-c_group"])),
        1,
        pending(),
        0,
    )
    .unwrap();
    s.agent_connected(1, 10, groups(&["g"]));
    assert_eq!(s.dispatch(), 1);
    assert_eq!(s.waiting_reason(2).unwrap(), "g 1/1 is full");
    assert_eq!(
        s.waiting_reason(3).unwrap(),
        "no connected agent serves host-c_group"
    );
    s.set_group_max("g", Some(2));
    assert_eq!(s.dispatch(), 1);
}

#[test]
fn a_blocked_run_does_not_block_runs_needing_other_resources() {
    let mut s = sched();
    s.add(
        with(1, |i| {
            i.groups = groups(&["nobody"]);
            i.priority = 10
        }),
        1,
        pending(),
        0,
    )
    .unwrap();
    s.add(info(2), 1, pending(), 0).unwrap();
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![2]);
}

#[test]
fn exclusive_job_runs_one_at_a_time() {
    let mut s = sched();
    for n in 1..=3 {
        s.add(
            with(n, |i| i.exclusive_job = Some(Arc::from("nightly"))),
            1,
            pending(),
            0,
        )
        .unwrap();
    }
    s.agent_connected(1, 10, vec![]);
    assert_eq!(s.dispatch(), 1);
    assert!(s.waiting_reason(2).unwrap().contains("already running"));
    s.finished(1, 1, Outcome::Success, 0).unwrap();
    assert_eq!(s.dispatch(), 1);
}

#[test]
fn cancel_pending_ends_it_and_cancel_running_asks_the_agent() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.add(info(2), 1, pending(), 0).unwrap();
    s.agent_connected(7, 1, vec![]);
    s.dispatch();
    s.take_decisions();
    s.cancel(2).unwrap();
    assert_eq!(finishes(&s.take_decisions()), vec![(2, Final::Cancelled)]);
    s.cancel(1).unwrap();
    assert_eq!(
        s.take_decisions(),
        vec![Decision::Kill {
            run: 1,
            attempt: 1,
            agent: 7
        }]
    );
    // A killed process exits non-zero: recorded as cancelled, never retried.
    s.finished(1, 1, Outcome::Failed, 0).unwrap();
    assert_eq!(finishes(&s.take_decisions()), vec![(1, Final::Cancelled)]);
}

#[test]
fn disconnected_agent_can_claim_its_runs_back_within_the_lease() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    s.take_decisions();
    s.agent_disconnected(1, 1_000);
    assert_eq!(
        s.jobset_running("js"),
        1,
        "the run keeps its place while its agent is away"
    );
    s.agent_connected(2, 1, vec![]);
    assert!(s.claim(2, 1, 1));
    s.tick(100_000);
    assert!(s.take_decisions().is_empty(), "claimed runs are not lost");
    s.finished(1, 1, Outcome::Success, 0).unwrap();
}

#[test]
fn orphan_past_its_lease_is_retried_or_errored_as_agent_lost() {
    let mut s = sched();
    s.add(with(1, |i| i.retries = 1), 1, pending(), 0).unwrap();
    s.add(info(2), 1, pending(), 0).unwrap();
    s.agent_connected(1, 2, vec![]);
    s.dispatch();
    s.take_decisions();
    s.agent_disconnected(1, 0);
    s.tick(15_000);
    let d = s.take_decisions();
    assert!(
        matches!(&d[0], Decision::Requeue { run: 1, attempt: 2, reason, .. } if reason == "agent lost")
    );
    assert!(
        matches!(&d[1], Decision::Finish { run: 2, state: Final::Errored, reason } if reason == "agent lost")
    );
    assert!(!s.claim(3, 1, 1), "a superseded attempt cannot be claimed");
}

#[test]
fn a_coordinator_stall_extends_orphan_leases_by_its_length() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    s.take_decisions();
    s.agent_disconnected(1, 1_000);
    // The coordinator did not run from 2 s to 27 s: its lease (until 16 s) is extended by 25 s.
    s.extend_leases(25_000);
    assert_eq!(s.next_deadline(), Some(41_000));
    s.tick(27_000);
    assert!(s.take_decisions().is_empty(), "not lost on waking");
    s.agent_connected(2, 1, vec![]);
    assert!(
        s.claim(2, 1, 1),
        "the agent claims its run back after the stall"
    );
}

#[test]
fn after_an_extended_lease_the_orphan_is_still_lost() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    s.take_decisions();
    s.agent_disconnected(1, 0);
    s.extend_leases(5_000);
    s.tick(19_999);
    assert!(s.take_decisions().is_empty());
    s.tick(20_000);
    assert_eq!(finishes(&s.take_decisions()), [(1, Final::Errored)]);
}

#[test]
fn a_stop_on_disconnect_run_of_a_lost_agent_keeps_its_place_for_a_lease_plus_its_grace() {
    let mut s = sched();
    let stop = |i: &mut RunInfo| {
        i.stop_on_disconnect = Some(5_000);
        i.retries = 1;
    };
    s.add(with(1, stop), 1, pending(), 0).unwrap();
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    s.take_decisions();
    s.agent_lost(1, 1_000);
    s.agent_connected(2, 1, vec![]);
    s.dispatch();
    assert!(s.take_decisions().is_empty(), "no replacement yet");
    assert_eq!(s.jobset_running("js"), 1, "the run keeps its place");
    assert!(!s.claim(2, 1, 1), "a fenced run cannot be claimed back");
    s.tick(20_999);
    assert!(s.take_decisions().is_empty());
    s.tick(21_000);
    let d = s.take_decisions();
    assert!(
        matches!(&d[..], [Decision::Requeue { run: 1, attempt: 2, reason, .. }] if reason == "agent lost"),
        "{d:?}"
    );
}

#[test]
fn a_stop_on_disconnect_orphan_is_fenced_when_its_reconnect_lease_runs_out() {
    let mut s = sched();
    s.add(
        with(1, |i| i.stop_on_disconnect = Some(2_000)),
        1,
        pending(),
        0,
    )
    .unwrap();
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    s.take_decisions();
    s.agent_disconnected(1, 0);
    s.tick(15_000);
    assert!(s.take_decisions().is_empty(), "fenced, not lost");
    s.agent_connected(2, 1, vec![]);
    assert!(!s.claim(2, 1, 1), "too late to claim it back");
    s.tick(32_000);
    assert_eq!(finishes(&s.take_decisions()), [(1, Final::Errored)]);
}

#[test]
fn restored_active_run_waits_for_its_agent() {
    let mut s = sched();
    s.add(
        info(1),
        3,
        Initial::Active {
            group: None,
            cancel_requested: false,
        },
        0,
    )
    .unwrap();
    assert_eq!(
        s.waiting_reason(1).unwrap(),
        "waiting for its agent to reconnect"
    );
    s.agent_connected(5, 1, vec![]);
    assert!(!s.claim(5, 1, 2), "wrong attempt");
    assert!(s.claim(5, 1, 3));
    assert_eq!(s.agent(5).unwrap().running.len(), 1);
}

#[test]
fn draining_agent_gets_no_new_runs() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.agent_connected(1, 4, vec![]);
    s.drain(1);
    assert_eq!(s.dispatch(), 0);
}

#[test]
fn unknown_dependency_is_refused() {
    let mut s = sched();
    assert_eq!(
        s.add(with(2, |i| i.after = vec![1]), 1, pending(), 0),
        Err(SchedError::UnknownRun(1))
    );
}

#[test]
fn a_run_its_agent_stopped_while_draining_goes_back_to_the_queue() {
    let mut s = sched();
    s.add(info(1), 1, pending(), 0).unwrap();
    s.agent_connected(1, 1, vec![]);
    s.dispatch();
    s.take_decisions();
    s.drain(1);
    s.agent_connected(2, 1, vec![]);
    s.finished(1, 1, Outcome::Cancelled, 50).unwrap();
    s.dispatch();
    let d = s.take_decisions();
    assert!(
        matches!(
            &d[0],
            Decision::Requeue {
                run: 1,
                attempt: 2,
                ..
            }
        ),
        "{d:?}"
    );
    assert_eq!(
        d[1],
        Decision::Assign {
            run: 1,
            attempt: 2,
            agent: 2,
            group: None
        }
    );
}

#[test]
fn only_finished_runs_without_unfinished_dependents_are_forgotten() {
    let mut s = sched();
    s.add(info(1), 1, Initial::Done(Final::Success), 0).unwrap();
    s.add(with(2, |i| i.after = vec![1]), 1, pending(), 0)
        .unwrap();
    assert!(!s.forget(2), "an unfinished run stays");
    assert!(!s.forget(1), "a run something still waits on stays");
    s.cancel(2).unwrap();
    assert!(s.forget(2));
    assert!(s.forget(1), "its last unfinished dependent ended");
    assert_eq!(s.attempt(1), None);
    assert!(!s.forget(1), "unknown runs are not forgotten twice");
}

/// `waiting_counts` as a map, zero classes left out.
fn waiting(s: &Scheduler) -> std::collections::BTreeMap<&'static str, u64> {
    s.waiting_counts()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[test]
fn waiting_runs_are_counted_by_the_class_of_their_reason() {
    let mut s = sched();
    s.add(with(1, |i| i.groups = groups(&["g"])), 1, pending(), 0)
        .unwrap();
    s.add(with(2, |i| i.groups = groups(&["g"])), 1, pending(), 0)
        .unwrap();
    s.add(with(3, |i| i.groups = groups(&["host-c"])), 1, pending(), 0)
        .unwrap();
    s.add(with(4, |i| i.after = vec![1]), 1, pending(), 0)
        .unwrap();
    s.add(info(5), 1, pending(), 0).unwrap();
    assert_eq!(
        waiting(&s),
        [("dependencies", 1), ("group_unserved", 3), ("no_agent", 1)].into()
    );

    s.agent_connected(1, 1, groups(&["g"]));
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), vec![1]);
    assert_eq!(
        waiting(&s),
        [
            ("dependencies", 1),
            ("group_full", 1),
            ("group_unserved", 1),
            ("slots_busy", 1)
        ]
        .into()
    );
    // Every class is reported, each as waiting_reason words it.
    assert_eq!(s.waiting_counts().len(), WAITING_CLASSES.len());
    assert_eq!(
        s.waiting_reason(5).unwrap(),
        "all agent slots are busy (1/1)"
    );

    s.agent_disconnected(1, 0);
    assert_eq!(
        waiting(&s),
        [
            ("agent_reconnect", 1),
            ("dependencies", 1),
            ("group_full", 1),
            ("group_unserved", 1),
            ("no_agent", 1)
        ]
        .into()
    );
    assert_eq!(s.orphan_leases_expired(), 0);
    s.tick(SchedConfig::default().orphan_lease_ms);
    assert_eq!(s.orphan_leases_expired(), 1);
    // Run 1 was lost without retries: its dependent is skipped, g is free.
    assert_eq!(waiting(&s), [("group_unserved", 2), ("no_agent", 1)].into());
    assert_eq!(s.group_limits(), vec![(Arc::from("g"), 0, 1)]);
}

// ----- same_agent_as ------------------------------------------------------------------------

/// (run, agent) of every Assign.
fn starts(d: &[Decision]) -> Vec<(RunNo, AgentId)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Assign { run, agent, .. } => Some((*run, *agent)),
            _ => None,
        })
        .collect()
}

/// Agents "a" (id 1) and "b" (id 2), one slot each, both serving group g; run 1 (the dump)
/// started and succeeded on "a"; run 2 is `same_agent_as: 1`.
fn pinned_setup() -> Scheduler {
    let mut s = sched();
    s.agent_connected(1, 1, groups(&["g"]));
    s.name_agent(1, "a");
    s.agent_connected(2, 1, groups(&["g"]));
    s.name_agent(2, "b");
    s.set_group_max("g", Some(10));
    s.add(with(1, |i| i.groups = groups(&["g"])), 1, pending(), 0)
        .unwrap();
    s.dispatch();
    let d = s.take_decisions();
    assert!(
        matches!(
            d[..],
            [Decision::Assign {
                run: 1,
                agent: 1,
                ..
            }]
        ),
        "{d:?}"
    );
    s.add(
        with(2, |i| {
            i.groups = groups(&["g"]);
            i.after = vec![1];
            i.same_agent_as = Some(1);
        }),
        1,
        pending(),
        0,
    )
    .unwrap();
    s
}

#[test]
fn a_pinned_run_starts_on_the_agent_that_ran_its_target_even_when_another_is_freer() {
    let mut s = pinned_setup();
    // Another run takes a's slot the moment the dump ends; b is free, yet run 2 waits for a.
    s.add(with(3, |i| i.groups = groups(&["g"])), 1, pending(), 0)
        .unwrap();
    s.finished(1, 1, Outcome::Success, 10).unwrap();
    s.dispatch();
    // Run 2 (pinned, dispatched first) takes a; run 3 goes to b.
    assert_eq!(starts(&s.take_decisions()), [(2, 1), (3, 2)]);
}

#[test]
fn a_pinned_run_waits_with_a_reason_while_its_agent_is_busy() {
    let mut s = pinned_setup();
    s.finished(1, 1, Outcome::Success, 10).unwrap();
    // Run 4 fills a before the dispatch (a one-slot agent), so run 2 must wait, b idle.
    s.add(with(4, |i| i.groups = groups(&["g"])), 1, pending(), 10)
        .unwrap();
    s.start(4, 1, Some(Arc::from("g")));
    s.take_decisions();
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), Vec::<RunNo>::new());
    assert_eq!(
        s.waiting_reason(2).unwrap(),
        "same_agent_as: agent a (it ran run 1) has no free slot"
    );
    s.finished(4, 1, Outcome::Success, 20).unwrap();
    s.dispatch();
    assert!(starts(&s.take_decisions()).contains(&(2, 1)));
}

#[test]
fn a_pinned_run_fails_naming_the_agent_when_it_is_lost() {
    let mut s = pinned_setup();
    s.finished(1, 1, Outcome::Success, 10).unwrap();
    s.agent_disconnected(1, 10);
    s.take_decisions();
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), Vec::<RunNo>::new());
    assert_eq!(
        s.waiting_reason(2).unwrap(),
        "same_agent_as: waiting for agent a (it ran run 1) to reconnect"
    );
    // Away past the orphan lease: failed, not retried elsewhere.
    assert_eq!(
        s.next_deadline(),
        Some(10 + SchedConfig::default().orphan_lease_ms)
    );
    s.tick(10 + SchedConfig::default().orphan_lease_ms);
    let d = s.take_decisions();
    assert!(
        d.iter().any(|d| matches!(d, Decision::Finish { run: 2, state: Final::Errored, reason } if reason == "same_agent_as: agent a, which ran run 1, is gone")),
        "{d:?}"
    );
}

#[test]
fn a_pinned_run_whose_agent_reconnects_in_time_starts_on_its_new_session() {
    let mut s = pinned_setup();
    s.finished(1, 1, Outcome::Success, 10).unwrap();
    s.agent_disconnected(1, 10);
    s.agent_connected(7, 1, groups(&["g"]));
    s.name_agent(7, "a");
    assert_eq!(s.next_deadline(), None);
    s.take_decisions();
    s.dispatch();
    assert!(starts(&s.take_decisions()).contains(&(2, 7)));
}

#[test]
fn a_lost_agent_fails_its_pinned_runs_at_once() {
    let mut s = pinned_setup();
    s.finished(1, 1, Outcome::Success, 10).unwrap();
    s.agent_connected(3, 1, vec![]);
    s.take_decisions();
    s.add(with(5, |i| i.groups = groups(&["g"])), 1, pending(), 10)
        .unwrap();
    s.start(5, 1, Some(Arc::from("g")));
    s.agent_lost(1, 20);
    let d = s.take_decisions();
    assert!(finishes(&d).contains(&(2, Final::Errored)), "{d:?}");
}

#[test]
fn a_pinned_run_restored_after_a_restart_uses_the_recorded_agent() {
    let mut s = sched();
    s.add(info(1), 1, Initial::Done(Final::Success), 0).unwrap();
    s.set_ran_on(1, "b");
    s.add(
        with(2, |i| {
            i.after = vec![1];
            i.same_agent_as = Some(1);
        }),
        1,
        pending(),
        0,
    )
    .unwrap();
    s.agent_connected(1, 4, vec![]);
    s.name_agent(1, "a");
    s.dispatch();
    assert_eq!(assigned(&s.take_decisions()), Vec::<RunNo>::new());
    s.agent_connected(2, 4, vec![]);
    s.name_agent(2, "b");
    s.dispatch();
    assert!(starts(&s.take_decisions()).contains(&(2, 2)));
}
