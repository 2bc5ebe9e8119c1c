//! The audit trail with real binaries and named tokens: who submitted and who cancelled a run
//! is recorded with the credential's name, role and peer, listed by `rota audit` (read role)
//! and shown by `rota show`.

use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::{System, STEADY};

const DEADLINE: Duration = Duration::from_secs(30);

/// A coordinator with named tokens: `ci` and `ops-token` (admin), `viewer` (read), `farm`
/// (agent), and one agent.
fn system_with_tokens() -> System {
    let secrets = tempfile::tempdir().unwrap();
    let mut creds = String::new();
    for (name, role) in [
        ("farm", "agent"),
        ("viewer", "read"),
        ("ci", "admin"),
        ("ops-token", "admin"),
    ] {
        let file = secrets.path().join(format!("{name}.token"));
        std::fs::write(&file, format!("{name}-secret\n")).unwrap();
        creds.push_str(&format!(
            "- {{name: {name}, role: {role}, token_file: {}}}\n",
            file.display()
        ));
    }
    let file = secrets.path().join("credentials.yaml");
    std::fs::write(&file, creds).unwrap();
    let file = file.display().to_string();
    let mut flags = STEADY.to_vec();
    flags.extend(["--credentials", &file]);
    let mut sys = System::start_with(bins!(), &flags);
    sys.client_env = vec![("ROTA_TOKEN".into(), "farm-secret".into())];
    sys.start_agent("a", 1, &[]);
    sys.client_env[0].1 = "ci-secret".into();
    sys.wait_agents(&["a"]);
    sys
}

#[test]
fn the_audit_trail_names_the_token_that_cancelled_a_run() {
    let mut sys = system_with_tokens();
    let run = sys.submit(&["--", "sleep", "600"]);
    let n = run["number"].to_string();
    sys.wait_state(&n, "running", DEADLINE);
    sys.client_env[0].1 = "ops-token-secret".into();
    let out = sys.rota(&["cancel", &n]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sys.wait_state(&n, "cancelled", DEADLINE);

    // The read role may look at the trail.
    sys.client_env[0].1 = "viewer-secret".into();
    let entries = sys.json(&["audit", "--run", &n]);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "submit and cancel: {entries:?}");
    let (cancel, submit) = (&entries[0], &entries[1]);
    assert_eq!(cancel["method"], "Cancel");
    assert_eq!(cancel["caller"], "ops-token");
    assert_eq!(cancel["role"], "admin");
    assert!(
        cancel["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{cancel}"
    );
    assert_eq!(cancel["target"], format!("run {n}"));
    assert_eq!(cancel["runs"], serde_json::json!([run["number"]]));
    assert_eq!(submit["method"], "Submit");
    assert_eq!(submit["caller"], "ci");
    assert_eq!(submit["target"], format!("jobset default, run {n}"));

    let show = sys.rota(&["show", &n]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("submitted by ci at "), "{text}");
    assert!(text.contains("cancelled by ops-token at "), "{text}");
    // `-o json` carries the same history, oldest first, beside the run's fields.
    let shown = sys.json(&["show", &n]);
    assert_eq!(shown["number"], run["number"]);
    let history = shown["history"].as_array().expect("a history array");
    let said: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e["method"].as_str().unwrap(), e["caller"].as_str().unwrap()))
        .collect();
    assert_eq!(said, [("Submit", "ci"), ("Cancel", "ops-token")], "{shown}");
    assert!(history[1]["peer"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // A change refused by its role leaves no entry; --since in the future lists nothing.
    let out = sys.rota(&["cancel", &n]);
    assert!(!out.status.success());
    let all = sys.json(&["audit"]);
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let later = sys.json(&["audit", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(later, serde_json::json!([]));
}

#[test]
fn jobset_group_and_drain_changes_are_audited_with_their_target() {
    let sys = system_with_tokens();
    for args in [
        &["jobset", "create", "nightly", "--parallel", "2"][..],
        &["jobset", "parallel", "nightly", "3"],
        &["group", "set", "db", "--max", "4"],
        &["drain", "a"],
    ] {
        let out = sys.rota(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let entries = sys.json(&["audit"]);
    let got: Vec<(String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("CreateJobset", "jobset nightly"),
        ("SetParallel", "jobset nightly parallel 3"),
        ("SetGroupMax", "group db max 4"),
        ("Drain", "agent a"),
    ];
    assert_eq!(
        got,
        want.map(|(m, t)| (m.to_string(), t.to_string())),
        "{entries}"
    );
    assert!(entries
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["caller"] == "ci"));
}
