//! Several coordinators on one PostgreSQL store, one active (issue 10): real binaries, a real
//! PostgreSQL, `kill -9` and SIGSTOP. A standby listens but serves nothing (health NOT_SERVING,
//! calls UNAVAILABLE naming the active) while the active holds the store's lease, takes over
//! within 10 s of the active's death or pause, and keeps what was accepted, logs included; an
//! active that was paused and wakes after the takeover commits nothing and steps down.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rota_tests::bins;
use rota_tests::pg::Backend;
use rota_tests::procs::{until, Cli, Standby, System, FAST, STEADY};

const DEADLINE: Duration = Duration::from_secs(60);

/// The longest a standby may take to become active after the active is gone.
const TAKEOVER: Duration = Duration::from_secs(10);

/// A free port of 127.0.0.1, for a standby to listen on.
fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The first of `standbys` to become active within `within`, by index, with its address.
fn first_active(standbys: &[&Standby], within: Duration) -> Option<(usize, String)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for (i, s) in standbys.iter().enumerate() {
            if let Some(addr) = s.listening_within(Duration::from_millis(50)) {
                return Some((i, addr));
            }
        }
    }
    None
}

/// `GET PATH` over HTTP/1.1 by hand: the response, lowercased.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text.to_lowercase()
}

/// What run `n` of the jobset prints.
fn expected_output(n: u64) -> Vec<u8> {
    (0..10)
        .map(|i| format!("run {n} line {i}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn three_coordinators_survive_a_kill_9_and_a_30_s_pause_and_every_run_succeeds_once() {
    let Some(store) = Backend::postgres() else {
        return;
    };
    let mut sys = System::start_on(bins!(), &store, STEADY);
    let (b_addr, c_addr) = (free_addr(), free_addr());
    let all = format!("{},http://{b_addr},http://{c_addr}", sys.url);
    sys.start_agent_at(&all, "a", 4, &[]);
    sys.start_agent_at(&all, "b", 4, &[]);
    sys.wait_agents(&["a", "b"]);
    let b = sys.start_standby("b", &b_addr.to_string());
    let c = sys.start_standby("c", &c_addr.to_string());
    for s in [&b, &c] {
        until(DEADLINE, "a coordinator to say it stands by", || {
            s.log().contains("standby").then_some(())
        });
    }
    // A standby listens but serves nothing: calls are UNAVAILABLE naming the active one,
    // pages 503 with its address in `rota-active`, and its health is NOT_SERVING, so a CLI
    // given every address passes over it.
    let b_url = format!("http://{b_addr}");
    let only_b = Cli {
        bin: sys.bins.rota,
        url: &b_url,
        env: &[],
    };
    let (code, message, active) = standby_refusal(&b_url);
    assert_eq!(code, tonic::Code::Unavailable);
    assert!(
        message.contains(&format!(
            "this coordinator is a standby: the active coordinator is at {}",
            sys.url
        )),
        "{message}"
    );
    assert_eq!(active.as_deref(), Some(sys.url.as_str()));
    // The CLI given only the standby follows it to the active one.
    let followed = only_b.rota(&["runs"]);
    assert!(followed.status.success(), "{followed:?}");
    assert!(
        String::from_utf8_lossy(&followed.stderr).contains(&format!(
            "{b_url} is a standby; asking the active coordinator at {}",
            sys.url
        )),
        "{followed:?}"
    );
    let page = http_get(&b_addr.to_string(), "/");
    assert!(page.starts_with("http/1.1 503"), "{page}");
    // The probe path: 503 from a standby, 200 from the active.
    let probe = http_get(&b_addr.to_string(), "/healthz");
    assert!(probe.starts_with("http/1.1 503"), "{probe}");
    let probe = http_get(&sys.addr.to_string(), "/healthz");
    assert!(probe.starts_with("http/1.1 200"), "{probe}");
    assert!(
        page.contains(&format!("rota-active: {}", sys.url)),
        "{page}"
    );
    assert_eq!(
        standby_health(&b_url),
        "NotServing",
        "a standby's ControlService is not serving"
    );
    let first_url = sys.url.clone();
    sys.url = format!("http://{c_addr},http://{b_addr},{first_url}");
    assert_eq!(sys.json(&["runs"]).as_array().map(Vec::len), Some(0));

    const RUNS: u64 = 200;
    let lines: String = (1..=RUNS)
        .map(|n| {
            format!(
                "i=0; while [ $i -lt 10 ]; do echo \"run {n} line $i\"; i=$((i+1)); sleep 0.03; done\n"
            )
        })
        .collect();
    // `--retries 1`: an Assign the paused active committed but never sent leaves its run
    // waiting a lease on the next one (the agent never had it), then it runs once elsewhere.
    let file = sys.path("farm.txt");
    std::fs::write(&file, &lines).unwrap();
    sys.json(&[
        "submit",
        "--jobset",
        "farm",
        "--retries",
        "1",
        "--from",
        file.to_str().unwrap(),
    ]);
    let succeeded = |sys: &System| {
        sys.runs_of("farm")
            .values()
            .filter(|r| r["state"] == "success")
            .count()
    };
    until(
        DEADLINE,
        "some runs to finish under the first coordinator",
        || (succeeded(&sys) >= 30).then_some(()),
    );

    // 1. kill -9 the active: one of the standbys takes over within 10 s.
    sys.kill9_coordinator();
    let killed = Instant::now();
    let (first, _) =
        first_active(&[&b, &c], TAKEOVER + Duration::from_secs(1)).unwrap_or_else(|| {
            panic!(
                "no takeover in {:?}:\n{}\n{}",
                killed.elapsed(),
                b.log(),
                c.log()
            )
        });
    assert!(killed.elapsed() <= TAKEOVER, "took {:?}", killed.elapsed());
    let (next, last) = if first == 0 { (b, c) } else { (c, b) };
    let done_before = succeeded(&sys);
    until(
        DEADLINE,
        "runs to finish under the second coordinator",
        || (succeeded(&sys) >= done_before + 30).then_some(()),
    );

    // 2. SIGSTOP the new active for 30 s: the last one takes over within 10 s, the work goes
    // on under it, and the paused one, woken, commits nothing and steps down.
    let mut paused = next.proc;
    paused.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    assert!(
        last.listening_within(TAKEOVER + Duration::from_secs(1))
            .is_some(),
        "no takeover from the paused one in {:?}:\n{}",
        stopped.elapsed(),
        last.log()
    );
    assert!(
        stopped.elapsed() <= TAKEOVER,
        "took {:?}",
        stopped.elapsed()
    );
    let waited = sys.rota(&["wait", "--jobset", "farm"]);
    if waited.status.code() != Some(0) {
        let failed: Vec<String> = sys
            .runs_of("farm")
            .iter()
            .filter(|(_, r)| r["state"] != "success")
            .map(|(n, _)| sys.json(&["show", &n.to_string()]).to_string())
            .collect();
        // What each agent and the last coordinator said of them.
        let mut said = String::new();
        for (n, run) in sys
            .runs_of("farm")
            .iter()
            .filter(|(_, r)| r["state"] != "success")
        {
            let id = run["id"].as_str().unwrap_or_default();
            let prefix = &id[..id.len().min(8)];
            for key in ["a", "b"] {
                for line in sys.agent_log(key).lines().filter(|l| l.contains(prefix)) {
                    said.push_str(&format!("run {n} agent {key}: {line}\n"));
                }
            }
        }
        panic!(
            "not every run succeeded: {failed:#?}\n{said}\n{}",
            last.log()
        );
    }
    if let Some(rest) = Duration::from_secs(30).checked_sub(stopped.elapsed()) {
        std::thread::sleep(rest);
    }
    paused.signal(Signal::SIGCONT);
    let code = until(DEADLINE, "the woken ex-active to step down", || {
        paused.try_exit_code()
    });
    assert!(matches!(code, Some(70) | Some(75)), "{code:?}");
    sys.adopt(last);

    let runs = sys.runs_of("farm");
    assert_eq!(runs.len() as u64, RUNS, "no run lost, none added");
    let mut reassigned = 0;
    for (n, run) in &runs {
        let shown = sys.json(&["show", &n.to_string()]);
        assert_eq!(run["state"], "success", "run {n}: {shown}");
        let attempts = shown["attempts"].as_array().unwrap();
        match attempts.as_slice() {
            [_] => {}
            // Its first Assign never reached an agent (the active was paused between its
            // commit and its send): lost after the lease, and the second attempt began only
            // after that, so the two never overlap.
            [lost, ran] => {
                reassigned += 1;
                assert_eq!(lost["error"], "agent lost", "run {n}: {shown}");
                assert!(
                    lost["finished_at_ms"].as_u64() <= ran["started_at_ms"].as_u64(),
                    "run {n}'s attempts overlap: {shown}"
                );
            }
            _ => panic!("run {n} ran more than twice: {shown}"),
        }
        let logs = sys.rota(&["logs", &n.to_string()]);
        assert_eq!(
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&expected_output(*n)),
            "run {n}'s log, whichever coordinator stored it"
        );
    }
    // At most the runs whose Assign was in flight at the pause: one per slot.
    assert!(reassigned <= 8, "{reassigned} runs needed a second attempt");
    // Numbers continue from the store after both takeovers.
    let next = sys.submit(&["--", "true"]);
    assert_eq!(next["number"], RUNS + 1);
}

/// Runs `call` on a gRPC channel to `url`, on a runtime of its own.
fn on_channel<T, F: std::future::Future<Output = T>>(
    url: &str,
    call: impl FnOnce(tonic::transport::Channel) -> F,
) -> T {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned()).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move { call(endpoint.connect().await.unwrap()).await })
}

/// A gRPC call to a standby: its status code, message and `rota-active` metadata.
fn standby_refusal(url: &str) -> (tonic::Code, String, Option<String>) {
    on_channel(url, |channel| async move {
        let mut control =
            rota_proto::v1::control_service_client::ControlServiceClient::new(channel);
        let status = control
            .status(rota_proto::v1::StatusRequest::default())
            .await
            .expect_err("a standby serves nothing");
        let active = status
            .metadata()
            .get("rota-active")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status.code(), status.message().to_owned(), active)
    })
}

/// A coordinator's health for `rota.v1.ControlService`, by a real gRPC health check.
fn standby_health(url: &str) -> String {
    on_channel(url, |channel| async move {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "rota.v1.ControlService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        format!(
            "{:?}",
            tonic_health::pb::health_check_response::ServingStatus::try_from(status).unwrap()
        )
    })
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
        [
            "stepping down",
            "another coordinator is active",
            "another coordinator took over"
        ]
        .iter()
        .any(|why| sys.coordinator_log().contains(why)),
        "it says why it stopped:\n{}",
        sys.coordinator_log()
    );
}

/// An active coordinator on a fresh PostgreSQL database with `flags`, agent `a` given its
/// address and a standby's, and that standby (on the returned address), standing by.
fn active_and_standby(flags: &[&str]) -> Option<(System, Standby, std::net::SocketAddr)> {
    let store = Backend::postgres()?;
    let mut sys = System::start_on(bins!(), &store, flags);
    let b_addr = free_addr();
    let both = format!("{},http://{b_addr}", sys.url);
    sys.start_agent_at(&both, "a", 2, &[]);
    sys.wait_agents(&["a"]);
    let standby = sys.start_standby("b", &b_addr.to_string());
    until(
        DEADLINE,
        "the second coordinator to say it stands by",
        || standby.log().contains("standby").then_some(()),
    );
    Some((sys, standby, b_addr))
}

/// `kill -9` of the active: the standby (listening on `b_addr`) takes over within
/// [`TAKEOVER`] and is the one `sys` talks to from then on.
fn kill_the_active(sys: &mut System, standby: Standby, b_addr: std::net::SocketAddr) {
    sys.kill9_coordinator();
    assert!(
        standby.listening_within(TAKEOVER).is_some(),
        "{}",
        standby.log()
    );
    sys.adopt(standby);
    sys.url = format!("http://{b_addr}");
}

#[test]
fn artifacts_and_a_long_log_the_old_active_received_are_served_by_the_new_one() {
    let Some((mut sys, standby, b_addr)) = active_and_standby(STEADY) else {
        return;
    };
    // 2.6 MiB: three segments in the database.
    let dump = sys.submit(&[
        "--artifact",
        "db.txt",
        "--shell",
        "--",
        "seq 1 400000 > db.txt",
    ]);
    let dump_no = dump["number"].as_u64().unwrap().to_string();
    sys.wait_state(&dump_no, "success", DEADLINE);
    // A log longer than the run page's 1 MiB window.
    let big = sys.submit(&[
        "--shell",
        "--",
        "printf 'BEGIN%s\\n' OF-LOG; seq 1 250000; printf 'END%s\\n' OF-LOG",
    ]);
    let big_no = big["number"].as_u64().unwrap().to_string();
    sys.wait_state(&big_no, "success", DEADLINE);

    kill_the_active(&mut sys, standby, b_addr);
    // The new active has no file of it: it fetches the content from the database, for the
    // dependent run on the agent and for a download.
    let count = sys.submit(&["--after", &dump_no, "--shell", "--", "wc -l < db.txt"]);
    let count_no = count["number"].as_u64().unwrap().to_string();
    sys.wait_state(&count_no, "success", DEADLINE);
    assert_eq!(sys.rota(&["logs", &count_no]).stdout, b"400000\n");
    let to = sys.path("got.txt");
    let got = sys.rota(&[
        "artifacts",
        &dump_no,
        "--get",
        "db.txt",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(got.status.success(), "{got:?}");
    let expected: String = (1..=400000).map(|n| format!("{n}\n")).collect();
    assert_eq!(std::fs::read_to_string(&to).unwrap(), expected);
    // The run page of a log the old active received shows its last MiB, as for any other.
    let page = http_get(&b_addr.to_string(), &format!("/runs/{big_no}"));
    assert!(
        page.starts_with("http/1.1 200"),
        "{}",
        &page[..page.len().min(300)]
    );
    // (Markers the command line on the page does not spell.)
    assert!(page.contains("endof-log"), "the log's end is shown");
    assert!(!page.contains("beginof-log"), "only the last window of it");
}

#[test]
fn a_webhook_the_old_active_could_not_deliver_is_sent_once_by_the_new_one_with_the_logs_tail() {
    let mut flags = STEADY.to_vec();
    flags.extend(["--notify-backoff", "0.05"]);
    let Some((mut sys, standby, b_addr)) = active_and_standby(&flags) else {
        return;
    };
    let hooks = rota_tests::receiver::Receiver::start();
    hooks.set_down(true);
    let made = sys.rota(&["jobset", "create", "hooked", "--notify", &hooks.url()]);
    assert!(made.status.success(), "{made:?}");
    let run = sys.submit(&["--jobset", "hooked", "--shell", "--", "echo hello; exit 7"]);
    let n = run["number"].to_string();
    sys.wait_state(&n, "errored", DEADLINE);
    until(DEADLINE, "a first try", || {
        (hooks.refused() >= 1).then_some(())
    });

    kill_the_active(&mut sys, standby, b_addr);
    hooks.set_down(false);
    let got = until(DEADLINE, "the delivery by the new active", || {
        let got = hooks.received();
        (!got.is_empty()).then_some(got)
    });
    // Its log was received by the old active: the tail comes from the database.
    let body = got[0].json();
    assert_eq!(body["exit_code"], 7, "{body}");
    assert_eq!(body["stdout"], serde_json::json!(["hello"]), "{body}");
    until(DEADLINE, "the delivery to be recorded", || {
        let list = sys.json(&["notifications"]);
        (list[0]["state"] == "delivered").then_some(())
    });
    assert_eq!(hooks.received().len(), 1, "delivered exactly once");
}
