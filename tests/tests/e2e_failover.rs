//! Several coordinators on one PostgreSQL store, one active (issue 10): real binaries, a real
//! PostgreSQL, `kill -9` and SIGSTOP. A standby waits without listening while the active holds
//! the store's lease, takes over within 10 s of the active's death or pause, and keeps what was
//! accepted; an active that was paused and wakes after the takeover commits nothing and steps
//! down.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rota_tests::bins;
use rota_tests::pg::Backend;
use rota_tests::procs::{until, Cli, System, FAST, STEADY};

const DEADLINE: Duration = Duration::from_secs(60);

/// The longest a standby may take to become active after the active is gone.
const TAKEOVER: Duration = Duration::from_secs(10);

#[test]
fn a_standby_takes_over_within_10_s_of_a_kill_9_and_every_run_succeeds_once() {
    let Some(store) = Backend::postgres() else {
        return;
    };
    let mut sys = System::start_on(bins!(), &store, STEADY);
    sys.start_agent("a", 4, &[]);
    sys.start_agent("b", 4, &[]);
    sys.wait_agents(&["a", "b"]);
    let standby = sys.start_standby("b", &sys.addr.to_string());
    until(
        DEADLINE,
        "the second coordinator to say it stands by",
        || standby.log().contains("standby").then_some(()),
    );
    assert_eq!(
        standby.listening_within(Duration::from_millis(500)),
        None,
        "a standby does not listen"
    );

    const RUNS: u64 = 40;
    let lines: String = (1..=RUNS)
        .map(|n| {
            format!(
                "i=0; while [ $i -lt 20 ]; do echo \"run {n} line $i\"; i=$((i+1)); sleep 0.05; done\n"
            )
        })
        .collect();
    sys.submit_lines("farm", &lines);
    until(
        DEADLINE,
        "some runs to finish under the first coordinator",
        || {
            let done = sys
                .runs_of("farm")
                .values()
                .filter(|r| r["state"] == "success")
                .count();
            (done >= 8).then_some(())
        },
    );

    sys.kill9_coordinator();
    let killed = Instant::now();
    let addr = standby.listening_within(TAKEOVER + Duration::from_secs(1));
    let took = killed.elapsed();
    assert!(
        addr.is_some() && took <= TAKEOVER,
        "the standby took over in {took:?}: {}",
        standby.log()
    );
    sys.adopt(standby);

    let waited = sys.rota(&["wait", "--jobset", "farm"]);
    assert_eq!(waited.status.code(), Some(0), "{waited:?}");
    let runs = sys.runs_of("farm");
    assert_eq!(runs.len() as u64, RUNS, "no run lost, none added");
    for (n, run) in &runs {
        let shown = sys.json(&["show", &n.to_string()]);
        assert_eq!(run["state"], "success", "run {n}: {shown}");
        assert_eq!(
            shown["attempts"].as_array().unwrap().len(),
            1,
            "run {n} ran exactly once: {shown}"
        );
    }
    // Numbers continue from the store after the takeover.
    let next = sys.submit(&["--", "true"]);
    assert_eq!(next["number"], RUNS + 1);
}

#[test]
fn a_paused_active_that_wakes_after_a_takeover_commits_nothing_and_steps_down() {
    let Some(store) = Backend::postgres() else {
        return;
    };
    let mut sys = System::start_on(bins!(), &store, FAST);
    // The standby listens elsewhere (the paused active keeps its port); agent and CLI are
    // given both addresses.
    let b_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let both = format!("{},http://{b_addr}", sys.url);
    sys.start_agent_at(&both, "a", 2, &[]);
    sys.wait_agents(&["a"]);
    let before = sys.submit(&["--jobset", "before", "--", "true"]);
    let waited = sys.rota(&["wait", before["id"].as_str().unwrap()]);
    assert!(waited.status.success(), "{waited:?}");
    let standby = sys.start_standby("b", &b_addr.to_string());
    until(
        DEADLINE,
        "the second coordinator to say it stands by",
        || standby.log().contains("standby").then_some(()),
    );

    let mut paused = sys.take_coordinator();
    paused.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    // A submit the paused coordinator will read only when it wakes.
    let mut late = sys
        .rota_command(&["submit", "--jobset", "late", "--", "true"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rota submit");
    let took_over = standby.listening_within(TAKEOVER + Duration::from_secs(2));
    let took = stopped.elapsed();
    assert!(
        took_over.is_some() && took <= TAKEOVER + Duration::from_secs(1),
        "no takeover in {took:?}: {}",
        standby.log()
    );

    // While the old one is still paused: the CLI passes over it (no health answer) to the
    // new one, which has what was accepted before the pause; the agent moved over by itself
    // and runs what is submitted now.
    let cli = Cli {
        bin: sys.bins.rota,
        url: &both,
        env: &[],
    };
    assert_eq!(
        cli.json(&["show", before["id"].as_str().unwrap()])["state"],
        "success"
    );
    let after = cli.submit(&["--jobset", "after", "--", "echo", "on the new one"]);
    let n = after["number"].to_string();
    let done = cli.wait_run(&n, DEADLINE, "finished", |r| r["state"] == "success");
    assert_eq!(done["agent"], "a", "{done}");
    assert_eq!(cli.rota(&["logs", &n]).stdout, b"on the new one\n");

    paused.signal(Signal::SIGCONT);
    let code = until(DEADLINE, "the woken ex-active to step down", || {
        paused.try_exit_code()
    });
    assert!(
        matches!(code, Some(70) | Some(75)),
        "it exits (fenced or its lease gone): {code:?}\n{}",
        sys.coordinator_log()
    );
    let submitted = until(DEADLINE, "the late submit to end", || {
        late.try_wait().unwrap()
    });
    assert!(
        !submitted.success(),
        "the fenced coordinator accepted nothing"
    );
    let listed = cli.json(&["jobset", "list"]).to_string();
    assert!(
        listed.contains("before") && listed.contains("after"),
        "{listed}"
    );
    assert!(
        !listed.contains("late"),
        "the fenced submit left nothing: {listed}"
    );
    assert!(
        sys.coordinator_log().contains("stepping down")
            || sys
                .coordinator_log()
                .contains("another coordinator is active"),
        "it says why it stopped:\n{}",
        sys.coordinator_log()
    );
}
