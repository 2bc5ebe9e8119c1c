//! Webhooks end to end, with the real binaries and a real HTTP receiver: one signed POST per
//! matching event, retries while the receiver is down, and a coordinator kill -9 between a
//! run's end and its delivery that still delivers it once.

use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::{until, System, STEADY};
use rota_tests::receiver::Receiver;

const DEADLINE: Duration = Duration::from_secs(30);
const SECRET: &str = "hook-s3cret";

/// A coordinator whose failed POSTs are retried after 50 ms (doubling), with one agent.
fn system() -> System {
    let mut flags = STEADY.to_vec();
    flags.extend(["--notify-backoff", "0.05"]);
    let mut sys = System::start_with(bins!(), &flags);
    sys.start_agent("a", 2, &[]);
    sys.wait_agents(&["a"]);
    sys
}

/// `rota notifications -o json`.
fn notifications(sys: &System) -> Vec<serde_json::Value> {
    sys.json(&["notifications"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until every notification in the outbox is delivered and there are `n`.
fn wait_delivered(sys: &System, n: usize) -> Vec<serde_json::Value> {
    until(DEADLINE, "every notification delivered", || {
        let list = notifications(sys);
        (list.len() == n && list.iter().all(|x| x["state"] == "delivered")).then_some(list)
    })
}

#[test]
fn each_matching_event_gets_exactly_one_signed_post() {
    let sys = system();
    let hooks = Receiver::start();
    let secret = sys.path("hook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let target = format!(
        "{},on=failure|success,on=jobset_finished,secret_file={}",
        hooks.url(),
        secret.display()
    );
    let out = sys.rota(&["jobset", "create", "hooked", "--notify", &target]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One submit, so the jobset ends once: a success, a failure; and a run elsewhere.
    let out = sys.rota_with_stdin(
        &["submit", "--jobset", "hooked", "--from", "-"],
        b"echo hello; echo bye\necho oops >&2; exit 3\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = sys.submit(&["--", "true"]);
    until(DEADLINE, "three POSTs", || {
        (hooks.received().len() >= 3).then_some(())
    });
    wait_delivered(&sys, 3);
    // /metrics counts them as `rota status` does.
    let scrape = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(rota_tests::http::get(sys.addr, "/metrics", &[]))
        .text();
    let sample = |name, labels| rota_tests::http::sample(&scrape, name, labels);
    assert_eq!(
        sample("rota_notifications_total", "outcome=\"delivered\""),
        Some(3.0),
        "{scrape}"
    );
    assert_eq!(sample("rota_notifications_pending", ""), Some(0.0));
    sys.wait_state(&other["number"].to_string(), "success", DEADLINE);
    let got = hooks.received();
    assert_eq!(got.len(), 3, "exactly one POST per event: {got:?}");
    for r in &got {
        assert!(r.signed_with(SECRET.as_bytes()), "a valid signature: {r:?}");
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let bodies: Vec<serde_json::Value> = got.iter().map(|r| r.json()).collect();
    let by_event = |e: &str| {
        bodies
            .iter()
            .find(|b| b["event"] == e)
            .unwrap_or_else(|| panic!("a {e} POST in {bodies:?}"))
            .clone()
    };
    let ok = by_event("success");
    assert_eq!(ok["state"], "success");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["jobset"], "hooked");
    assert_eq!(ok["agent"], "a");
    assert_eq!(ok["stdout"], serde_json::json!(["hello", "bye"]));
    let n = ok["number"].as_u64().unwrap();
    assert_eq!(ok["url"], format!("{}/runs/{n}", sys.url));
    assert!(ok["finished_at"].as_str().unwrap().ends_with('Z'), "{ok}");
    let bad = by_event("failure");
    assert_eq!(bad["state"], "errored");
    assert_eq!(bad["exit_code"], 3);
    assert_eq!(bad["stderr"], serde_json::json!(["oops"]));
    let end = by_event("jobset_finished");
    assert_eq!(end["jobset"], "hooked");
    assert_eq!(end["state"], "errored");
    assert_eq!(end["counts"]["success"], 1);
}

#[test]
fn deliveries_are_retried_while_the_receiver_is_down_and_arrive_once_it_is_back() {
    let sys = system();
    let hooks = Receiver::start();
    hooks.set_down(true);
    let target = format!("{},format=slack", hooks.url());
    let out = sys.rota(&["jobset", "create", "flaky", "--notify", &target]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = sys.submit(&["--jobset", "flaky", "--", "false"]);
    until(DEADLINE, "the POST refused twice", || {
        (hooks.refused() >= 2).then_some(())
    });
    let pending = until(DEADLINE, "the outbox row to show the failed tries", || {
        let list = notifications(&sys);
        list.first()
            .filter(|n| n["attempts"].as_u64() >= Some(2))
            .cloned()
    });
    assert_eq!(pending["state"], "pending", "{pending}");
    assert_eq!(pending["last_status"], 503, "{pending}");
    assert!(pending["next_try_ms"].is_u64(), "{pending}");
    hooks.set_down(false);
    let list = wait_delivered(&sys, 1);
    assert_eq!(list[0]["run"], run["number"]);
    let got = hooks.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with(&format!("rota: run #{} ", run["number"])),
        "{text}"
    );
    assert!(text.contains("errored (exit 1) on a"), "{text}");
    let status = sys.json(&["status"]);
    assert_eq!(status["notifications_delivered"], 1, "{status}");
    assert_eq!(status["notifications_pending"], 0, "{status}");
    assert!(
        status["notifications_attempts_failed"].as_u64() >= Some(2),
        "{status}"
    );
}

#[test]
fn a_coordinator_killed_between_a_result_and_its_delivery_delivers_it_once_after_restart() {
    let mut sys = system();
    let hooks = Receiver::start();
    hooks.set_down(true);
    let out = sys.rota(&["jobset", "create", "durable", "--notify", &hooks.url()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = sys.submit(&["--jobset", "durable", "--", "sh", "-c", "exit 7"]);
    let n = run["number"].to_string();
    sys.wait_state(&n, "errored", DEADLINE);
    until(DEADLINE, "a first try", || {
        (hooks.refused() >= 1).then_some(())
    });
    sys.kill9_coordinator();
    hooks.set_down(false);
    sys.restart_coordinator();
    let list = wait_delivered(&sys, 1);
    assert!(list[0]["attempts"].as_u64() >= Some(1), "{list:?}");
    let got = hooks.received();
    assert_eq!(got.len(), 1, "delivered exactly once: {got:?}");
    assert_eq!(got[0].json()["exit_code"], 7);
}

#[test]
fn a_bad_notify_target_is_refused_in_one_line_and_creates_nothing() {
    let sys = system();
    let out = sys.rota(&["jobset", "create", "x", "--notify", "ftp://h/x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("http:// or https://"), "{err}");
    let out = sys.rota(&["jobset", "show", "x"]);
    assert!(!out.status.success(), "the jobset was not created");
    let out = sys.rota(&["jobset", "create", "x", "--notify", "http://h,on=sometimes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"sometimes\""), "{err}");
}

#[test]
fn config_webhooks_apply_to_every_run_and_a_jobs_own_to_its_runs() {
    let sys = system();
    let (everyone, builds) = (Receiver::start(), Receiver::start());
    let config = sys.path("jobs.yaml");
    std::fs::write(
        &config,
        format!(
            "notify:\n  - {{url: '{}', events: [success]}}\njobs:\n  build:\n    command: 'true'\n    notify:\n      - {{url: '{}', events: [success]}}\n",
            everyone.url(),
            builds.url()
        ),
    )
    .unwrap();
    let out = sys.rota(&["apply", &config.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sys.rota(&["trigger", "build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sys.submit(&["--", "true"]);
    wait_delivered(&sys, 3);
    let names = |r: &Receiver| -> Vec<String> {
        let mut v: Vec<String> = r
            .received()
            .iter()
            .map(|x| x.json()["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&builds), ["build"]);
    assert_eq!(names(&everyone).len(), 2);
    assert!(names(&everyone).contains(&"build".to_string()));
    // Unsigned without a secret_file.
    assert!(builds.received()[0]
        .headers
        .get("x-rota-signature-256")
        .is_none());
    let audit = sys.json(&["audit"]);
    let methods: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["Submit", "Trigger", "Apply"], "{audit}");
}

#[test]
fn a_bad_public_url_stops_the_coordinator_before_it_listens_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bins!().coordinator)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "coord:7878",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no address announced");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--public-url must be an http:// or https:// URL"),
        "{err}"
    );
}
