//! Random requests against a live in-process coordinator: random `ControlService` calls
//! (numbers at the edges of their types, hostile strings, unknown enum values) and random
//! `AgentService` message sequences from raw stream clients (not rota-agent). After every
//! batch the coordinator must still serve, every refusal must be a client error
//! (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS, OUT_OF_RANGE), never
//! INTERNAL, UNKNOWN or a dropped connection, and its invariants must hold: runs are numbered
//! 1..=N with N the runs of accepted submits, and each run is in exactly one state.
//! Deterministic: fixed seeds.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rota_coordinator::store::RUN_STATES as STATES;
use rota_proto as pb;
use rota_proto::agent_message::Msg;
use rota_tests::{Client, Coordinator};
use tonic::Code;

const SEEDS: [u64; 5] = [1, 2, 3, 7, 0x5eed];
const BATCHES: usize = 16;
const OPS_PER_BATCH: usize = 30;

/// What the fuzzer knows of the coordinator: accepted runs, and what raw agents were assigned.
#[derive(Default)]
struct Known {
    ids: Vec<String>,
    numbers: Vec<u64>,
    /// Runs accepted by Submit (or Trigger): the store must hold exactly these many.
    accepted: u64,
    /// (run id, attempt) of Assigns the raw agents received.
    assigned: Arc<Mutex<Vec<(String, u32)>>>,
}

fn number(rng: &mut StdRng, k: &Known) -> u64 {
    let edges = [
        0,
        1,
        2,
        i64::MAX as u64,
        1 << 63,
        (1 << 63) + 1,
        u64::MAX,
        u64::MAX - 1,
    ];
    match rng.random_range(0..4) {
        0 | 3 if rng.random_bool(0.7) => *edges.choose(rng).unwrap(),
        1 => k.numbers.choose(rng).copied().unwrap_or(1),
        2 => rng.random(),
        _ => rng.random_range(0..100),
    }
}

fn huge(rng: &mut StdRng) -> String {
    let unit = ["x", "../", "ü", "\0", "🦀"].choose(rng).unwrap();
    unit.repeat(rng.random_range(1_000..40_000))
}

/// A string from the classes a hostile client would send.
fn string(rng: &mut StdRng, k: &Known) -> String {
    match rng.random_range(0..20) {
        16..=19 => format!("{}", number(rng, k)),
        0 => String::new(),
        1 => k.ids.choose(rng).cloned().unwrap_or_default(),
        2 => k
            .numbers
            .choose(rng)
            .map(|n| n.to_string())
            .unwrap_or_default(),
        3 => format!("#{}", number(rng, k)),
        4 => number(rng, k).to_string(),
        5 => "../../../../etc/passwd".into(),
        6 => "/tmp/rota-fuzz-absolute".into(),
        7 => "a\0b".into(),
        8 => "ü🦀\u{202e}名".into(),
        9 => huge(rng),
        10 => ".".into(),
        11 => "..".into(),
        12 => "-1".into(),
        13 => " 7 ".into(),
        14 => uuid::Uuid::from_u128(rng.random()).to_string(),
        _ => {
            let n = rng.random_range(1..20);
            (0..n)
                .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
                .collect()
        }
    }
}

/// A name that is valid most of the time, so requests get past the first check.
fn name(rng: &mut StdRng, k: &Known) -> String {
    if rng.random_bool(0.8) {
        ["default", "js-a", "js-b", "g1", "g2"]
            .choose(rng)
            .unwrap()
            .to_string()
    } else {
        string(rng, k)
    }
}

fn state(rng: &mut StdRng, k: &Known) -> String {
    if rng.random_bool(0.6) {
        STATES.choose(rng).unwrap().to_string()
    } else {
        string(rng, k)
    }
}

fn spec(rng: &mut StdRng, k: &Known) -> pb::RunSpec {
    let mut s = rota_tests::sh(&name(rng, k), "true");
    if rng.random_bool(0.3) {
        s.command = (0..rng.random_range(0..3))
            .map(|_| string(rng, k))
            .collect();
    }
    if rng.random_bool(0.2) {
        s.env.insert(string(rng, k), string(rng, k));
    }
    if rng.random_bool(0.2) {
        s.groups = vec![name(rng, k)];
    }
    if rng.random_bool(0.2) {
        s.after = vec![string(rng, k)];
    }
    if rng.random_bool(0.2) {
        s.max_execution_ms = number(rng, k);
        s.kill_grace_ms = number(rng, k);
    }
    s.priority = rng.random();
    s.retries = if rng.random_bool(0.2) {
        rng.random()
    } else {
        0
    };
    s
}

/// A client error: the request was refused and changed nothing. Anything else (INTERNAL,
/// UNKNOWN, UNAVAILABLE from a dropped connection) fails the test.
fn check_refusal(op: &str, status: &tonic::Status) {
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument
                | Code::NotFound
                | Code::FailedPrecondition
                | Code::AlreadyExists
                | Code::OutOfRange
        ),
        "{op}: refused with {:?}: {}",
        status.code(),
        status.message().chars().take(300).collect::<String>()
    );
}

/// A call that may be refused; a refusal must be a client error.
fn outcome<T>(op: &str, r: Result<tonic::Response<T>, tonic::Status>) -> Option<T> {
    match r {
        Ok(resp) => Some(resp.into_inner()),
        Err(status) => {
            check_refusal(op, &status);
            None
        }
    }
}

/// A long-lived call (wait, a follow, a watch): it may answer, be refused, or still be going
/// after a moment (then it is dropped).
async fn briefly<T>(
    op: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Option<T> {
    match tokio::time::timeout(Duration::from_millis(30), call).await {
        Ok(r) => outcome(op, r),
        Err(_) => None,
    }
}

async fn drain_stream<T>(op: &str, mut s: tonic::Streaming<T>) {
    let _ = tokio::time::timeout(Duration::from_millis(30), async {
        loop {
            match s.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(status) => return check_refusal(op, &status),
            }
        }
    })
    .await;
}

fn note_runs(k: &mut Known, runs: &[pb::Run]) {
    for r in runs {
        if !k.numbers.contains(&r.number) {
            k.numbers.push(r.number);
            k.ids.push(r.id.clone());
        }
    }
}

async fn control_op(rng: &mut StdRng, c: &mut Client, k: &mut Known) {
    match rng.random_range(0..20) {
        0 | 1 => {
            let req = pb::SubmitRequest {
                jobset: name(rng, k),
                runs: (0..rng.random_range(0..4)).map(|_| spec(rng, k)).collect(),
                parallel: number(rng, k) as u32,
            };
            if let Some(resp) = outcome("submit", c.submit(req).await) {
                k.accepted += resp.runs.len() as u64;
                note_runs(k, &resp.runs);
            }
        }
        2 => {
            let urls = [
                "http://127.0.0.1:9/x",
                "ftp://x",
                "",
                "http://",
                "https://h/\0",
            ];
            let notify = (0..rng.random_range(0..3))
                .map(|_| pb::NotifyTarget {
                    url: urls.choose(rng).unwrap().to_string(),
                    events: vec![["any", "failure", "often", ""]
                        .choose(rng)
                        .unwrap()
                        .to_string()],
                    secret_file: ["", "/nonexistent", "\0"].choose(rng).unwrap().to_string(),
                    format: ["", "slack", "xml"].choose(rng).unwrap().to_string(),
                })
                .collect();
            let req = pb::CreateJobsetRequest {
                name: name(rng, k),
                parallel: rng.random(),
                notify,
            };
            outcome("create_jobset", c.create_jobset(req).await);
        }
        3 => {
            let req = pb::SetParallelRequest {
                name: name(rng, k),
                parallel: rng.random(),
            };
            outcome("set_parallel", c.set_parallel(req).await);
        }
        4 => {
            let req = pb::GetJobsetRequest { name: name(rng, k) };
            outcome("get_jobset", c.get_jobset(req).await);
        }
        5 => {
            let req = pb::ListRunsRequest {
                jobset: if rng.random_bool(0.5) {
                    String::new()
                } else {
                    name(rng, k)
                },
                state: if rng.random_bool(0.5) {
                    String::new()
                } else {
                    state(rng, k)
                },
                limit: rng.random(),
                after_number: number(rng, k),
            };
            outcome("list_runs", c.list_runs(req).await);
        }
        6 => {
            let req = pb::RunRef {
                run: string(rng, k),
            };
            outcome("get_run", c.get_run(req).await);
        }
        7 => {
            let req = pb::LogsRequest {
                run: string(rng, k),
                follow: rng.random_bool(0.3),
                stdout: rng.random(),
                stderr: rng.random(),
                attempt: if rng.random_bool(0.5) {
                    0
                } else {
                    rng.random()
                },
                stdout_offset: if rng.random_bool(0.5) {
                    0
                } else {
                    number(rng, k)
                },
                stderr_offset: if rng.random_bool(0.5) {
                    0
                } else {
                    number(rng, k)
                },
            };
            if let Some(s) = briefly("logs", c.logs(req)).await {
                drain_stream("logs", s).await;
            }
        }
        8 => {
            let req = pb::RunRef {
                run: string(rng, k),
            };
            outcome("cancel", c.cancel(req).await);
        }
        9 => {
            let req = pb::RetryRequest {
                run: if rng.random_bool(0.7) {
                    string(rng, k)
                } else {
                    String::new()
                },
                jobset: if rng.random_bool(0.5) {
                    name(rng, k)
                } else {
                    String::new()
                },
                failed: rng.random(),
                runs: (0..rng.random_range(0..3))
                    .map(|_| string(rng, k))
                    .collect(),
            };
            outcome("retry", c.retry(req).await);
        }
        10 => {
            let req = pb::RunRef {
                run: string(rng, k),
            };
            outcome("retire", c.retire(req).await);
        }
        11 => {
            let req = pb::WaitRequest {
                runs: (0..rng.random_range(0..3))
                    .map(|_| string(rng, k))
                    .collect(),
                jobset: if rng.random_bool(0.3) {
                    name(rng, k)
                } else {
                    String::new()
                },
            };
            briefly("wait", c.wait(req)).await;
        }
        12 => {
            let req = pb::WatchRequest {
                jobset: if rng.random_bool(0.5) {
                    name(rng, k)
                } else {
                    String::new()
                },
            };
            if let Some(s) = briefly("watch", c.watch(req)).await {
                drain_stream("watch", s).await;
            }
        }
        13 => {
            outcome("list_agents", c.list_agents(pb::ListAgentsRequest {}).await);
        }
        14 => {
            let req = pb::DrainRequest {
                agent: name(rng, k),
                timeout_ms: number(rng, k),
            };
            outcome("drain", c.drain(req).await);
        }
        15 => {
            let req = pb::SetGroupMaxRequest {
                name: name(rng, k),
                max: rng.random(),
            };
            outcome("set_group_max", c.set_group_max(req).await);
        }
        16 => {
            // Text that is no config, or a config of nothing: no job may start runs by
            // itself, or the run count would move without a submit.
            let content = if rng.random_bool(0.5) {
                "{}".to_string()
            } else {
                string(rng, k)
            };
            let config_d = if rng.random_bool(0.3) {
                vec![pb::ConfigFile {
                    path: string(rng, k),
                    content: string(rng, k),
                }]
            } else {
                vec![]
            };
            let req = pb::ApplyRequest {
                path: string(rng, k),
                content,
                config_d,
                check_only: rng.random_bool(0.3),
            };
            outcome("apply", c.apply(req).await);
        }
        17 => {
            outcome("list_jobs", c.list_jobs(pb::ListJobsRequest {}).await);
        }
        18 => {
            outcome("status", c.status(pb::StatusRequest {}).await);
            let req = pb::ListNotificationsRequest {
                limit: rng.random(),
                run: number(rng, k),
            };
            outcome("list_notifications", c.list_notifications(req).await);
            let req = pb::ListAuditRequest {
                run: number(rng, k),
                since_ms: number(rng, k),
                limit: rng.random(),
            };
            outcome("list_audit", c.list_audit(req).await);
        }
        _ => {
            let mut req = pb::TriggerRequest {
                job: name(rng, k),
                ..Default::default()
            };
            req.env.insert(string(rng, k), string(rng, k));
            if let Some(run) = outcome("trigger", c.trigger(req).await) {
                k.accepted += 1;
                note_runs(k, &[run]);
            }
        }
    }
}

/// A run id for an agent report: an assigned one, a stranger's, or a path (relative, going up,
/// or absolute). The coordinator's data dir sits four levels deep in the test's temp dir, so a
/// relative path that escaped the logs dir would still land inside the temp dir, where the
/// test looks for it.
fn agent_run_id(rng: &mut StdRng, k: &Known) -> String {
    let assigned = k.assigned.lock().unwrap().clone();
    // Which runs were assigned depends on timing: draw the same randomness either way, so
    // the rest of the sequence does not.
    let pick = rng.random::<u32>() as usize;
    match rng.random_range(0..7) {
        0 | 1 => assigned
            .get(pick % assigned.len().max(1))
            .map(|a| a.0.clone())
            .unwrap_or_default(),
        2 => k.ids.choose(rng).cloned().unwrap_or_default(),
        3 => uuid::Uuid::from_u128(rng.random()).to_string(),
        4 => ["", "..", "../..", "x/../../y", "a\0b", "ü"]
            .choose(rng)
            .unwrap()
            .to_string(),
        5 => ["../../escape", "../../../../escape", ABSOLUTE]
            .choose(rng)
            .unwrap()
            .to_string(),
        _ => k
            .numbers
            .choose(rng)
            .map(|n| n.to_string())
            .unwrap_or_default(),
    }
}

/// An absolute path sent as a run id: nothing may ever be written there.
const ABSOLUTE: &str = "/tmp/rota-fuzz-absolute";

/// Every file under `root` outside `data/logs/<run id>/` of a run the fuzzer knows: a log
/// written anywhere else came from a request string.
fn stray_files(root: &std::path::Path, logs: &std::path::Path, k: &Known) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let in_known_run = path.parent().is_some_and(|run_dir| {
                run_dir.parent() == Some(logs)
                    && run_dir
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|id| k.ids.iter().any(|known| known == id))
            });
            let outside_logs = !path.starts_with(logs);
            if !in_known_run && !outside_logs {
                out.push(path.display().to_string());
            }
            if outside_logs
                && path
                    .extension()
                    .is_some_and(|e| e == "stdout" || e == "stderr")
            {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

fn attempt(rng: &mut StdRng, run: &str, k: &Known) -> u32 {
    let assigned = k.assigned.lock().unwrap();
    let (current, other) = (
        rng.random_bool(0.7),
        *[0, 1, 2, u32::MAX].choose(rng).unwrap(),
    );
    match assigned.iter().find(|a| a.0 == run) {
        Some(a) if current => a.1,
        _ => other,
    }
}

fn agent_message(rng: &mut StdRng, k: &Known) -> pb::AgentMessage {
    let run_id = agent_run_id(rng, k);
    let attempt = attempt(rng, &run_id, k);
    let msg = match rng.random_range(0..11) {
        0 => Msg::Heartbeat(pb::Heartbeat {
            sent_at_ms: rng.random(),
            draining: rng.random_bool(0.1),
        }),
        1 | 2 => Msg::Started(pb::RunStarted {
            run_id,
            attempt,
            pid: rng.random(),
        }),
        3..=5 => Msg::Log(pb::LogChunk {
            run_id,
            attempt,
            stream: *[0, 1, 2, 3, -1, i32::MAX].choose(rng).unwrap(),
            offset: if rng.random_bool(0.6) {
                0
            } else {
                number(rng, k)
            },
            data: (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
        }),
        6..=8 => Msg::Finished(pb::RunFinished {
            run_id,
            attempt,
            exit_code: rng.random_bool(0.7).then(|| rng.random_range(-1..3)),
            signal: rng.random_bool(0.2).then(|| rng.random()),
            error: if rng.random_bool(0.2) {
                string(rng, k)
            } else {
                String::new()
            },
            stdout_len: number(rng, k),
            stderr_len: number(rng, k),
            timed_out: rng.random_bool(0.1),
            cancelled: rng.random_bool(0.1),
            rejected: rng.random_bool(0.1),
            return_data_file: (*["", "return_data.json", "return_data.yaml", "../x"]
                .choose(rng)
                .unwrap())
            .to_owned(),
            return_data: (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
            return_data_problem: if rng.random_bool(0.1) {
                string(rng, k)
            } else {
                String::new()
            },
            artifacts: (0..rng.random_range(0..3))
                .map(|_| pb::ArtifactFile {
                    path: string(rng, k),
                    sha256: string(rng, k),
                    size: number(rng, k),
                })
                .collect(),
        }),
        9 => Msg::Artifact(pb::ArtifactChunk {
            run_id,
            attempt,
            path: if rng.random_bool(0.5) {
                "out/a.bin".into()
            } else {
                string(rng, k)
            },
            sha256: if rng.random_bool(0.5) {
                "0".repeat(64)
            } else {
                string(rng, k)
            },
            size: number(rng, k),
            offset: number(rng, k),
            data: (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
        }),
        _ => Msg::Hello(hello(rng, k)),
    };
    pb::AgentMessage { msg: Some(msg) }
}

fn hello(rng: &mut StdRng, k: &Known) -> pb::Hello {
    let valid = rng.random_bool(0.8);
    pb::Hello {
        name: if valid {
            format!("fuzz-{}", rng.random_range(0..3))
        } else {
            string(rng, k)
        },
        groups: if rng.random_bool(0.2) {
            vec![name(rng, k)]
        } else {
            vec![]
        },
        slots: if valid {
            rng.random_range(1..4)
        } else {
            rng.random()
        },
        protocol_version: if valid || rng.random_bool(0.5) {
            rota_proto::PROTOCOL_VERSION
        } else {
            rng.random()
        },
        session_id: string(rng, k),
        held: if rng.random_bool(0.2) {
            let run_id = agent_run_id(rng, k);
            vec![pb::HeldRun {
                attempt: attempt(rng, &run_id, k),
                run_id,
                stdout_len: number(rng, k),
                stderr_len: number(rng, k),
                exited: rng.random(),
            }]
        } else {
            vec![]
        },
        ..Default::default()
    }
}

/// One raw agent session: Hello (usually valid), a few random messages, then goodbye or a
/// dropped stream. Assigns it receives are noted for later reports.
async fn agent_session(rng: &mut StdRng, url: &str, k: &Known) {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .expect("the coordinator still accepts connections");
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let first = if rng.random_bool(0.9) {
        pb::AgentMessage {
            msg: Some(Msg::Hello(hello(rng, k))),
        }
    } else {
        agent_message(rng, k)
    };
    tx.send(first).await.unwrap();
    let call = client.connect(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut inbound = match tokio::time::timeout(Duration::from_secs(10), call).await {
        Ok(Ok(resp)) => resp.into_inner(),
        Ok(Err(status)) => return check_refusal("agent connect", &status),
        Err(_) => panic!("agent connect hung"),
    };
    let assigned = k.assigned.clone();
    // This session's own assignments, for reports that name them.
    let mine: Arc<Mutex<Vec<(String, u32)>>> = Default::default();
    let mine_in_reader = mine.clone();
    let (welcomed_tx, welcomed) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut welcomed_tx = Some(welcomed_tx);
        loop {
            match inbound.message().await {
                Ok(Some(pb::CoordinatorMessage {
                    msg: Some(pb::coordinator_message::Msg::Assign(a)),
                })) => {
                    mine_in_reader
                        .lock()
                        .unwrap()
                        .push((a.run_id.clone(), a.attempt));
                    assigned.lock().unwrap().push((a.run_id, a.attempt));
                }
                Ok(Some(pb::CoordinatorMessage {
                    msg: Some(pb::coordinator_message::Msg::Welcome(_)),
                })) => {
                    if let Some(tx) = welcomed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    });
    // Welcome comes with the Assigns of the same batch: after it, reports can name them. (A
    // refused session ends without one.)
    let _ = tokio::time::timeout(Duration::from_secs(10), welcomed).await;
    // Reports an agent holding the run would send, with fields at the edges of their types.
    // Their number depends on timing: a generator of their own keeps the main sequence fixed.
    let held: Vec<(String, u32)> = mine.lock().unwrap().clone();
    let own = &mut StdRng::seed_from_u64(rng.random());
    for (run_id, attempt) in held {
        let started = Msg::Started(pb::RunStarted {
            run_id: run_id.clone(),
            attempt,
            pid: own.random(),
        });
        let log = Msg::Log(pb::LogChunk {
            run_id: run_id.clone(),
            attempt,
            stream: own.random_range(0..4),
            offset: if own.random_bool(0.7) {
                0
            } else {
                number(own, k)
            },
            data: b"out\n".to_vec().into(),
        });
        let finished = Msg::Finished(pb::RunFinished {
            run_id,
            attempt,
            exit_code: Some(own.random_range(0..2)),
            stdout_len: number(own, k),
            stderr_len: number(own, k),
            ..Default::default()
        });
        for msg in [started, log, finished] {
            let _ = tx.send(pb::AgentMessage { msg: Some(msg) }).await;
        }
    }
    for _ in 0..rng.random_range(1..12) {
        if tx.send(agent_message(rng, k)).await.is_err() {
            break;
        }
    }
    if rng.random_bool(0.5) {
        let _ = tx
            .send(pb::AgentMessage {
                msg: Some(Msg::Goodbye(pb::Goodbye {
                    reason: string(rng, k),
                })),
            })
            .await;
    }
    drop(tx);
    // The session ends (goodbye, end of stream, or a refused message); never with a server
    // error.
    match tokio::time::timeout(Duration::from_secs(10), reader).await {
        // The coordinator ends a session on purpose (UNAVAILABLE) when a chunk cannot be stored
        // or a result claims more bytes than were stored: the agent is to reconnect and resend
        // from the acknowledged offsets. Any other UNAVAILABLE is a dropped connection.
        Ok(Ok(Some(status)))
            if status.code() == Code::Unavailable
                && (status.message().contains(" not stored: ")
                    || status.message().contains(" not recorded: ")) => {}
        Ok(Ok(Some(status))) => check_refusal("agent stream", &status),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => panic!("agent reader: {e}"),
        Err(_) => panic!("the agent stream did not end after the agent hung up"),
    }
}

/// After each batch: the coordinator answers a known-good request, the run count is what was
/// accepted, numbers are 1..=N, and every run is in exactly one state.
async fn check_invariants(c: &mut Client, k: &Known, when: &str) {
    c.list_jobsets(pb::ListJobsetsRequest {})
        .await
        .unwrap_or_else(|e| panic!("{when}: the coordinator no longer serves: {e}"));
    let all = c
        .list_runs(pb::ListRunsRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{when}: list runs: {e}"))
        .into_inner()
        .runs;
    assert_eq!(
        all.len() as u64,
        k.accepted,
        "{when}: runs in the store = runs of accepted submits"
    );
    let numbers: Vec<u64> = all.iter().map(|r| r.number).collect();
    let want: Vec<u64> = (1..=k.accepted).collect();
    assert_eq!(numbers, want, "{when}: numbers are 1..=N");
    let mut seen = BTreeSet::new();
    for &s in STATES {
        let runs = c
            .list_runs(pb::ListRunsRequest {
                state: s.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{when}: list {s} runs: {e}"))
            .into_inner()
            .runs;
        for r in runs {
            assert_eq!(r.state, s, "{when}: run {} listed as {s}", r.number);
            assert!(
                seen.insert(r.number),
                "{when}: run {} is in two states",
                r.number
            );
        }
    }
    assert_eq!(
        seen.len(),
        all.len(),
        "{when}: every run is in one of the known states"
    );
    if let Some(id) = k.ids.first() {
        c.get_run(pb::RunRef { run: id.clone() })
            .await
            .unwrap_or_else(|e| panic!("{when}: get a known run: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_control_and_agent_requests_never_stop_the_coordinator_or_break_its_invariants() {
    for seed in SEEDS {
        let dir = tempfile::tempdir().unwrap();
        // Four levels deep: see `agent_run_id`.
        let data = dir.path().join("a").join("b").join("c").join("data");
        let mut coordinator = Coordinator::start(&data, |_| {}).await;
        let mut c = rota_tests::client(&coordinator.url).await;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut k = Known::default();
        for batch in 0..BATCHES {
            for _ in 0..OPS_PER_BATCH {
                if rng.random_bool(0.2) {
                    agent_session(&mut rng, &coordinator.url, &k).await;
                } else {
                    control_op(&mut rng, &mut c, &mut k).await;
                }
            }
            check_invariants(&mut c, &k, &format!("seed {seed}, batch {batch}")).await;
        }
        eprintln!(
            "seed {seed}: {} runs accepted, {} assignments to raw agents",
            k.accepted,
            k.assigned.lock().unwrap().len()
        );
        // Only runs accepted by the fuzzer exist, and nothing left the temp dir.
        coordinator.stop().await;
        assert!(
            !std::path::Path::new(ABSOLUTE).exists(),
            "no file at an absolute path from a request"
        );
        let stray = stray_files(dir.path(), &data.join("logs"), &k);
        assert!(
            stray.is_empty(),
            "seed {seed}: log files outside the runs the fuzzer submitted: {stray:?}"
        );
    }
}
