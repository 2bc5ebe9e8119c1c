//! Real binaries, agent sessions and leases: a name held by a live session is not taken over,
//! a coordinator that was itself paused does not blame its agents for its own silence, and a
//! run with `on_disconnect: stop` never overlaps its replacement across a partition.

use std::path::Path;
use std::time::Duration;

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
