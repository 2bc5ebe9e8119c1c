//! The multi-host suite (issue 11): a coordinator and the agents host-a and host-b as
//! containers of the project's own images on a private Docker network, faults made the way an
//! operator meets them (`docker network disconnect`, `docker kill`, `docker restart`,
//! `docker stop`). Every outcome is read from the run records (`rota show`/`rota runs -o json`
//! through the host's CLI) and their timestamps. Skips with a printed reason where Docker is
//! absent (fails instead under ROTA_REQUIRE_TOOLS=1).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rota_tests::bins;
use rota_tests::docker::{images, Farm, FAULTS};
use rota_tests::max_overlap;
use rota_tests::procs::{until, STEADY};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

/// A farm whose coordinator has `flags`; None where Docker is absent (the test skips).
fn farm(flags: &[&str]) -> Option<Farm> {
    Some(Farm::start(images(bins!())?, bins!(), flags))
}

fn examples(file: &str) -> String {
    format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn ms(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("a time in ms, not {v}"))
}

/// The runs of `jobset`, as `rota runs -o json` lists them.
fn runs_of(farm: &Farm, jobset: &str) -> Vec<Value> {
    farm.cli()
        .json(&["runs", "--jobset", jobset, "--limit", "1000"])
        .as_array()
        .cloned()
        .expect("runs is a list")
}

/// Asserts the run succeeded on host-b after its first attempt, on host-a, was lost, and that
/// the retry started only once that attempt had ended.
fn assert_lost_on_a_then_succeeded_on_b(run: &Value) {
    assert_eq!(run["state"], "success", "{run}");
    assert_eq!(run["agent"], "host-b", "{run}");
    let attempts = run["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "two attempts: {run}");
    assert_eq!(attempts[0]["agent"], "host-a", "{run}");
    assert_eq!(attempts[0]["state"], "errored", "{run}");
    assert_eq!(attempts[0]["error"], "agent lost", "{run}");
    assert_eq!(attempts[1]["agent"], "host-b", "{run}");
    assert_eq!(attempts[1]["state"], "success", "{run}");
    assert!(
        ms(&attempts[1]["started_at_ms"]) >= ms(&attempts[0]["finished_at_ms"]),
        "the retry starts after the lost attempt ended: {run}"
    );
}

/// A farm with host-a only, and the `--retries 1` run `script` running on it (so host-b,
/// started next, is where a retry can go); the run's number.
fn run_on_host_a_then_add_b(farm: &mut Farm, image: &str, submit: &[&str]) -> String {
    farm.add_agent(image, "host-a", 2, &[]);
    farm.cli().wait_agents(&["host-a"]);
    let n = farm.cli().submit(submit)["number"].to_string();
    farm.cli().wait_run(&n, DEADLINE, "running on host-a", |v| {
        v["state"] == "running" && v["agent"] == "host-a"
    });
    farm.add_agent(image, "host-b", 2, &[]);
    farm.cli().wait_agents(&["host-a", "host-b"]);
    n
}

/// The seed page's three configs with host-a_group on host-a and host-b_group on host-b, each
/// job triggered twice: host-a_group runs at most 2 at once, host-b_group (max 1, explicit or
/// implicit) one, each group's runs on its own host.
#[test]
fn the_seed_configs_hold_their_maxima_across_two_hosts() {
    for file in [
        "dsari-concurrency-1-local.json",
        "dsari-concurrency-2-local.json",
        "dsari-concurrency-3-local.json",
    ] {
        let Some(mut farm) = farm(STEADY) else {
            return;
        };
        let images = farm.images;
        farm.add_agent(&images.agent, "host-a", 8, &["--group", "host-a_group"]);
        farm.add_agent(&images.agent, "host-b", 8, &["--group", "host-b_group"]);
        farm.cli().wait_agents(&["host-a", "host-b"]);
        let cli = farm.cli();
        cli.json(&["apply", &examples(file)]);
        let jobs = cli.json(&["jobs"]);
        let jobs: Vec<&str> = jobs
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["name"].as_str().expect("name"))
            .collect();
        assert_eq!(jobs.len(), 5, "{file}: {jobs:?}");
        for _ in 0..2 {
            for job in &jobs {
                cli.json(&["trigger", job]);
            }
        }
        let jobset = file.trim_end_matches(".json");
        let wait = cli.rota(&["wait", "--jobset", jobset]);
        assert!(wait.status.success(), "{file}: every run succeeds");
        let runs = runs_of(&farm, jobset);
        assert!(runs.len() >= 10, "{file}: {} runs", runs.len());
        let mut by_group: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        for r in &runs {
            let group = r["concurrency_group"].as_str().expect("group").to_string();
            let host = group.trim_end_matches("_group");
            assert_eq!(r["agent"], host, "{file}: a group's runs on its host: {r}");
            by_group
                .entry(group)
                .or_default()
                .push((ms(&r["started_at_ms"]), ms(&r["finished_at_ms"])));
        }
        assert_eq!(
            max_overlap(&by_group["host-a_group"]),
            2,
            "{file}: host-a_group"
        );
        assert_eq!(
            max_overlap(&by_group["host-b_group"]),
            1,
            "{file}: host-b_group"
        );
    }
}

/// The expected `dbN.sql` of examples/farm.yaml's dump step.
fn expected_dump(db: &str) -> Vec<u8> {
    let mut out = format!("-- dump of {db}\nCREATE TABLE items (id bigint, payload text);\n");
    for i in 1..=100_000 {
        out.push_str(&format!(
            "INSERT INTO items VALUES ({i}, 'some payload text for this row');\n"
        ));
    }
    out.into_bytes()
}

/// examples/farm.yaml on two hosts (agents of the derived image with GNU `seq`): dumps and
/// restores on host-a, compress and upload on host-b, each step after the one it needs; the
/// artifacts that crossed hosts are byte for byte what the dump wrote.
#[test]
fn the_farm_pipeline_moves_artifacts_between_hosts_intact() {
    let Some(mut farm) = farm(STEADY) else {
        return;
    };
    let images = farm.images;
    farm.add_agent(
        &images.tools_agent,
        "host-a",
        2,
        &["--group", "host-a_group"],
    );
    farm.add_agent(
        &images.tools_agent,
        "host-b",
        2,
        &["--group", "host-b_group"],
    );
    farm.cli().wait_agents(&["host-a", "host-b"]);
    let run = farm.cli().rota(&["run", &examples("farm.yaml")]);
    assert!(
        run.status.success(),
        "rota run examples/farm.yaml: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let runs = runs_of(&farm, "farm");
    assert_eq!(runs.len(), 16, "4 steps x 4 databases");
    let by_name: HashMap<&str, &Value> = runs
        .iter()
        .map(|r| (r["name"].as_str().expect("name"), r))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    for db in ["db1", "db2", "db3", "db4"] {
        let step = |s: &str| by_name[format!("{s}-{db}").as_str()];
        for (s, host) in [
            ("dump", "host-a"),
            ("compress", "host-b"),
            ("upload", "host-b"),
            ("restore", "host-a"),
        ] {
            assert_eq!(step(s)["state"], "success", "{}", step(s));
            assert_eq!(step(s)["agent"], host, "{}", step(s));
        }
        for (before, after) in [
            ("dump", "compress"),
            ("compress", "upload"),
            ("dump", "restore"),
        ] {
            assert!(
                ms(&step(after)["started_at_ms"]) >= ms(&step(before)["finished_at_ms"]),
                "{after}-{db} starts after {before}-{db} ended"
            );
        }
        let get = |s: &str, path: &str| -> Vec<u8> {
            let to = dir.path().join(format!("{s}-{db}-{path}"));
            let n = step(s)["number"].to_string();
            let out =
                farm.cli()
                    .rota(&["artifacts", &n, "--get", path, "--to", to.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::read(&to).expect("downloaded artifact")
        };
        let sql = get("dump", &format!("{db}.sql"));
        assert!(sql == expected_dump(db), "{db}.sql as the dump wrote it");
        let gz = get("compress", &format!("{db}.sql.gz"));
        let gunzip = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(dir.path().join(format!("compress-{db}-{db}.sql.gz")))
            .output()
            .expect("gzip -dc");
        assert!(
            gunzip.stdout == sql,
            "{db}.sql.gz made on host-b holds host-a's dump"
        );
        let uploaded = farm.exec(
            "host-b",
            &format!("cat /var/lib/rota-agent/work/jobs/upload-{db}/uploaded/{db}.sql.gz"),
        );
        assert!(
            uploaded.stdout == gz,
            "the upload on host-b is the compress artifact"
        );
        let logs = farm
            .cli()
            .rota(&["logs", &step("restore")["number"].to_string()]);
        let logs = String::from_utf8_lossy(&logs.stdout);
        assert!(
            logs.contains("on host-a\n")
                && logs.ends_with(&format!("{db}: restored 100000 rows\n")),
            "restore-{db} read the dump where it was written: {logs}"
        );
    }
}

/// host-a cut off longer than the lease with two `--retries 1` runs: both are retried on host-b
/// and succeed there; the one that ends on host-a while it is cut off has its result refused,
/// and the one still running is killed by host-a once it is back.
#[test]
fn a_host_cut_off_past_the_lease_loses_its_runs_and_its_late_result() {
    let Some(mut farm) = farm(FAULTS) else {
        return;
    };
    let images = farm.images;
    farm.add_agent(&images.agent, "host-a", 2, &[]);
    farm.cli().wait_agents(&["host-a"]);
    let late = farm.cli().submit(&[
        "--retries",
        "1",
        "--shell",
        "--",
        "if [ \"$AGENT_NAME\" = host-a ]; then echo $$ > /tmp/late.pid; \
         while [ ! -e /tmp/release ]; do sleep 0.05; done; fi; echo late ran on $AGENT_NAME",
    ]);
    let stuck = farm.cli().submit(&[
        "--retries",
        "1",
        "--shell",
        "--",
        "if [ \"$AGENT_NAME\" = host-a ]; then echo $$ > /tmp/stuck.pid; exec sleep 1000; fi; \
         echo stuck ran on $AGENT_NAME",
    ]);
    let (late_n, stuck_n) = (late["number"].to_string(), stuck["number"].to_string());
    let late_pid = farm.read_pid("host-a", "/tmp/late.pid");
    let stuck_pid = farm.read_pid("host-a", "/tmp/stuck.pid");
    farm.add_agent(&images.agent, "host-b", 2, &[]);
    farm.cli().wait_agents(&["host-a", "host-b"]);

    farm.disconnect("host-a");

    for n in [&late_n, &stuck_n] {
        let run = farm
            .cli()
            .wait_run(n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
        assert_lost_on_a_then_succeeded_on_b(&run);
    }
    assert!(
        farm.alive("host-a", late_pid) && farm.alive("host-a", stuck_pid),
        "cut off, host-a cannot know it lost its runs"
    );
    farm.exec("host-a", "touch /tmp/release");
    until(DEADLINE, "late to end on host-a", || {
        (!farm.alive("host-a", late_pid)).then_some(())
    });

    farm.connect("host-a");

    until(DEADLINE, "host-a to kill the run it lost", || {
        (!farm.alive("host-a", stuck_pid)).then_some(())
    });
    until(DEADLINE, "host-a back, holding nothing", || {
        farm.cli()
            .agents()
            .iter()
            .any(|a| {
                a["name"] == "host-a"
                    && a["state"] == "connected"
                    && a["running_runs"].as_array().is_some_and(Vec::is_empty)
            })
            .then_some(())
    });
    for (n, label) in [(&late_n, "late"), (&stuck_n, "stuck")] {
        assert_lost_on_a_then_succeeded_on_b(&farm.cli().show(n));
        let logs = farm.cli().rota(&["logs", n]);
        assert_eq!(
            String::from_utf8_lossy(&logs.stdout),
            format!("{label} ran on host-b\n"),
            "host-a's late result changed nothing"
        );
    }
}

/// With `on_disconnect: stop`, host-a cut off past the lease stops its run itself, and the
/// retry on host-b starts only after host-a's process ended: the two never overlap (host-a's
/// run writes the time it got SIGTERM; the containers share the host's clock).
#[test]
fn on_disconnect_stop_never_overlaps_the_retry() {
    let Some(mut farm) = farm(FAULTS) else {
        return;
    };
    let images = farm.images;
    let n = run_on_host_a_then_add_b(
        &mut farm,
        &images.tools_agent,
        &[
            "--retries",
            "1",
            "--on-disconnect",
            "stop",
            "--kill-grace",
            "1s",
            "--shell",
            "--",
            "if [ \"$AGENT_NAME\" = host-a ]; then \
             trap 'date +%s%3N > /tmp/stopped.ms; exit 143' TERM; echo $$ > /tmp/run.pid; \
             while :; do sleep 0.05; done; fi; echo ran on $AGENT_NAME",
        ],
    );
    let pid = farm.read_pid("host-a", "/tmp/run.pid");

    farm.disconnect("host-a");

    let run = farm
        .cli()
        .wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_lost_on_a_then_succeeded_on_b(&run);
    assert!(!farm.alive("host-a", pid), "host-a stopped its run");
    let stopped = farm.exec("host-a", "cat /tmp/stopped.ms");
    let stopped: u64 = String::from_utf8_lossy(&stopped.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("host-a's run recorded when it was stopped ({e}): {stopped:?}"));
    let retry_started = ms(&run["attempts"][1]["started_at_ms"]);
    assert!(
        stopped < retry_started,
        "host-a's attempt ended ({stopped}) before host-b's began ({retry_started})"
    );
    farm.connect("host-a");
    farm.cli().wait_agents(&["host-a", "host-b"]);
    assert_lost_on_a_then_succeeded_on_b(&farm.cli().show(&n));
}

/// host-a cut off for less than the lease keeps its run: one attempt, on host-a.
#[test]
fn a_host_cut_off_shorter_than_the_lease_keeps_its_run() {
    let Some(mut farm) = farm(FAULTS) else {
        return;
    };
    let images = farm.images;
    let n = run_on_host_a_then_add_b(
        &mut farm,
        &images.agent,
        &[
            "--retries",
            "1",
            "--shell",
            "--",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done on $AGENT_NAME",
        ],
    );
    let cut = Instant::now();
    farm.disconnect("host-a");
    // The fault itself lasts a second: that is the scenario, not a wait for a condition.
    std::thread::sleep(Duration::from_secs(1));
    farm.connect("host-a");
    let lease = Duration::from_secs(4);
    assert!(cut.elapsed() < lease, "cut off for {:?}", cut.elapsed());
    farm.exec("host-a", "touch /tmp/go");
    let run = farm.cli().wait_state(&n, "success", DEADLINE);
    assert_eq!(run["agent"], "host-a", "{run}");
    assert_eq!(
        run["attempts"].as_array().map(Vec::len),
        Some(1),
        "no retry: {run}"
    );
    let logs = farm.cli().rota(&["logs", &n]);
    assert_eq!(logs.stdout, b"done on host-a\n");
}

/// `docker kill` of host-a: its run is lost and retried on host-b.
#[test]
fn docker_kill_of_a_host_retries_its_run_on_the_other() {
    let Some(mut farm) = farm(FAULTS) else {
        return;
    };
    let images = farm.images;
    let n = run_on_host_a_then_add_b(
        &mut farm,
        &images.agent,
        &[
            "--retries",
            "1",
            "--shell",
            "--",
            "if [ \"$AGENT_NAME\" = host-a ]; then exec sleep 1000; fi; echo ran on $AGENT_NAME",
        ],
    );
    let killed_at = now_ms();
    farm.docker_on("kill", &[], "host-a");
    let run = farm
        .cli()
        .wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_lost_on_a_then_succeeded_on_b(&run);
    assert!(
        ms(&run["attempts"][0]["finished_at_ms"]) >= killed_at,
        "{run}"
    );
    assert_eq!(farm.cli().rota(&["logs", &n]).stdout, b"ran on host-b\n");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// `docker restart` of the coordinator while a run prints: the run goes on on host-a, ends
/// once, and its log is whole and in order. And neither container's log has colour codes.
#[test]
fn docker_restart_of_the_coordinator_mid_run_keeps_the_run_and_its_whole_log() {
    let Some(mut farm) = farm(STEADY) else {
        return;
    };
    let images = farm.images;
    farm.add_agent(&images.agent, "host-a", 2, &[]);
    farm.cli().wait_agents(&["host-a"]);
    let n = farm.cli().submit(&[
        "--shell",
        "--",
        "i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); \
         if [ $i -eq 100 ]; then touch /tmp/at100; \
         while [ ! -e /tmp/go ]; do sleep 0.05; done; fi; done",
    ])["number"]
        .to_string();
    until(DEADLINE, "the run to print 99 lines", || {
        farm.exec("host-a", "test -e /tmp/at100")
            .status
            .success()
            .then_some(())
    });
    farm.restart_coordinator();
    farm.exec("host-a", "touch /tmp/go");
    let run = farm.cli().wait_state(&n, "success", DEADLINE);
    assert_eq!(run["attempts"].as_array().map(Vec::len), Some(1), "{run}");
    assert_eq!(run["agent"], "host-a");
    let expected: String = (1..=300).map(|i| format!("line {i}\n")).collect();
    let logs = farm.cli().rota(&["logs", &n]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), expected);
    // Issue 11 item 7: `docker logs` is no terminal, so the logs carry no ANSI colour codes.
    for name in ["coordinator", "host-a"] {
        let logs = farm.logs(name);
        assert!(logs.contains(" INFO "), "{name} logged: {logs}");
        assert!(
            !logs.contains('\x1b'),
            "{name}'s docker logs have no escape codes"
        );
    }
}

/// `docker stop` of host-a drains it: the run it holds finishes (success, whole output), it
/// takes no new run, and the container exits 0 only after that run ended.
#[test]
fn docker_stop_of_an_agent_drains_it() {
    let Some(mut farm) = farm(STEADY) else {
        return;
    };
    let images = farm.images;
    farm.add_agent(&images.agent, "host-a", 2, &["--drain-timeout", "60s"]);
    farm.cli().wait_agents(&["host-a"]);
    let n = farm.cli().submit(&[
        "--shell",
        "--",
        "echo started; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo drained",
    ])["number"]
        .to_string();
    farm.cli().wait_state(&n, "running", DEADLINE);
    let container = farm.container("host-a");
    let stop = std::thread::spawn(move || {
        rota_tests::docker::docker(&["stop", "-t", "70", &container]);
        now_ms()
    });
    until(DEADLINE, "host-a to drain", || {
        farm.cli()
            .agents()
            .iter()
            .any(|a| a["name"] == "host-a" && a["state"] == "draining")
            .then_some(())
    });
    let queued = farm.cli().submit(&["--", "true"])["number"].to_string();
    farm.exec("host-a", "touch /tmp/go");
    let stopped_at = stop.join().expect("docker stop");
    let run = farm.cli().show(&n);
    assert_eq!(run["state"], "success", "{run}");
    assert_eq!(farm.cli().rota(&["logs", &n]).stdout, b"started\ndrained\n");
    assert!(
        stopped_at >= ms(&run["finished_at_ms"]),
        "docker stop waited for the run"
    );
    let exit = farm.docker_on("inspect", &["--format", "{{.State.ExitCode}}"], "host-a");
    assert_eq!(exit, "0", "a drained agent exits 0");
    let queued = farm.cli().show(&queued);
    assert!(
        queued["started_at_ms"].is_null() && queued["attempts"] == serde_json::json!([]),
        "a draining agent takes no new run: {queued}"
    );
}
