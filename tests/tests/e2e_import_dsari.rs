//! Real binaries: `rota import dsari DSARI_DATA_DIR` brings a dsari history (its SQLite `runs`
//! table, built here with dsari's schema, and `runs/JOB/RUN_ID/output.txt`) into rota: the
//! runs show in `rota runs`/`show`/`logs`, count as the job's previous runs, and importing
//! again adds nothing. Output dsari reads compressed (`output.txt.gz`, `.xz`) is imported
//! unpacked.

use std::path::Path;
use std::time::Duration;

use rota_tests::bins;
use rota_tests::procs::{System, STEADY};

const DEADLINE: Duration = Duration::from_secs(30);
const R1: &str = "0b5e3a58-3d6c-4a47-9d2e-5f0c7a1e0001";
const R2: &str = "0b5e3a58-3d6c-4a47-9d2e-5f0c7a1e0002";
const R3: &str = "0b5e3a58-3d6c-4a47-9d2e-5f0c7a1e0003";
const R4: &str = "0b5e3a58-3d6c-4a47-9d2e-5f0c7a1e0004";

fn logs(sys: &System, id: &str) -> Vec<u8> {
    let out = sys.rota(&["logs", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// dsari's SQLite schema (dsari/database.py) and four runs of `backup`, plus one bad row.
fn dsari_history(dir: &Path, big: &[u8]) {
    let conn = rusqlite::Connection::open(dir.join("dsari.sqlite3")).unwrap();
    conn.execute_batch(
        "CREATE TABLE runs (job_name text, run_id text, schedule_time real, start_time real, \
         stop_time real, exit_code integer, trigger_type text, trigger_data text, run_data text);
         CREATE TABLE runs_running (job_name text, run_id text, schedule_time real, \
         start_time real, trigger_type text, trigger_data text, run_data text);",
    )
    .unwrap();
    // Inserted out of order: the import goes by stop time.
    let rows = [
        (R3, 3000.5, 0, "schedule", "{}"),
        (
            R1,
            1000.25,
            0,
            "file",
            r#"{"environment": {"GIT_COMMIT": "abc"}}"#,
        ),
        (R2, 2000.0, 2, "schedule", "{}"),
        (R4, 2500.0, 0, "schedule", "{}"),
        ("not-a-uuid", 2600.0, 0, "schedule", "{}"),
    ];
    for (id, stop, code, trigger, data) in rows {
        // R1 left return data (dsari keeps it in run_data).
        let run_data = if id == R1 {
            r#"{"return_data": {"artifact": "backup.tar", "size": 42}}"#
        } else {
            "{}"
        };
        conn.execute(
            "INSERT INTO runs VALUES ('backup', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                id,
                stop - 10.0,
                stop - 5.0,
                stop,
                code,
                trigger,
                data,
                run_data
            ],
        )
        .unwrap();
    }
    let output = |id: &str, bytes: &[u8]| {
        let d = dir.join("runs").join("backup").join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("output.txt"), bytes).unwrap();
    };
    output(R1, b"first\n");
    output(R2, b"second failed\n");
    // R3: longer than one request's output (4 MiB), so it goes in pieces.
    output(R3, big);
    // R4 has no output file (removed since): imported without output.
}

#[test]
fn import_dsari_brings_runs_and_logs_and_a_second_import_adds_nothing() {
    let dsari = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(4 << 20) + 1000)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    dsari_history(dsari.path(), &big);
    let cfg = tempfile::tempdir().unwrap();
    let main = cfg.path().join("rota.yaml");
    std::fs::write(
        &main,
        "jobs:\n  backup:\n    command: 'sh -c \"echo $PREVIOUS_GOOD_RUN_ID $PREVIOUS_BAD_RUN_ID $PREVIOUS_BAD_EXIT_CODE\"'\n",
    )
    .unwrap();
    let mut flags: Vec<&str> = STEADY.to_vec();
    flags.extend(["--config", main.to_str().unwrap()]);
    let mut sys = System::start_with(bins!(), &flags);
    let dir = dsari.path().to_str().unwrap();

    let first = sys.json(&["import", "dsari", dir]);
    assert_eq!(first["imported"], 4, "{first}");
    assert_eq!(first["skipped"], 0, "{first}");
    let refused = first["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{first}");
    assert!(
        refused[0].as_str().unwrap().contains("not a UUID"),
        "{first}"
    );

    let runs = sys.json(&["runs"]);
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [R1, R2, R4, R3], "numbered oldest first: {runs}");

    let r2 = sys.json(&["show", R2]);
    assert_eq!(r2["state"], "errored");
    assert_eq!(r2["exit_code"], 2);
    assert_eq!(r2["started_at_ms"], 1_995_000);
    assert_eq!(r2["finished_at_ms"], 2_000_000);
    let r1 = sys.json(&["show", R1]);
    assert_eq!(r1["state"], "success");
    assert_eq!(r1["env"]["GIT_COMMIT"], "abc", "{r1}");
    assert_eq!(r1["return_data"]["artifact"], "backup.tar", "{r1}");
    assert_eq!(r1["return_data"]["size"], 42, "{r1}");
    assert!(r2["return_data"].is_null(), "none left: {r2}");

    assert_eq!(logs(&sys, R1), b"first\n");
    assert_eq!(logs(&sys, R3), big, "the output sent in pieces is whole");
    assert!(logs(&sys, R4).is_empty());

    let again = sys.json(&["import", "dsari", dir]);
    assert_eq!(again["imported"], 0, "{again}");
    assert_eq!(again["skipped"], 4, "{again}");
    assert_eq!(sys.json(&["runs"]).as_array().unwrap().len(), 4);

    // The imported runs are the job's history: its next run sees them.
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let run = sys.json(&["trigger", "backup"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    sys.wait_state(&run, "success", DEADLINE);
    assert_eq!(
        String::from_utf8(logs(&sys, &run)).unwrap().trim(),
        format!("{R3} {R2} 2"),
    );
    sys.stop_coordinator();
}

#[test]
fn import_dsari_reads_output_compressed_as_dsari_reads_it() {
    use std::io::Write as _;
    let dsari = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dsari.path().join("dsari.sqlite3")).unwrap();
    conn.execute_batch(
        "CREATE TABLE runs (job_name text, run_id text, schedule_time real, start_time real, \
         stop_time real, exit_code integer, trigger_type text, trigger_data text, run_data text);",
    )
    .unwrap();
    for (i, id) in [R1, R2, R3].into_iter().enumerate() {
        let stop = 1000.0 + i as f64;
        conn.execute(
            "INSERT INTO runs VALUES ('backup', ?1, ?2, ?3, ?4, 0, 'schedule', '{}', '{}')",
            rusqlite::params![id, stop - 10.0, stop - 5.0, stop],
        )
        .unwrap();
    }
    let dir = |id: &str| {
        let d = dsari.path().join("runs/backup").join(id);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    // dsari.utils.read_output: output.txt, else output.txt.gz, else output.txt.xz.
    let text: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    std::fs::write(dir(R1).join("output.txt.gz"), gz.finish().unwrap()).unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &b"packed with xz\n"[..], &mut xz).unwrap();
    std::fs::write(dir(R2).join("output.txt.xz"), xz).unwrap();
    std::fs::write(dir(R3).join("output.txt.gz"), b"not gzip at all").unwrap();

    let sys = System::start_with(bins!(), STEADY);
    let path = dsari.path().to_str().unwrap();
    let first = sys.json(&["import", "dsari", path]);
    assert_eq!(first["imported"], 2, "{first}");
    let refused = first["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{first}");
    assert!(
        refused[0]
            .as_str()
            .unwrap()
            .contains("output.txt.gz: not a gzip file"),
        "{first}"
    );
    assert_eq!(logs(&sys, R1), text);
    assert_eq!(logs(&sys, R2), b"packed with xz\n");
}
