//! Real binaries: logs come back byte-exact through `rota logs`, binary and invalid UTF-8
//! included, and `rota logs -f` follows a live run to its end.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rota_tests::procs::{lines_of, until, System};
use rota_tests::{bins, pseudo_random_bytes};

/// 1 MiB: the command copies its two files to stdout and stderr in chunks of this size,
/// alternately, so the streams interleave.
const CHUNK: usize = 1 << 20;

#[test]
fn fifty_megabytes_of_mixed_binary_output_come_back_byte_identical_per_stream() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 1, &[]);
    // Sizes that are not multiples of the chunk, so the last chunk of each is short.
    let out_bytes = pseudo_random_bytes(1, 25 * CHUNK + 777);
    let err_bytes = pseudo_random_bytes(2, 25 * CHUNK - 333);
    assert!(
        std::str::from_utf8(&out_bytes).is_err() && std::str::from_utf8(&err_bytes).is_err(),
        "the data is not valid UTF-8"
    );
    let out_file = sys.path("out.bin");
    let err_file = sys.path("err.bin");
    std::fs::write(&out_file, &out_bytes).unwrap();
    std::fs::write(&err_file, &err_bytes).unwrap();
    let script = format!(
        "i=0; while [ $i -le 25 ]; do \
           dd if={out} bs={CHUNK} skip=$i count=1 2>/dev/null; \
           dd if={err} bs={CHUNK} skip=$i count=1 >&2 2>/dev/null; \
           i=$((i+1)); \
         done",
        out = out_file.display(),
        err = err_file.display(),
    );
    sys.wait_agents(&["a"]);
    let run = sys.submit(&["--shell", "--", &script]);
    let n = run["number"].to_string();
    let run = sys.wait_run(&n, Duration::from_secs(50), "final", |v| {
        v["finished_at_ms"].is_u64()
    });
    assert_eq!(run["state"], "success", "{run}");
    assert_eq!(run["stdout_len"], out_bytes.len());
    assert_eq!(run["stderr_len"], err_bytes.len());

    let stdout = sys.rota(&["logs", &n, "--stdout"]);
    assert!(stdout.status.success());
    assert!(
        stdout.stderr.is_empty(),
        "--stdout prints nothing on stderr"
    );
    assert_eq!(stdout.stdout.len(), out_bytes.len());
    assert!(stdout.stdout == out_bytes, "stdout is byte-identical");

    let stderr = sys.rota(&["logs", &n, "--stderr"]);
    assert!(stderr.status.success());
    assert!(
        stderr.stdout.is_empty(),
        "--stderr prints nothing on stdout"
    );
    assert_eq!(stderr.stderr.len(), err_bytes.len());
    assert!(stderr.stderr == err_bytes, "stderr is byte-identical");

    // Without a flag: each stream to its own descriptor.
    let both = sys.rota(&["logs", &n]);
    assert!(both.stdout == out_bytes && both.stderr == err_bytes);
}

#[test]
fn logs_follow_streams_a_running_run_and_exits_when_it_ends() {
    let mut sys = System::start(bins!());
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    let go = sys.path("go");
    let script = format!(
        "echo first; echo err-first >&2; \
         while [ ! -e {go} ]; do sleep 0.02; done; \
         echo second; echo last",
        go = go.display()
    );
    let run = sys.submit(&["--shell", "--", &script]);
    let n = run["number"].to_string();
    sys.wait_state(&n, "running", Duration::from_secs(20));

    let mut follower = sys
        .rota_command(&["logs", &n, "-f", "--stdout"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(follower.stdout.take().unwrap());
    let first = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("the follower prints the first line while the run still runs");
    assert_eq!(first, "first");
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the follower keeps following"
    );
    assert_eq!(sys.show(&n)["state"], "running", "the run is still running");

    std::fs::write(&go, "").unwrap();

    let status = until(Duration::from_secs(20), "the follower to exit", || {
        follower.try_wait().unwrap()
    });
    assert!(status.success(), "follower exit status {status:?}");
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(rest, ["second", "last"]);
    let mut err = String::new();
    follower
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "", "--stdout follows stdout only");
    assert_eq!(sys.show(&n)["state"], "success");

    // Following a run that has already ended prints it all and exits at once.
    let started = Instant::now();
    let out = sys.rota(&["logs", &n, "-f"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"first\nsecond\nlast\n");
    assert_eq!(out.stderr, b"err-first\n");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// `seq 1 N` as bytes.
fn seq_bytes(n: u32) -> Vec<u8> {
    (1..=n)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// What a capped stream reads back as: its first and last halves of the cap around a marker.
fn capped(full: &[u8], cap: usize) -> Vec<u8> {
    let (head, tail) = (cap / 2, cap - cap / 2);
    let mut want = full[..head].to_vec();
    want.extend_from_slice(format!("\n[rota: {} bytes cut]\n", full.len() - cap).as_bytes());
    want.extend_from_slice(&full[full.len() - tail..]);
    want
}

#[test]
fn a_log_over_its_cap_keeps_head_and_tail_with_a_marker_globally_and_per_job() {
    let mut flags = rota_tests::procs::STEADY.to_vec();
    flags.extend(["--max-log-bytes", "100000"]);
    let mut sys = System::start_with(bins!(), &flags);
    sys.start_agent("a", 1, &[]);
    sys.wait_agents(&["a"]);
    // 2.9 MB on stdout: the coordinator's cap of 100,000 bytes.
    let full = seq_bytes(400_000);
    let run = sys.submit(&["--shell", "--", "seq 1 400000"]);
    let n = run["number"].to_string();
    let v = sys.wait_state(&n, "success", Duration::from_secs(60));
    assert_eq!(
        v["stdout_len"],
        full.len(),
        "the run's own length is recorded"
    );
    let out = sys.rota(&["logs", &n, "--stdout"]);
    assert!(out.status.success());
    assert!(out.stdout == capped(&full, 100_000), "head, marker, tail");

    // A job's own cap wins; a short log is untouched.
    let config = sys.path("jobs.yaml");
    std::fs::write(
        &config,
        "jobs:\n  chatty:\n    command: seq 1 50000\n    max_log_bytes: 1001\n  \
         quiet:\n    command: seq 1 10\n",
    )
    .unwrap();
    let applied = sys.rota(&["apply", config.to_str().unwrap()]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    for (job, want) in [
        ("chatty", capped(&seq_bytes(50_000), 1001)),
        ("quiet", seq_bytes(10)),
    ] {
        let run = sys.json(&["trigger", job]);
        let n = run["number"].to_string();
        sys.wait_state(&n, "success", Duration::from_secs(60));
        let out = sys.rota(&["logs", &n, "--stdout"]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&want),
            "{job}"
        );
    }
}
