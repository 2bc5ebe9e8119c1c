//! The agent's side of the `Connect` stream against a fake coordinator: handshake, the log
//! path, acknowledgements, cancel, reconnect and resume, lease, refusal and drain.

mod support;

use std::time::Duration;

use rota_proto::agent_message::Msg;
use rota_proto::coordinator_message::Msg as In;
use rota_proto::{Assign, Cancel, Drain, LogAck, ResumeRun};
use support::coordinator::{welcome, Event, FakeCoordinator, TestAgent};
use support::{alive, eventually, within};

fn assign(run_id: &str, argv: &[&str]) -> In {
    In::Assign(Assign {
        run_id: run_id.to_owned(),
        attempt: 1,
        number: 1,
        argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
        env: [("JOB_NAME".to_owned(), format!("job-{run_id}"))].into(),
        max_execution_ms: 0,
        kill_grace_ms: 1000,
        job_name: format!("job-{run_id}"),
        jobset: String::new(),
        on_disconnect: 0,
        ..Assign::default()
    })
}

fn finished_ack(run_id: &str) -> In {
    In::LogAck(LogAck {
        run_id: run_id.to_owned(),
        attempt: 1,
        stdout_offset: 0,
        stderr_offset: 0,
        finished: true,
    })
}

/// A shell command that prints `before`, waits until `flag` exists, then prints `after`.
fn gated(before: &str, flag: &std::path::Path, after: &str) -> Vec<String> {
    let script = format!(
        "printf {before}; while [ ! -e '{}' ]; do sleep 0.02; done; printf {after}",
        flag.display()
    );
    vec!["sh".to_owned(), "-c".to_owned(), script]
}

fn strs(argv: &[String]) -> Vec<&str> {
    argv.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_introduces_the_agent_with_the_protocol_version_and_no_held_runs() {
    let mut coordinator = FakeCoordinator::start().await;
    let _agent = TestAgent::start(&coordinator.url);
    let hello = coordinator.hello().await;
    assert_eq!(hello.name, "test-agent");
    assert_eq!(hello.groups, ["db"]);
    assert_eq!(hello.slots, 2);
    assert_eq!(hello.labels.get("zone").map(String::as_str), Some("test"));
    assert_eq!(hello.protocol_version, rota_proto::PROTOCOL_VERSION);
    assert!(hello.held.is_empty());
    assert!(uuid_like(&hello.session_id), "{:?}", hello.session_id);
    // Heartbeats follow at the Welcome's interval.
    coordinator
        .message(|msg| matches!(msg, Msg::Heartbeat(_)).then_some(()))
        .await;
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().filter(|&c| c == '-').count() == 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigned_run_reports_started_logs_and_finished_then_is_forgotten_on_ack() {
    let mut coordinator = FakeCoordinator::start().await;
    let agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;

    coordinator
        .send(assign(
            "r1",
            &[
                "sh",
                "-c",
                r#"printf "$JOB_NAME on $AGENT_NAME"; echo oops >&2; exit 3"#,
            ],
        ))
        .await;
    let log = coordinator.run_log("r1").await;

    assert!(
        log.started.as_ref().is_some_and(|started| started.pid > 0),
        "RunStarted comes first"
    );
    assert_eq!(log.stdout, b"job-r1 on test-agent");
    assert_eq!(log.stderr, b"oops\n");
    assert_eq!(log.finished().exit_code, Some(3));
    assert_eq!(
        (log.finished().stdout_len, log.finished().stderr_len),
        (20, 5)
    );
    assert!(
        !agent.spool_files().is_empty(),
        "the log stays spooled until acknowledged"
    );

    coordinator.send(finished_ack("r1")).await;
    eventually("spool files deleted", || agent.spool_files().is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_is_reported_and_the_agent_carries_on() {
    let mut coordinator = FakeCoordinator::start().await;
    let _agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;

    coordinator
        .send(assign("bad", &["nosuchcmd-rota-test"]))
        .await;
    let log = coordinator.run_log("bad").await;
    assert!(log.started.is_none());
    assert_eq!(
        log.finished().error,
        r#"failed to start "nosuchcmd-rota-test": No such file or directory (os error 2)"#
    );
    assert_eq!(log.finished().exit_code, None);

    coordinator.send(assign("good", &["true"])).await;
    assert_eq!(
        coordinator.run_log("good").await.finished().exit_code,
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_run_and_a_cancel_for_an_unknown_attempt_is_ignored() {
    let mut coordinator = FakeCoordinator::start().await;
    let _agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    coordinator.send(assign("long", &["sleep", "1000"])).await;
    let pid = coordinator
        .message(|msg| {
            if let Msg::Started(started) = msg {
                Some(started.pid)
            } else {
                None
            }
        })
        .await;

    let cancel = |attempt| {
        In::Cancel(Cancel {
            run_id: "long".to_owned(),
            attempt,
            grace_ms: 1000,
            reason: String::new(),
        })
    };
    coordinator.send(cancel(7)).await;
    coordinator.send(cancel(1)).await;
    let log = coordinator.run_log("long").await;

    assert!(log.finished().cancelled);
    assert_eq!(log.finished().error, "cancelled");
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reconnect_held_runs_are_reported_and_resent_from_the_acknowledged_offset() {
    let mut coordinator = FakeCoordinator::start().await;
    let agent = TestAgent::start(&coordinator.url);
    let first = coordinator.hello().await;
    let flag = agent.spool_dir.with_file_name("go");
    coordinator
        .send(assign("r1", &strs(&gated("abcdef", &flag, "ghi"))))
        .await;
    coordinator
        .message(|msg| {
            matches!(msg, Msg::Log(chunk) if chunk.offset + chunk.data.len() as u64 == 6)
                .then_some(())
        })
        .await;

    coordinator.forget_log("r1");
    coordinator.set_welcome(|_| {
        let resume = ResumeRun {
            run_id: "r1".to_owned(),
            attempt: 1,
            stdout_acked: 3,
            stderr_acked: 0,
            keep: true,
        };
        Ok(welcome(vec![resume]))
    });
    coordinator.drop_connection();
    let second = coordinator.hello().await;

    assert_eq!(
        second.session_id, first.session_id,
        "same process, same session"
    );
    assert_eq!(second.held.len(), 1);
    let held = &second.held[0];
    assert_eq!(
        (
            held.run_id.as_str(),
            held.attempt,
            held.stdout_len,
            held.exited
        ),
        ("r1", 1, 6, false)
    );

    std::fs::write(&flag, b"").unwrap();
    let log = coordinator.run_log("r1").await;
    assert_eq!(
        log.chunks.first().map(|chunk| chunk.offset),
        Some(3),
        "resent from the acknowledged offset"
    );
    assert_eq!(&log.stdout[3..], b"defghi");
    assert_eq!(log.finished().stdout_len, 9);
    assert!(
        log.started.is_none(),
        "the Hello reported it; no second RunStarted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_run_the_welcome_does_not_mention_is_resent_from_zero_with_its_result() {
    let mut coordinator = FakeCoordinator::start().await;
    let _agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    coordinator
        .send(assign("r1", &["printf", "whole log"]))
        .await;
    coordinator.run_log("r1").await;

    coordinator.drop_connection();
    let hello = coordinator.hello().await;
    assert!(hello
        .held
        .iter()
        .any(|held| held.run_id == "r1" && held.exited && held.stdout_len == 9));

    let log = coordinator.run_log("r1").await;
    assert_eq!(log.stdout, b"whole log");
    assert_eq!(log.chunks[0].offset, 0);
    assert_eq!(log.finished().exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_welcome_says_not_to_keep_is_killed_and_forgotten() {
    let mut coordinator = FakeCoordinator::start().await;
    let agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    coordinator.send(assign("stale", &["sleep", "1000"])).await;
    let pid = coordinator
        .message(|msg| {
            if let Msg::Started(started) = msg {
                Some(started.pid)
            } else {
                None
            }
        })
        .await;

    coordinator.set_welcome(|_| {
        let resume = ResumeRun {
            run_id: "stale".to_owned(),
            attempt: 1,
            stdout_acked: 0,
            stderr_acked: 0,
            keep: false,
        };
        Ok(welcome(vec![resume]))
    });
    coordinator.drop_connection();
    coordinator.hello().await;

    eventually("stale run killed", || !alive(pid)).await;
    eventually("its spool files deleted", || agent.spool_files().is_empty()).await;
    coordinator.set_welcome(|_| Ok(welcome(Vec::new())));
    coordinator.drop_connection();
    assert!(coordinator.hello().await.held.is_empty(), "forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_goes_silent_for_the_lease_is_dropped_and_reconnected() {
    let mut coordinator = FakeCoordinator::start().await;
    coordinator.set_welcome(|_| {
        Ok(rota_proto::Welcome {
            lease_ms: 300,
            heartbeat_interval_ms: 50,
            ..welcome(Vec::new())
        })
    });
    coordinator.answer_heartbeats(false);
    let _agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    coordinator
        .message(|msg| matches!(msg, Msg::Heartbeat(_)).then_some(()))
        .await;

    // Nothing comes back; the stream itself stays open. The agent must give up on it.
    coordinator.hello().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_refusal_stops_the_agent_with_the_coordinators_message() {
    let coordinator = FakeCoordinator::start().await;
    coordinator.set_welcome(|_| {
        Err(tonic::Status::failed_precondition(
            "agent protocol 1 is too old; upgrade the agent",
        ))
    });
    let agent = TestAgent::start(&coordinator.url);
    let err = agent.result().await.expect_err("refusal is fatal");
    assert!(
        err.to_string()
            .contains("agent protocol 1 is too old; upgrade the agent"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_runs_lets_running_ones_finish_and_says_goodbye_after_the_acks() {
    let mut coordinator = FakeCoordinator::start().await;
    let mut agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    let flag = agent.spool_dir.with_file_name("go");
    coordinator
        .send(assign("running", &strs(&gated("a", &flag, "b"))))
        .await;
    coordinator
        .message(|msg| matches!(msg, Msg::Started(_)).then_some(()))
        .await;

    agent.shutdown();
    coordinator
        .message(|msg| matches!(msg, Msg::Heartbeat(heartbeat) if heartbeat.draining).then_some(()))
        .await;
    coordinator.send(assign("late", &["true"])).await;
    let late = coordinator.run_log("late").await;
    assert!(
        late.finished().rejected && late.started.is_none(),
        "{:?}",
        late.finished
    );
    assert_eq!(late.finished().error, "agent draining");
    coordinator.send(finished_ack("late")).await;

    std::fs::write(&flag, b"").unwrap();
    let running = coordinator.run_log("running").await;
    assert_eq!(
        (running.stdout.as_slice(), running.finished().exit_code),
        (&b"ab"[..], Some(0))
    );
    coordinator.send(finished_ack("running")).await;

    coordinator
        .message(|msg| matches!(msg, Msg::Goodbye(_)).then_some(()))
        .await;
    agent.result().await.expect("a clean drain returns Ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_message_cancels_runs_still_running_at_its_deadline() {
    let mut coordinator = FakeCoordinator::start().await;
    let agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    coordinator
        .send(assign("forever", &["sleep", "1000"]))
        .await;
    coordinator
        .message(|msg| matches!(msg, Msg::Started(_)).then_some(()))
        .await;

    coordinator.send(In::Drain(Drain { timeout_ms: 200 })).await;
    let log = coordinator.run_log("forever").await;
    assert!(log.finished().cancelled, "{:?}", log.finished);
    coordinator.send(finished_ack("forever")).await;

    coordinator
        .message(|msg| matches!(msg, Msg::Goodbye(_)).then_some(()))
        .await;
    agent.result().await.expect("a clean drain returns Ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_stops_waiting_for_acks_when_the_coordinator_stays_unreachable() {
    let mut coordinator = FakeCoordinator::start().await;
    let mut agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    coordinator.send(assign("unacked", &["true"])).await;
    coordinator.run_log("unacked").await;

    coordinator.set_welcome(|_| Err(tonic::Status::unavailable("coordinator restarting")));
    coordinator.drop_connection();
    agent.shutdown();

    agent
        .result()
        .await
        .expect("gives up on the acks after a few seconds without a connection");
    assert!(!coordinator_saw_goodbye(&mut coordinator));
}

fn coordinator_saw_goodbye(coordinator: &mut FakeCoordinator) -> bool {
    std::iter::from_fn(|| coordinator.try_next())
        .any(|event| matches!(event, Event::Message(Msg::Goodbye(_))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_nothing_held_returns_at_once_even_without_a_coordinator() {
    let mut agent = TestAgent::start("http://127.0.0.1:9");
    agent.shutdown();
    tokio::time::timeout(Duration::from_secs(3), agent.result())
        .await
        .expect("prompt")
        .expect("Ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_answers_for_the_lease_only_on_disconnect_stop_runs_are_stopped() {
    let mut coordinator = FakeCoordinator::start().await;
    coordinator.set_welcome(|_| {
        Ok(rota_proto::Welcome {
            lease_ms: 1000,
            heartbeat_interval_ms: 100,
            ..welcome(Vec::new())
        })
    });
    let _agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    let dir = tempfile::tempdir().unwrap();
    let pid_of = |run: &str| dir.path().join(format!("{run}.pid"));
    // Both run until killed; the stop run ignores SIGTERM, so only the SIGKILL after its
    // kill grace ends it.
    let script = |run: &str, trap: &str| {
        vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!(
                "{trap} echo $$ > {}; while true; do sleep 0.05; done",
                pid_of(run).display()
            ),
        ]
    };
    let In::Assign(stop) = assign("stop", &strs(&script("stop", "trap '' TERM;"))) else {
        unreachable!()
    };
    coordinator
        .send(In::Assign(Assign {
            on_disconnect: rota_proto::OnDisconnect::Stop as i32,
            kill_grace_ms: 200,
            ..stop
        }))
        .await;
    coordinator
        .send(assign("keep", &strs(&script("keep", ""))))
        .await;
    let read_pid = |run: &str| {
        std::fs::read_to_string(pid_of(run))
            .ok()
            .filter(|t| t.ends_with('\n'))
            .and_then(|t| t.trim().parse::<u32>().ok())
    };
    eventually("both runs to start", || {
        read_pid("stop").is_some() && read_pid("keep").is_some()
    })
    .await;

    coordinator.answer_heartbeats(false);

    let log = within(coordinator.run_log("stop")).await;
    let finished = log.finished();
    assert!(finished.cancelled, "{finished:?}");
    assert!(
        finished.error.contains("no contact with the coordinator"),
        "{finished:?}"
    );
    assert_eq!(
        finished.signal,
        Some(9),
        "SIGKILL after the grace: {finished:?}"
    );
    assert!(
        alive(read_pid("keep").unwrap()),
        "a run with the default policy keeps running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_while_its_inputs_are_fetched_stops_the_fetch_and_never_starts() {
    let mut coordinator = FakeCoordinator::start().await;
    let _agent = TestAgent::start(&coordinator.url);
    coordinator.hello().await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let In::Assign(mut fetching) = assign(
        "fetching",
        &["sh", "-c", &format!("touch '{}'", marker.display())],
    ) else {
        unreachable!()
    };
    // A large input the fake sends one byte of, then stalls: the fetch lasts until stopped.
    fetching.inputs = vec![rota_proto::InputArtifact {
        file: Some(rota_proto::ArtifactFile {
            path: "dump.sql".into(),
            sha256: "a".repeat(64),
            size: 1 << 30,
        }),
        from_run: 1,
    }];
    coordinator.send(In::Assign(fetching)).await;
    coordinator
        .until(|event| matches!(event, Event::Fetch(_)).then_some(()))
        .await;

    coordinator
        .send(In::Cancel(Cancel {
            run_id: "fetching".to_owned(),
            attempt: 1,
            grace_ms: 1000,
            reason: String::new(),
        }))
        .await;
    // Bounded as a whole: heartbeats keep coming while an ignored cancel leaves it hanging.
    let log = within(async {
        coordinator
            .until(|event| matches!(event, Event::FetchDropped).then_some(()))
            .await;
        coordinator.run_log("fetching").await
    })
    .await;
    assert!(log.started.is_none(), "the command never started");
    assert!(log.finished().cancelled);
    assert_eq!(log.finished().error, "cancelled");
    assert!(!marker.exists());
}
