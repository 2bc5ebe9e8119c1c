//! Real binaries, agent sessions and leases: a name held by a live session is not taken over,
//! a coordinator that was itself paused does not blame its agents for its own silence, and a
//! run with `on_disconnect: stop` never overlaps its replacement across a partition.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use rota_tests::bins;
use rota_tests::procs::{until, System, FAST};

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
