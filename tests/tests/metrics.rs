//! `GET /metrics` on the coordinator's port: the values match what happened, the exposition
//! passes `promtool check metrics`, a real Prometheus server scrapes it, a token is needed
//! when credentials are set, and gRPC beside it is unchanged.

use std::time::{Duration, Instant};

use rota_coordinator::CoordinatorConfig;
use rota_proto as pb;
use rota_proto::access::{Credential, Credentials, Role};
use rota_tests::http::{get, sample};
use rota_tests::tools::tool;
use rota_tests::{eventually, sh, wait_jobset, Cluster, Coordinator};

fn submit(jobset: &str, runs: Vec<pb::RunSpec>) -> pb::SubmitRequest {
    pb::SubmitRequest {
        jobset: jobset.into(),
        runs,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_runs_that_finished() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a1", 2, &[]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    c.submit(submit(
        "m",
        vec![
            sh("ok1", "true"),
            sh("ok2", "echo hello"),
            sh("bad", "exit 3"),
        ],
    ))
    .await
    .expect("submit");
    wait_jobset(&mut c, "m", Duration::from_secs(20)).await;

    let addr = cluster.coordinator.addr;
    // Finished runs are counted when their result is committed; the agent's slot is freed in
    // the same batch.
    let text = eventually(
        Duration::from_secs(10),
        "all three counted",
        || async move {
            let text = get(addr, "/metrics", &[]).await.text();
            (sample(&text, "rota_agent_slots_busy", "") == Some(0.0)).then_some(text)
        },
    )
    .await;
    let s = |name: &str, labels: &str| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}} in:\n{text}"))
    };
    assert_eq!(s("rota_runs_finished_total", "state=\"success\""), 2.0);
    assert_eq!(s("rota_runs_finished_total", "state=\"errored\""), 1.0);
    assert_eq!(s("rota_runs_submitted_total", ""), 3.0);
    assert_eq!(s("rota_runs", "state=\"success\""), 2.0);
    assert_eq!(s("rota_runs", "state=\"errored\""), 1.0);
    assert_eq!(s("rota_runs", "state=\"pending\""), 0.0);
    assert_eq!(s("rota_agents", "state=\"connected\""), 1.0);
    assert_eq!(s("rota_agent_slots", ""), 2.0);
    assert_eq!(s("rota_dispatch_latency_seconds_count", ""), 3.0);
    assert_eq!(
        s("rota_run_duration_seconds_count", "state=\"success\""),
        2.0
    );
    assert!(s("rota_log_stored_bytes_total", "") >= "hello\n".len() as f64);
    assert!(s("rota_store_commit_seconds_count", "") >= 1.0);
    assert_eq!(
        s(
            "rota_rpcs_total",
            "method=\"rota.v1.ControlService/Submit\",code=\"OK\""
        ),
        1.0
    );
    // A stream counts when it ends, with its final status.
    assert_eq!(
        s(
            "rota_rpcs_total",
            "method=\"rota.v1.ControlService/Wait\",code=\"OK\""
        ),
        1.0
    );
    // Nothing waits, and every reason class has its series.
    assert_eq!(s("rota_runs_waiting", "reason=\"queued\""), 0.0);
    assert_eq!(s("rota_runs_waiting", "reason=\"dependencies\""), 0.0);
    // No run ids in any label.
    let runs = c
        .list_runs(pb::ListRunsRequest {
            jobset: "m".into(),
            ..Default::default()
        })
        .await
        .expect("runs")
        .into_inner()
        .runs;
    for run in &runs {
        assert!(!text.contains(&run.id), "run id {} in the metrics", run.id);
    }

    if let Some(promtool) = tool("promtool", "prometheus") {
        let file = cluster.dir.path().join("scrape.txt");
        std::fs::write(&file, &text).expect("write scrape");
        let out = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&file).expect("scrape file"))
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_runs_are_counted_by_reason_and_jobset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut coordinator = Coordinator::start(&dir.path().join("data"), |_| {}).await;
    let mut c = rota_tests::client(&coordinator.url).await;
    // No agent: every run waits for one.
    c.submit(submit(
        "q",
        (0..4).map(|i| sh(&format!("r{i}"), "true")).collect(),
    ))
    .await
    .expect("submit");
    let text = get(coordinator.addr, "/metrics", &[]).await.text();
    assert_eq!(
        sample(&text, "rota_runs_waiting", "reason=\"no_agent\""),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "rota_jobset_runs", "jobset=\"q\",state=\"pending\""),
        Some(4.0)
    );
    assert_eq!(sample(&text, "rota_runs", "state=\"pending\""), Some(4.0));

    // A scraper asking for OpenMetrics gets it.
    let om = get(
        coordinator.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    )
    .await;
    assert!(om
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/openmetrics-text"));
    assert!(om.text().trim_end().ends_with("# EOF"));
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_needs_a_token_whose_role_may_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = Credentials::new(vec![
        Credential::with_token("scraper", Role::Read, "read-token-0123456789").expect("read"),
        Credential::with_token("agent", Role::Agent, "agent-token-0123456789").expect("agent"),
    ])
    .expect("credentials");
    let mut coordinator =
        Coordinator::start(&dir.path().join("data"), |c: &mut CoordinatorConfig| {
            c.credentials = credentials
        })
        .await;
    let addr = coordinator.addr;
    let without = get(addr, "/metrics", &[]).await;
    assert_eq!(without.status, 401, "{}", without.text());
    assert!(without.header("www-authenticate").is_some());
    let wrong = get(addr, "/metrics", &[("Authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status, 401);
    let agent = get(
        addr,
        "/metrics",
        &[("Authorization", "Bearer agent-token-0123456789")],
    )
    .await;
    assert_eq!(
        agent.status,
        403,
        "an agent's token may not read: {}",
        agent.text()
    );
    let read = get(
        addr,
        "/metrics",
        &[("Authorization", "Bearer read-token-0123456789")],
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.text());
    assert!(read.text().contains("rota_runs{state=\"pending\"} 0"));
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_404_and_an_unknown_grpc_method_unimplemented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut coordinator = Coordinator::start(&dir.path().join("data"), |_| {}).await;
    let missing = get(coordinator.addr, "/nope", &[]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("/nope"));

    let channel = tonic::transport::Endpoint::from_shared(coordinator.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary::<pb::StatusRequest, pb::StatusResponse, _>(
            tonic::Request::new(pb::StatusRequest {}),
            "/rota.v1.ControlService/NoSuchMethod"
                .parse()
                .expect("path"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("an unknown method");
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    // Known calls still work on the same port, and the invented path is no label.
    let mut c = rota_tests::client(&coordinator.url).await;
    c.status(pb::StatusRequest {}).await.expect("status");
    let text = get(coordinator.addr, "/metrics", &[]).await.text();
    assert!(!text.contains("NoSuchMethod"), "{text}");
    assert_eq!(
        sample(
            &text,
            "rota_rpcs_total",
            "method=\"unknown\",code=\"Unimplemented\""
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "rota_rpcs_total",
            "method=\"rota.v1.ControlService/Status\",code=\"OK\""
        ),
        Some(1.0)
    );
    coordinator.stop().await;
}

/// A Prometheus server, stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_server_scrapes_the_runs_finished() {
    let Some(prometheus) = tool("prometheus", "prometheus") else {
        return;
    };
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a1", 4, &[]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    c.submit(submit(
        "p",
        (0..5).map(|i| sh(&format!("r{i}"), "true")).collect(),
    ))
    .await
    .expect("submit");
    wait_jobset(&mut c, "p", Duration::from_secs(20)).await;

    let dir = cluster.dir.path();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: rota\n    static_configs:\n      - targets: ['{}']\n",
            cluster.coordinator.addr
        ),
    )
    .expect("write config");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let server = Prometheus {
        child: std::process::Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
        addr,
    };
    let started = Instant::now();
    let query = "/api/v1/query?query=sum(rota_runs_finished_total)";
    let value = eventually(
        Duration::from_secs(60),
        "Prometheus to report 5 finished runs",
        || {
            let addr = server.addr;
            async move {
                // Not listening yet: try again.
                tokio::net::TcpStream::connect(addr).await.ok()?;
                let body = get(addr, query, &[]).await.text();
                let json: serde_json::Value = serde_json::from_str(&body).ok()?;
                let value = json["data"]["result"][0]["value"][1].as_str()?.to_string();
                (value == "5").then_some(value)
            }
        },
    )
    .await;
    assert_eq!(value, "5");
    eprintln!(
        "Prometheus reported the count after {:?}",
        started.elapsed()
    );
    drop(server);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_by_state_survive_a_restart_and_counters_start_again() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a1", 2, &[]);
    cluster.wait_agents(1).await;
    let mut c = cluster.client().await;
    c.submit(submit(
        "r",
        (0..3).map(|i| sh(&format!("r{i}"), "true")).collect(),
    ))
    .await
    .expect("submit");
    wait_jobset(&mut c, "r", Duration::from_secs(20)).await;
    for a in &mut cluster.agents {
        a.stop().await;
    }
    cluster.coordinator.stop().await;

    let data = cluster.dir.path().join("data");
    let mut coordinator = Coordinator::start(&data, |_| {}).await;
    let mut c = rota_tests::client(&coordinator.url).await;
    // One more, pending (no agent now).
    c.submit(submit("r2", vec![sh("later", "true")]))
        .await
        .expect("submit");
    let text = get(coordinator.addr, "/metrics", &[]).await.text();
    assert_eq!(sample(&text, "rota_runs", "state=\"success\""), Some(3.0));
    assert_eq!(sample(&text, "rota_runs", "state=\"pending\""), Some(1.0));
    assert_eq!(
        sample(&text, "rota_runs_finished_total", "state=\"success\""),
        Some(0.0)
    );
    assert_eq!(sample(&text, "rota_runs_submitted_total", ""), Some(1.0));
    coordinator.stop().await;
}

/// The data dir's footprint, in `/metrics` and `rota status` alike: the store's size, the log
/// and artifact bytes held, the free space and the oldest run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_and_status_show_the_data_dirs_footprint() {
    let mut cluster = Cluster::start().await;
    cluster.add_agent("a1", 1, &[]);
    let mut c = cluster.client().await;
    let mut run = sh(
        "dump",
        "mkdir out && head -c 3000 /dev/zero > out/a.bin && echo dumped",
    );
    run.artifacts = vec!["out/*".into()];
    let submitted = c.submit(submit("f", vec![run])).await.unwrap().into_inner();
    wait_jobset(&mut c, "f", Duration::from_secs(20)).await;
    let status = c.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.artifact_bytes, 3000, "{status:?}");
    assert_eq!(status.log_bytes, "dumped\n".len() as u64, "{status:?}");

    let text = get(cluster.coordinator.addr, "/metrics", &[]).await.text();
    let s = |name: &str| sample(&text, name, "").unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    assert_eq!(s("rota_artifact_bytes"), 3000.0);
    assert_eq!(s("rota_log_bytes"), status.log_bytes as f64);
    assert_eq!(
        s("rota_oldest_run_submitted_timestamp_seconds"),
        (submitted.runs[0].submitted_at_ms / 1000) as f64
    );
    let store = s("rota_store_size_bytes");
    assert!(store > 0.0, "{text}");
    assert!(
        (store - status.store_bytes as f64).abs() < (1 << 20) as f64,
        "{store} vs status {}",
        status.store_bytes
    );
    let free = s("rota_data_dir_free_bytes");
    assert!(
        free > 0.0 && (free - status.data_dir_free_bytes as f64).abs() < (256 << 20) as f64,
        "{free} vs status {}",
        status.data_dir_free_bytes
    );
    cluster.stop().await;
}
