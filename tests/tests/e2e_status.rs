//! `rota status` against a real in-process coordinator, through the real `rota` binary; and the
//! agent protocol-version handshake (a newer agent refused naming both versions, an agent that
//! sends no version accepted so a rolling upgrade can go coordinator first).

use std::time::{Duration, Instant};

use rota_proto as pb;
use rota_tests::{bins, eventually, procs, sh, Cluster, RawAgent};

const DEADLINE: Duration = Duration::from_secs(10);

/// `rota --coordinator URL ARGS...`, run off the async workers; its stdout, after checking it
/// succeeded.
async fn rota(url: &str, args: &[&str]) -> String {
    let (url, args) = (
        url.to_string(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        procs::rota(bins!().rota, &url, &args)
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "rota failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn status_json(url: &str) -> serde_json::Value {
    serde_json::from_str(&rota(url, &["-o", "json", "status"]).await).unwrap()
}

fn hello(name: &str, protocol_version: u32) -> pb::Hello {
    pb::Hello {
        name: name.into(),
        slots: 1,
        protocol_version,
        session_id: format!("s-{name}"),
        ..Default::default()
    }
}

fn store_bytes(cluster: &Cluster) -> u64 {
    ["rota.db", "rota.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(cluster.dir.path().join("data").join(f)).map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_versions_store_agents_queue_and_runs_by_state() {
    let began = Instant::now();
    let cluster = Cluster::start().await;
    let url = cluster.coordinator.url.clone();
    let mut c = cluster.client().await;

    // b drains before anything is submitted, so it holds no run; a takes one run of three.
    let b = RawAgent::hello(&url, hello("b", rota_proto::PROTOCOL_VERSION))
        .await
        .unwrap();
    b.send(pb::agent_message::Msg::Heartbeat(pb::Heartbeat {
        sent_at_ms: 1,
        draining: true,
    }))
    .await;
    eventually(DEADLINE, "agent b draining", || {
        let mut c = c.clone();
        async move {
            let agents = c.list_agents(pb::ListAgentsRequest {}).await.ok()?;
            agents
                .into_inner()
                .agents
                .iter()
                .any(|a| a.name == "b" && a.state == "draining")
                .then_some(())
        }
    })
    .await;
    let mut a = RawAgent::connect(&url, "a", 1).await;
    let runs = c
        .submit(pb::SubmitRequest {
            jobset: "s".into(),
            runs: vec![sh("r1", "true"), sh("r2", "true"), sh("r3", "true")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    a.assigned().await;

    let before = store_bytes(&cluster);
    let s = status_json(&url).await;
    let after = store_bytes(&cluster);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"), "{s}");
    assert_eq!(s["protocol_version"], rota_proto::PROTOCOL_VERSION, "{s}");
    assert_eq!(s["store_kind"], "sqlite", "{s}");
    let size = s["store_bytes"].as_u64().unwrap();
    assert!(
        size > 0 && (before.min(after)..=before.max(after)).contains(&size),
        "store_bytes {size}, files {before}..{after}"
    );
    let free = s["data_dir_free_bytes"].as_u64().unwrap();
    let measured = rota_coordinator::datadir::free_bytes(cluster.dir.path()).unwrap();
    assert!(
        free > 0 && free.abs_diff(measured) < 256 << 20,
        "{free} vs {measured}"
    );
    let uptime = s["uptime_ms"].as_u64().unwrap();
    assert!(
        uptime as u128 <= began.elapsed().as_millis(),
        "uptime {uptime} ms is longer than the test"
    );
    assert_eq!(
        s["agents"],
        serde_json::json!({"connected": 1, "draining": 1})
    );
    assert_eq!(s["queue_depth"], 2, "{s}");
    assert_eq!(
        s["runs"],
        serde_json::json!({
            "pending": 2, "assigned": 1, "running": 0, "success": 0,
            "errored": 0, "cancelled": 0, "skipped": 0, "retired": 0,
        })
    );
    assert_eq!(s["oldest_run_submitted_ms"], runs[0].submitted_at_ms, "{s}");
    assert!(s["oldest_run_submitted"].is_string(), "{s}");

    let table = rota(&url, &["status"]).await;
    for line in [
        format!("version:     {}", env!("CARGO_PKG_VERSION")),
        format!("protocol:    {}", rota_proto::PROTOCOL_VERSION),
        "store:       sqlite".to_string(),
        "agents:      connected 1, draining 1".to_string(),
        "queue:       2 pending".to_string(),
        "runs:        pending 2, assigned 1".to_string(),
    ] {
        assert!(table.lines().any(|l| l == line), "no {line:?} in:\n{table}");
    }
    drop((a, b));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_an_empty_coordinator_has_no_oldest_run() {
    let cluster = Cluster::start().await;
    let s = status_json(&cluster.coordinator.url).await;
    assert_eq!(
        s["agents"],
        serde_json::json!({"connected": 0, "draining": 0})
    );
    assert_eq!(s["queue_depth"], 0, "{s}");
    assert!(
        s["runs"].as_object().unwrap().values().all(|n| n == 0),
        "{s}"
    );
    assert!(s["oldest_run_submitted_ms"].is_null(), "{s}");
    let table = rota(&cluster.coordinator.url, &["status"]).await;
    assert!(table.contains("runs:        none\n"), "{table}");
    assert!(table.contains("oldest run:  -\n"), "{table}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_agent_is_refused_naming_both_versions() {
    let cluster = Cluster::start().await;
    let ours = rota_proto::PROTOCOL_VERSION;
    let err = RawAgent::hello(&cluster.coordinator.url, hello("new", ours + 1))
        .await
        .err()
        .expect("a newer agent is refused");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        format!(
            "agent \"new\" speaks rota protocol version {}, this coordinator speaks version {ours}: upgrade the coordinator first",
            ours + 1
        )
    );
    let s = status_json(&cluster.coordinator.url).await;
    assert_eq!(
        s["agents"]["connected"], 0,
        "the refused agent is not in: {s}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_sends_no_protocol_version_is_accepted_and_works() {
    let cluster = Cluster::start().await;
    let mut old = RawAgent::hello(&cluster.coordinator.url, hello("old", 0))
        .await
        .expect("an agent from before the version check is accepted");
    let mut c = cluster.client().await;
    c.submit(pb::SubmitRequest {
        jobset: "s".into(),
        runs: vec![sh("r", "true")],
        ..Default::default()
    })
    .await
    .unwrap();
    let assign = old.assigned().await;
    assert!(!assign.run_id.is_empty(), "{assign:?}");
    let s = status_json(&cluster.coordinator.url).await;
    assert_eq!(s["agents"]["connected"], 1, "{s}");
    cluster.stop().await;
}
