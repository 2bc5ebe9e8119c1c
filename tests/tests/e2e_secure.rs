//! Real binaries over TLS with a shared token: the coordinator serves rustls with a test CA's
//! certificate and requires the token; an agent and the CLI that have both run a job end to
//! end, and a CLI or agent without the token is refused with one clear line, before anything
//! runs. The run's environment does not carry the token.
//!
//! A run is the attacker in the `*_from_inside_a_run` tests: it tries every way to the agent's
//! token (its environment, the agent's /proc entries, the token file, the CLI with whatever it
//! found) and prints what it got. Credentials by role are checked with real clients too.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;
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
fn a_run_uploads_an_artifact_over_tls_with_its_capability_and_no_token() {
    let mut sys = secure_system();
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let script = format!(
        "test -z \"$ROTA_TOKEN$ROTA_TOKEN_FILE\" && echo uploaded > up.txt && {} artifact upload up.txt",
        bins!().rota
    );
    let run = sys.submit(&["--shell", "--", &script]);
    let n = run["number"].to_string();
    let done = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_eq!(done["state"], "success", "{done}");
    let logs = sys.rota(&["logs", &n]);
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        format!("up.txt (9 bytes) kept with run {n}\n")
    );
    let listed = sys.json(&["artifacts", &n]);
    assert_eq!(listed[0]["path"], "up.txt", "{listed}");
    assert_eq!(listed[0]["size"], 9, "{listed}");
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

/// The probe a run makes from inside: one line per leak path, saying what it got. `$URL`,
/// `$CA` and `$RB` (the rota binary) come from the run's own environment. The agent's own
/// `ROTA_*` variables are counted; `ROTA_ARTIFACT_*` are the run's own capability for
/// `rota artifact upload` (no token: the next line checks the token is nowhere in it).
const PROBE: &str = r#"
echo "uid=$(id -u) home=$HOME user=$USER logname=$LOGNAME"
echo "rota vars: $(env | grep '^ROTA_' | grep -vc '^ROTA_ARTIFACT_')"
env | grep -v '^SECRET=' | grep -q "$SECRET" && echo "env: has the token"
echo "own /proc owner: $(stat -c %u /proc/$$)"
if cat /proc/$PPID/environ >/dev/null 2>&1; then echo "environ: read"; else echo "environ: refused"; fi
if (exec 3</proc/$PPID/mem) 2>/dev/null; then echo "mem: opened"; else echo "mem: refused"; fi
w=refused
for p in /proc/[0-9]*; do
  if [ "$(cat $p/comm 2>/dev/null)" = rota-watchdog ] && cat $p/environ >/dev/null 2>&1; then w=read; fi
done
echo "watchdog environ: $w"
tr '\0' '\n' </proc/$PPID/cmdline | grep -q "$SECRET" && echo "cmdline: has the token"
file=$(tr '\0' '\n' </proc/$PPID/cmdline | grep -A1 -x -e --token-file | tail -n 1)
if [ -n "$file" ]; then
  if cat "$file" >/dev/null 2>&1; then echo "token file: read"; else echo "token file: refused"; fi
  if "$RB" --coordinator "$URL" --ca "$CA" --token-file "$file" runs >/dev/null 2>&1; then echo "cli with the file: accepted"; else echo "cli with the file: refused"; fi
fi
tok=$(tr '\0' '\n' </proc/$PPID/environ 2>/dev/null | sed -n 's/^ROTA_TOKEN=//p')
if ROTA_TOKEN="${ROTA_TOKEN:-$tok}" "$RB" --coordinator "$URL" --ca "$CA" runs >/dev/null 2>&1; then echo "cli: accepted"; else echo "cli: refused"; fi
echo probe > probe.out
if "$RB" artifact upload probe.out >/dev/null 2>&1; then echo "own upload: accepted"; else echo "own upload: refused"; fi
"#;

/// Submits [`PROBE`] and returns what the run printed.
fn probe_from_a_run(sys: &System) -> String {
    let url = format!("URL={}", sys.url);
    let ca = format!("CA={}", fixture("ca.pem"));
    let rb = format!("RB={}", sys.bins.rota);
    let secret = format!("SECRET={TOKEN}");
    let run = sys.submit(&[
        "--env", &url, "--env", &ca, "--env", &rb, "--env", &secret, "--shell", "--", PROBE,
    ]);
    let n = run["number"].to_string();
    let done = sys.wait_run(&n, DEADLINE, "final", |v| v["finished_at_ms"].is_u64());
    assert_eq!(done["state"], "success", "{done}");
    String::from_utf8_lossy(&sys.rota(&["logs", &n, "--stdout"]).stdout).into_owned()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

const NOBODY: u32 = 65534;

/// Lets `nobody` through the test's temp dir (only the files it must reach).
fn open_to_nobody(sys: &System) {
    std::fs::set_permissions(sys.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn with_run_as_the_token_is_out_of_reach_from_inside_a_run() {
    if !is_root() {
        eprintln!(
            "skipped: --run-as needs root, and this test runs as uid {}",
            nix::unistd::geteuid()
        );
        return;
    }
    let mut sys = secure_system();
    sys.client_env[0] = ("ROTA_TOKEN".into(), TOKEN.into());
    // The agent's token file, as a deployment has it: root's, mode 0600, in a directory
    // anyone may enter, named on the agent's command line.
    let secrets = tempfile::tempdir().unwrap();
    std::fs::set_permissions(secrets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let token_file = secrets.path().join("agent.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token_flag = token_file.display().to_string();
    let url = sys.url.clone();
    sys.start_agent_tuned(
        &url,
        "a",
        1,
        &["--token-file", &token_flag, "--run-as", "nobody"],
        |cmd| {
            cmd.env_remove("ROTA_TOKEN");
        },
    );
    sys.wait_agents(&["a"]);

    let seen = probe_from_a_run(&sys);

    assert_eq!(
        seen,
        format!(
            "uid={NOBODY} home=/nonexistent user=nobody logname=nobody\n\
             rota vars: 0\n\
             own /proc owner: {NOBODY}\n\
             environ: refused\n\
             mem: refused\n\
             watchdog environ: refused\n\
             token file: refused\n\
             cli with the file: refused\n\
             cli: refused\n\
             own upload: accepted\n"
        ),
        "what a run could reach"
    );
}

#[test]
fn an_agent_of_the_runs_own_user_keeps_its_token_from_inside_a_run() {
    let mut sys = secure_system();
    // The token in the agent's environment only (a file would be readable by the runs of its
    // own user: that set-up needs --run-as).
    sys.client_env[0] = ("ROTA_TOKEN".into(), TOKEN.into());
    let url = sys.url.clone();
    let uid = if is_root() {
        // The agent as an ordinary user, the runs as the same one.
        open_to_nobody(&sys);
        std::fs::remove_file(sys.path("token")).unwrap();
        let spool = sys.path("spool-same");
        std::fs::create_dir(&spool).unwrap();
        std::os::unix::fs::chown(&spool, Some(NOBODY), Some(NOBODY)).unwrap();
        NOBODY
    } else {
        nix::unistd::geteuid().as_raw()
    };
    sys.start_agent_tuned(&url, "same", 1, &[], |cmd| {
        if is_root() {
            use std::os::unix::process::CommandExt as _;
            cmd.uid(NOBODY).gid(NOBODY);
        }
    });
    sys.wait_agents(&["same"]);

    let seen = probe_from_a_run(&sys);

    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines[0].starts_with(&format!("uid={uid} ")), "{seen}");
    assert_eq!(
        lines[1..],
        [
            "rota vars: 0",
            // The run itself is an ordinary, dumpable process of its user...
            &format!("own /proc owner: {uid}"),
            // ...but the agent, of the same user, is not.
            "environ: refused",
            "mem: refused",
            // The watchdog is a fork of the agent, with its memory: not dumpable either.
            "watchdog environ: refused",
            "cli: refused",
            // What a run may do with the coordinator: upload its own artifacts, with the
            // attempt's capability over the agent's TLS.
            "own upload: accepted",
        ],
        "what a run could reach: {seen}"
    );
}

#[test]
fn run_as_without_root_is_refused_in_one_line() {
    let sys = secure_system();
    let mut cmd = Command::new(sys.bins.agent);
    cmd.args([
        "--coordinator",
        &sys.url,
        "--name",
        "x",
        "--run-as",
        "nobody",
    ])
    .args(["--spool-dir", "/tmp/rota-agent-run-as-refused"])
    .env("RUST_LOG", "error");
    if is_root() {
        use std::os::unix::process::CommandExt as _;
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("rota-agent: --run-as needs root"), "{err}");
}

/// A coordinator (TLS) with a credential per role; the token files are in the temp dir.
fn system_with_roles() -> System {
    let secrets = tempfile::tempdir().unwrap();
    for (name, token) in [
        ("agent", "agent-t0ken"),
        ("read", "read-t0ken"),
        ("admin", "admin-t0ken"),
    ] {
        std::fs::write(
            secrets.path().join(format!("{name}.token")),
            format!("{token}\n"),
        )
        .unwrap();
    }
    let creds = secrets.path().join("credentials.yaml");
    std::fs::write(
        &creds,
        "- {name: farm, role: agent, token_file: agent.token}\n\
         - {name: dashboard, role: read, token_file: read.token}\n\
         - {name: alice, role: admin, token_file: admin.token}\n",
    )
    .unwrap();
    let creds = creds.display().to_string();
    let (cert, key) = (fixture("server.pem"), fixture("server.key"));
    let mut flags = STEADY.to_vec();
    flags.extend([
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--credentials",
        &creds,
    ]);
    let mut sys = System::start_with(bins!(), &flags);
    sys.url = format!("https://127.0.0.1:{}", sys.addr.port());
    sys.client_env = vec![
        ("ROTA_TOKEN".into(), "admin-t0ken".into()),
        ("ROTA_CA".into(), fixture("ca.pem")),
    ];
    sys
}

/// `rota ARGS` with `token`: (success, stderr).
fn rota_with(sys: &System, token: &str, args: &[&str]) -> (bool, String) {
    let out = sys
        .rota_command(args)
        .env("ROTA_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_role_may_do_its_part_and_nothing_more() {
    let mut sys = system_with_roles();
    sys.client_env[0].1 = "agent-t0ken".into();
    sys.start_agent("a", 1, &[]);
    sys.client_env[0].1 = "admin-t0ken".into();
    sys.wait_agents(&["a"]);

    // admin: submits, and the agent (agent role) runs it.
    let run = sys.submit(&["--shell", "--", "echo hi; sleep 30"]);
    let n = run["number"].to_string();
    sys.wait_state(&n, "running", DEADLINE);

    // read: looks, but may not change anything.
    let (ok, err) = rota_with(&sys, "read-t0ken", &["runs"]);
    assert!(ok, "{err}");
    assert!(rota_with(&sys, "read-t0ken", &["logs", &n]).0);
    let (ok, err) = rota_with(&sys, "read-t0ken", &["status"]);
    assert!(ok, "a read token may run rota status: {err}");
    for args in [&["submit", "--", "true"][..], &["cancel", &n]] {
        let (ok, err) = rota_with(&sys, "read-t0ken", args);
        assert!(!ok, "{args:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("\"dashboard\" has role read") && err.contains("ControlService/"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        sys.show(&n)["state"],
        "running",
        "the read token cancelled nothing"
    );

    // agent: may connect, nothing else.
    let (ok, err) = rota_with(&sys, "agent-t0ken", &["runs"]);
    assert!(!ok && err.contains("role agent"), "{err}");
    let (ok, err) = rota_with(&sys, "agent-t0ken", &["submit", "--", "true"]);
    assert!(!ok && err.contains("role agent"), "{err}");

    // A wrong token is unauthenticated; admin cancels.
    let (ok, err) = rota_with(&sys, "guess", &["runs"]);
    assert!(!ok && err.contains("missing or wrong token"), "{err}");
    assert!(rota_with(&sys, "admin-t0ken", &["cancel", &n]).0);
    sys.wait_state(&n, "cancelled", DEADLINE);
    assert_eq!(
        sys.json(&["runs"]).as_array().unwrap().len(),
        1,
        "one run, submitted by admin"
    );
}

#[test]
fn an_agent_with_a_client_token_exits_with_one_line_naming_its_role() {
    let mut sys = system_with_roles();
    sys.client_env[0].1 = "read-t0ken".into();
    sys.start_agent("reader", 1, &[]);
    let code = until(DEADLINE, "the agent to exit", || {
        sys.agent("reader").try_exit_code()
    });
    assert_eq!(code, Some(1));
    let log = std::fs::read_to_string(sys.path("agent-reader.log")).unwrap_or_default();
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("rota-agent: coordinator")
            && last.contains("role read")
            && last.contains("AgentService/Connect"),
        "{log}"
    );
}

#[test]
fn a_credentials_file_and_a_shared_token_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("c.yaml");
    std::fs::write(&creds, "- {name: a, role: admin, token_sha256: 0000000000000000000000000000000000000000000000000000000000000000}\n").unwrap();
    let out = Command::new(bins!().coordinator)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--credentials")
        .arg(&creds)
        .env("ROTA_TOKEN", "x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing announced: {out:?}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("ROTA_TOKEN is set and --credentials is given"),
        "{err}"
    );
}
