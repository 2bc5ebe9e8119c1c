//! Real binaries: `rota submit --artifact` on one host, `--same-agent-as` sticky to it,
//! `rota artifacts RUN` lists and `--get PATH` downloads byte-identical, `rota show` prints the
//! return data.

use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::System;

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn artifacts_are_listed_and_downloaded_and_a_sticky_step_reuses_the_run_dir() {
    let mut sys = System::start(bins!());
    sys.start_agent("host-a", 1, &["--group", "dump"]);
    sys.start_agent("host-b", 1, &["--group", "pack"]);
    sys.wait_agents(&["host-a", "host-b"]);

    let dump = sys.submit(&[
        "--group",
        "dump",
        "--artifact",
        "db1.sql",
        "--shell",
        "--",
        "seq 1 200000 > db1.sql; echo '{\"rows\": 200000}' > return_data.json",
    ]);
    let dump_no = dump["number"].as_u64().unwrap().to_string();
    let restore = sys.submit(&[
        "--same-agent-as",
        &dump_no,
        "--shell",
        "--",
        "wc -l < db1.sql; echo $AGENT_NAME",
    ]);
    let restore_no = restore["number"].as_u64().unwrap().to_string();
    let done = sys.wait_state(&restore_no, "success", DEADLINE);
    assert_eq!(done["agent"], "host-a");
    let dump = sys.show(&dump_no);
    assert_eq!(dump["return_data"]["rows"], 200000);
    let listed = sys.json(&["artifacts", &dump_no]);
    assert_eq!(listed[0]["path"], "db1.sql", "{listed}");

    let to = sys.path("got.sql");
    let out = sys.rota(&[
        "artifacts",
        &dump_no,
        "--get",
        "db1.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: String = (1..=200000).map(|n| format!("{n}\n")).collect();
    assert_eq!(std::fs::read_to_string(&to).unwrap(), expected);

    let out = sys.rota(&["artifacts", &dump_no, "--get", "nope.sql"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("rota: run {dump_no} has no artifact \"nope.sql\"")
    );
    let logs = sys.rota(&["logs", &restore_no]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "200000\nhost-a\n");
    let shown = sys.rota(&["-o", "table", "show", &dump_no]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("\nreturn data:\n  {\n    \"rows\": 200000\n  }\n"),
        "{text}"
    );
    assert!(text.contains("db1.sql"), "{text}");
}
