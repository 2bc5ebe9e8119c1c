//! Real binaries, agent sessions and leases: a name held by a live session is not taken over,
//! a coordinator that was itself paused does not blame its agents for its own silence, and a
//! run with `on_disconnect: stop` never overlaps its replacement across a partition.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use rota_tests::bins;
use rota_tests::procs::{group_members, read_pid, until, System, FAST};
use rota_tests::proxy::Proxy;

const DEADLINE: Duration = Duration::from_secs(30);

/// A shell command that appends a line to `markers` when it starts, then waits for `release`
/// to exist and succeeds: each line in `markers` is one start of the run.
fn marked_until_released(markers: &Path, release: &Path) -> String {
    format!(
        "echo started >> {markers}; while [ ! -e {release} ]; do sleep 0.05; done; echo done",
        markers = markers.display(),
        release = release.display(),
    )
}

fn starts(markers: &Path) -> usize {
    std::fs::read_to_string(markers)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_second_agent_with_a_taken_name_is_refused_and_the_first_keeps_its_run() {
    let mut sys = System::start_with(bins!(), FAST);
    sys.start_agent_process("first", &sys.url.clone(), "a", 1, &[]);
    sys.wait_agents(&["a"]);
    let first_session = sys.agents()[0]["session_id"].clone();
    let (markers, release) = (sys.path("starts"), sys.path("release"));
    let run = sys.submit(&[
        "--retries",
        "2",
        "--shell",
        "--",
        &marked_until_released(&markers, &release),
    ]);
    let n = run["number"].to_string();
    sys.wait_run(&n, DEADLINE, "running on a", |v| v["state"] == "running");
    until(DEADLINE, "the run to start", || {
        (starts(&markers) == 1).then_some(())
    });

    sys.start_agent_process("second", &sys.url.clone(), "a", 1, &[]);

    until(DEADLINE, "the second agent to be refused, twice", || {
        let log = sys.agent_log("second");
        (log.matches("is taken by live session").count() >= 2).then_some(())
    });
    let log = sys.agent_log("second");
    assert!(
        log.contains(first_session.as_str().unwrap()),
        "the refusal names the holding session: {log}"
    );
    // Longer than two leases: had the first session been replaced, its run would have been
    // declared lost and started again by now.
    std::thread::sleep(Duration::from_secs(5));
    let agents = sys.agents();
    assert_eq!(agents.len(), 1, "one agent named a: {agents:?}");
    assert_eq!(agents[0]["state"], "connected");
    assert_eq!(agents[0]["session_id"], first_session);
    assert_eq!(starts(&markers), 1, "the run started once");

    std::fs::write(&release, "").unwrap();
    let run = sys.wait_state(&n, "success", DEADLINE);
    assert_eq!(run["attempts"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(starts(&markers), 1, "the run started once");

    // Once the holder is really gone, the process that kept retrying gets the name.
    sys.agent("first").kill9();
    until(DEADLINE, "the second agent to get the name", || {
        let agents = sys.agents();
        (agents.len() == 1
            && agents[0]["state"] == "connected"
            && agents[0]["session_id"] != first_session)
            .then_some(())
    });
}

/// A 3 s lease, heartbeats twice a second, retries at once.
const SHORT_LEASE: &[&str] = &[
    "--lease",
    "3",
    "--heartbeat",
    "0.5",
    "--retry-backoff",
    "0.1",
];

#[test]
fn a_coordinator_paused_longer_than_the_lease_keeps_its_agents_and_their_runs() {
    let mut sys = System::start_with(bins!(), SHORT_LEASE);
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let (markers, release) = (sys.path("starts"), sys.path("release"));
    let run = sys.submit(&[
        "--retries",
        "2",
        "--shell",
        "--",
        &marked_until_released(&markers, &release),
    ]);
    let n = run["number"].to_string();
    sys.wait_run(&n, DEADLINE, "running on a", |v| v["state"] == "running");
    until(DEADLINE, "the run to start", || {
        (starts(&markers) == 1).then_some(())
    });

    // The stall is the test's input: more than twice the lease.
    sys.coordinator().signal(Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(7));
    sys.coordinator().signal(Signal::SIGCONT);

    sys.wait_agents(&["a"]);
    // Had the coordinator blamed a for its own silence, the run would be lost on waking and
    // started again at once; give that more than a lease to show.
    std::thread::sleep(Duration::from_secs(4));
    let view = sys.show(&n);
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["attempt"], 1, "{view}");
    assert_eq!(starts(&markers), 1, "the run started once");
    let agents = sys.agents();
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(agents[0]["state"], "connected", "{agents:?}");

    std::fs::write(&release, "").unwrap();
    let run = sys.wait_state(&n, "success", DEADLINE);
    assert_eq!(run["attempts"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(starts(&markers), 1, "the run started once");
}

#[test]
fn an_agent_paused_longer_than_the_lease_is_still_lost() {
    let mut sys = System::start_with(bins!(), SHORT_LEASE);
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let release = sys.path("release");
    let script = format!(
        "if [ \"$AGENT_NAME\" = a ]; then while [ ! -e {release} ]; do sleep 0.05; done; fi; \
         echo ran on $AGENT_NAME",
        release = release.display()
    );
    let run = sys.submit(&["--retries", "1", "--shell", "--", &script]);
    let n = run["number"].to_string();
    sys.wait_run(&n, DEADLINE, "running on a", |v| {
        v["state"] == "running" && v["agent"] == "a"
    });
    sys.start_agent("b", 1, &[]);
    sys.wait_agents(&["a", "b"]);

    sys.agent("a").signal(Signal::SIGSTOP);

    let run = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    sys.agent("a").signal(Signal::SIGCONT);
    assert_eq!(run["state"], "success", "{run}");
    let attempts = run["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{run}");
    assert_eq!(attempts[0]["agent"], "a");
    assert_eq!(attempts[0]["error"], "agent lost");
    assert_eq!(attempts[1]["agent"], "b");
    assert_eq!(attempts[1]["state"], "success");
}

/// On agent a: ignores SIGTERM (only the SIGKILL after the kill grace stops it), records its
/// process group in `pgid_file` and runs until killed. Anywhere else: records in `verdict`
/// whether a process of that group is still alive at its start ("overlap" or "alone").
fn partitioned_run(pgid_file: &Path, verdict: &Path) -> String {
    format!(
        "if [ \"$AGENT_NAME\" = a ]; then trap '' TERM; echo $$ > {pgid}; \
           while true; do sleep 0.1; done; fi; \
         pg=$(cat {pgid}); v=alone; \
         for s in /proc/[0-9]*/stat; do read -r l < $s 2>/dev/null || continue; \
           set -- ${{l##*) }}; [ \"$3\" = \"$pg\" ] && [ \"$1\" != Z ] && v=overlap; done; \
         echo $v > {verdict}; echo ran on $AGENT_NAME",
        pgid = pgid_file.display(),
        verdict = verdict.display(),
    )
}

/// A run on agent a (behind a proxy) with this `--on-disconnect`; the proxy black-holes a's
/// traffic; the run ends on b. Returns the run's final view and b's verdict.
fn partition_during_a_run(policy: &str) -> (serde_json::Value, String) {
    let mut sys = System::start_with(bins!(), SHORT_LEASE);
    let proxy = Proxy::start(sys.addr);
    sys.start_agent_at(&proxy.url(), "a", 1, &[]);
    sys.wait_agents(&["a"]);
    let (pgid_file, verdict) = (sys.path("a.pgid"), sys.path("verdict"));
    let run = sys.submit(&[
        "--retries",
        "1",
        "--kill-grace",
        "1s",
        "--on-disconnect",
        policy,
        "--shell",
        "--",
        &partitioned_run(&pgid_file, &verdict),
    ]);
    let n = run["number"].to_string();
    let pgid = until(DEADLINE, "the run to start on a", || read_pid(&pgid_file));
    sys.wait_run(&n, DEADLINE, "running on a", |v| {
        v["state"] == "running" && v["agent"] == "a"
    });
    sys.start_agent("b", 1, &[]);
    sys.wait_agents(&["a", "b"]);

    proxy.freeze(true);

    let run = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    let verdict = std::fs::read_to_string(&verdict).unwrap_or_default();
    if policy == "stop" {
        assert!(group_members(pgid).is_empty(), "a stopped its run");
    }
    (run, verdict.trim().to_string())
}

fn assert_lost_on_a_then_succeeded_on_b(run: &serde_json::Value) {
    assert_eq!(run["state"], "success", "{run}");
    let attempts = run["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{run}");
    assert_eq!(attempts[0]["agent"], "a", "{run}");
    assert_eq!(attempts[0]["error"], "agent lost", "{run}");
    assert_eq!(attempts[1]["agent"], "b", "{run}");
    assert_eq!(attempts[1]["state"], "success", "{run}");
}

#[test]
fn on_disconnect_stop_kills_the_partitioned_attempt_before_its_replacement_starts() {
    let (run, verdict) = partition_during_a_run("stop");
    assert_lost_on_a_then_succeeded_on_b(&run);
    assert_eq!(
        verdict, "alone",
        "the first attempt's process group was dead when the second started"
    );
}

#[test]
fn by_default_a_partitioned_attempt_keeps_running_beside_its_replacement() {
    let (run, verdict) = partition_during_a_run("keep");
    assert_lost_on_a_then_succeeded_on_b(&run);
    assert_eq!(
        verdict, "overlap",
        "today's behaviour: both attempts ran at once"
    );
}
