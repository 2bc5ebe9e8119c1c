//! Real binaries over TLS with a shared token: the coordinator serves rustls with a test CA's
//! certificate and requires the token; an agent and the CLI that have both run a job end to
//! end, and a CLI or agent without the token is refused with one clear line, before anything
//! runs. The run's environment does not carry the token.

use std::path::PathBuf;
use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::{until, System, STEADY};

const DEADLINE: Duration = Duration::from_secs(30);
const TOKEN: &str = "t0ken-for-tests";

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name);
    path.display().to_string()
}

/// A coordinator on https://127.0.0.1:PORT requiring [`TOKEN`], with agents and the CLI
/// configured for it through `ROTA_TOKEN_FILE` and `ROTA_CA`.
fn secure_system() -> System {
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.display().to_string();
    let (cert, key) = (fixture("server.pem"), fixture("server.key"));
    let mut flags = STEADY.to_vec();
    flags.extend(["--tls-cert", &cert, "--tls-key", &key]);
    flags.extend(["--token-file", &token_file]);
    let mut sys = System::start_with(bins!(), &flags);
    // The token file must outlive the coordinator's start only; keep it for the clients.
    let kept = sys.path("token");
    std::fs::copy(&token_file, &kept).unwrap();
    sys.url = format!("https://127.0.0.1:{}", sys.addr.port());
    sys.client_env = vec![
        ("ROTA_TOKEN_FILE".into(), kept.display().to_string()),
        ("ROTA_CA".into(), fixture("ca.pem")),
    ];
    sys
}

#[test]
fn a_job_runs_end_to_end_over_tls_with_the_token() {
    let mut sys = secure_system();
    // The token straight from ROTA_TOKEN this time: the agent must not pass it on to the run.
    sys.client_env[0] = ("ROTA_TOKEN".into(), TOKEN.into());
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let run = sys.submit(&[
        "--shell",
        "--",
        "echo secure on $AGENT_NAME; echo token=${ROTA_TOKEN:-none}",
    ]);
    let n = run["number"].to_string();
    let done = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_eq!(done["state"], "success", "{done}");
    let logs = sys.rota(&["logs", &n]);
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "secure on a\ntoken=none\n"
    );
}

#[test]
fn a_client_without_the_token_is_refused_in_one_line() {
    let mut sys = secure_system();
    sys.client_env.retain(|(k, _)| k != "ROTA_TOKEN_FILE");
    let out = sys.rota(&["runs"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("missing or wrong token"), "{err}");

    // Plain http to a TLS port does not get through either.
    let plain = std::process::Command::new(sys.bins.rota)
        .args(["--coordinator", &format!("http://{}", sys.addr), "runs"])
        .env("ROTA_TOKEN", TOKEN)
        .env_remove("ROTA_CA")
        .output()
        .unwrap();
    assert!(!plain.status.success());
}

#[test]
fn an_agent_with_a_wrong_token_exits_with_a_clear_error() {
    let mut sys = secure_system();
    let wrong = sys.path("wrong-token");
    std::fs::write(&wrong, "nope\n").unwrap();
    sys.client_env[0].1 = wrong.display().to_string();
    sys.start_agent("intruder", 1, &[]);
    let code = until(DEADLINE, "the agent to exit", || {
        sys.agent("intruder").try_exit_code()
    });
    assert_ne!(code, Some(0));
    let log = std::fs::read_to_string(sys.path("agent-intruder.log")).unwrap_or_default();
    assert!(log.contains("refused this agent's token"), "{log}");
}

#[test]
fn a_bad_tls_key_stops_the_coordinator_before_it_listens_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_key = dir.path().join("bad.key");
    std::fs::write(&bad_key, "not a key\n").unwrap();
    let out = std::process::Command::new(bins!().coordinator)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--tls-cert", &fixture("server.pem"), "--tls-key"])
        .arg(&bad_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing announced: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.key"), "{err}");
    assert!(err.contains("TLS certificate or key"), "{err}");
}
