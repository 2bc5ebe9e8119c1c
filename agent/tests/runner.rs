//! The process runner against real processes: environment, stdin, byte-exact separate output,
//! spawn errors, exit codes and signals, cancel and timeout of whole process trees.

mod support;

use std::time::Duration;

use rota_agent::runner::Run;
use rota_agent::spool::Stream;
use support::{alive, eventually, run_to_end, spec, spool, spooled, within};

#[tokio::test]
async fn run_sees_the_assign_env_and_agent_name_over_the_agents_own_env() {
    let (_dir, spool) = spool();
    let mut spec = spec(
        "env",
        &[
            "sh",
            "-c",
            r#"printf '%s|%s|%s|%s' "$JOB_NAME" "$RUN_ID" "$AGENT_NAME" "$HOME""#,
        ],
    );
    spec.env.insert("JOB_NAME".to_owned(), "backup".to_owned());
    spec.env.insert("RUN_ID".to_owned(), "r-1".to_owned());
    spec.env.insert("HOME".to_owned(), "/overlaid".to_owned());
    let key = spec.key.clone();
    let (_, outcome) = run_to_end(spec, &spool).await;
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    assert_eq!(
        String::from_utf8(spooled(&spool, &key, Stream::Stdout)).unwrap(),
        "backup|r-1|test-agent|/overlaid"
    );
}

#[tokio::test]
async fn run_inherits_the_agents_environment() {
    let (_dir, spool) = spool();
    let spec = spec("inherit", &["sh", "-c", r#"printf '%s' "$PATH""#]);
    let key = spec.key.clone();
    run_to_end(spec, &spool).await;
    assert_eq!(
        spooled(&spool, &key, Stream::Stdout),
        std::env::var("PATH").unwrap().into_bytes()
    );
}

#[tokio::test]
async fn stdin_is_dev_null() {
    let (_dir, spool) = spool();
    let spec = spec("stdin", &["readlink", "/proc/self/fd/0"]);
    let key = spec.key.clone();
    run_to_end(spec, &spool).await;
    assert_eq!(spooled(&spool, &key, Stream::Stdout), b"/dev/null\n");
}

#[tokio::test]
async fn binary_and_invalid_utf8_output_is_spooled_byte_exact() {
    let (_dir, spool) = spool();
    let every_byte: String = (0..=255u8).map(|byte| format!("\\{byte:03o}")).collect();
    let spec = spec("binary", &["printf", &every_byte]);
    let key = spec.key.clone();
    let (_, outcome) = run_to_end(spec, &spool).await;
    let expected: Vec<u8> = (0..=255u8).collect();
    assert_eq!(spooled(&spool, &key, Stream::Stdout), expected);
    assert_eq!(outcome.stdout_len, 256);
}

#[tokio::test]
async fn stdout_and_stderr_are_spooled_separately_with_their_lengths() {
    let (_dir, spool) = spool();
    let spec = spec(
        "streams",
        &["sh", "-c", "echo out; echo err >&2; echo more out"],
    );
    let key = spec.key.clone();
    let (_, outcome) = run_to_end(spec, &spool).await;
    assert_eq!(spooled(&spool, &key, Stream::Stdout), b"out\nmore out\n");
    assert_eq!(spooled(&spool, &key, Stream::Stderr), b"err\n");
    assert_eq!((outcome.stdout_len, outcome.stderr_len), (13, 4));
}

#[tokio::test]
async fn a_command_that_does_not_exist_finishes_with_a_one_line_spawn_error() {
    let (_dir, spool) = spool();
    let (run, outcome) = run_to_end(spec("missing", &["nosuchcmd-rota-test"]), &spool).await;
    assert_eq!(
        outcome.error,
        r#"failed to start "nosuchcmd-rota-test": No such file or directory (os error 2)"#
    );
    assert_eq!((outcome.exit_code, outcome.signal), (None, None));
    assert_eq!(run.pid(), None);
}

#[tokio::test]
async fn exit_code_is_reported() {
    let (_dir, spool) = spool();
    let (_, outcome) = run_to_end(spec("exit", &["sh", "-c", "exit 3"]), &spool).await;
    assert_eq!(
        (outcome.exit_code, outcome.signal, outcome.error.as_str()),
        (Some(3), None, "")
    );
}

#[tokio::test]
async fn death_by_signal_is_reported() {
    let (_dir, spool) = spool();
    let (_, outcome) = run_to_end(spec("signal", &["sh", "-c", "kill -9 $$"]), &spool).await;
    assert_eq!((outcome.exit_code, outcome.signal), (None, Some(9)));
    assert!(!outcome.cancelled && !outcome.timed_out);
}

/// Starts `sh` with a background `sleep` and a foreground `sleep`; returns the run and the
/// background pid, read from the run's own output.
async fn process_tree(
    run_id: &str,
    spool: &std::sync::Arc<rota_agent::spool::Spool>,
) -> (Run, u32) {
    let spec = spec(run_id, &["sh", "-c", "sleep 1000 & echo $!; sleep 1000"]);
    let key = spec.key.clone();
    let run = Run::start(spec, spool);
    within(run.progress().wait_for(|progress| progress.stdout_len > 0))
        .await
        .unwrap();
    let text = String::from_utf8(spooled(spool, &key, Stream::Stdout)).unwrap();
    (run, text.trim().parse().expect("background pid"))
}

#[tokio::test]
async fn cancel_kills_the_whole_process_tree() {
    let (_dir, spool) = spool();
    let (run, background) = process_tree("cancel", &spool).await;
    let main = run.pid().unwrap();
    assert!(alive(main) && alive(background));

    run.cancel(Duration::from_secs(5));
    let outcome = within(run.ended()).await;

    assert!(outcome.cancelled, "{outcome:?}");
    assert_eq!(outcome.error, "cancelled");
    assert_eq!(outcome.signal, Some(15));
    eventually("both processes gone", || !alive(main) && !alive(background)).await;
}

#[tokio::test]
async fn cancel_escalates_to_sigkill_after_the_grace() {
    let (_dir, spool) = spool();
    let spec = spec(
        "stubborn",
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ],
    );
    let run = Run::start(spec, &spool);
    within(run.progress().wait_for(|progress| progress.stdout_len > 0))
        .await
        .unwrap();

    run.cancel(Duration::from_millis(200));
    let outcome = within(run.ended()).await;

    assert_eq!(outcome.signal, Some(9), "{outcome:?}");
    assert!(outcome.cancelled);
}

#[tokio::test]
async fn max_execution_times_the_run_out() {
    let (_dir, spool) = spool();
    let mut spec = spec("slow", &["sleep", "1000"]);
    spec.max_execution = Some(Duration::from_millis(200));
    let (_, outcome) = run_to_end(spec, &spool).await;
    assert!(outcome.timed_out, "{outcome:?}");
    assert!(!outcome.cancelled);
    assert_eq!(outcome.error, "timed out");
    assert_eq!(outcome.signal, Some(15));
}

#[tokio::test]
async fn a_background_child_does_not_outlive_its_run() {
    let (_dir, spool) = spool();
    let spec = spec("leaky", &["sh", "-c", "sleep 1000 & echo $!"]);
    let key = spec.key.clone();
    let (_, outcome) = run_to_end(spec, &spool).await;
    assert_eq!(outcome.exit_code, Some(0));
    let background: u32 = String::from_utf8(spooled(&spool, &key, Stream::Stdout))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eventually("background sleep gone", || !alive(background)).await;
}

#[tokio::test]
async fn the_process_group_record_lives_exactly_as_long_as_the_run() {
    let (_dir, spool) = spool();
    let (run, _) = process_tree("recorded", &spool).await;
    let pgid_file = spool.dir().join("recorded.1.pgid");
    let recorded = std::fs::read_to_string(&pgid_file).unwrap();
    assert_eq!(
        recorded.split_whitespace().next(),
        Some(run.pid().unwrap().to_string().as_str())
    );

    run.cancel(Duration::ZERO);
    within(run.ended()).await;
    assert!(!pgid_file.exists());
}
