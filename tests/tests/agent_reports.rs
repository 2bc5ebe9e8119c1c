//! Reports on the agent stream are trusted only for runs assigned to that very session, at
//! their current attempt: a client speaking `AgentService.Connect` with crafted run ids can
//! neither write outside the data dir nor touch another run's log or state, and is never
//! acknowledged for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rota_proto as pb;
use rota_proto::agent_message::Msg;
use rota_proto::coordinator_message::Msg as In;
use rota_tests::{client, sh, stdout_of, Coordinator, RawAgent};

/// Every file under `dir` but the SQL store, with its contents.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if !p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rota.db")
            {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn chunk(run_id: &str, attempt: u32, offset: u64, data: &[u8]) -> Msg {
    Msg::Log(pb::LogChunk {
        run_id: run_id.into(),
        attempt,
        stream: pb::LogStream::Stdout as i32,
        offset,
        data: data.to_vec().into(),
    })
}

fn finished(run_id: &str, attempt: u32, stdout_len: u64) -> Msg {
    Msg::Finished(pb::RunFinished {
        run_id: run_id.into(),
        attempt,
        exit_code: Some(0),
        stdout_len,
        ..Default::default()
    })
}

async fn submit(c: &mut rota_tests::Client, name: &str) -> pb::Run {
    c.submit(pb::SubmitRequest {
        jobset: String::new(),
        runs: vec![sh(name, "true")],
        parallel: 0,
    })
    .await
    .unwrap()
    .into_inner()
    .runs
    .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_run_ids_on_the_agent_stream_write_nothing_and_get_no_ack() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut coordinator = Coordinator::start(&data, |_| {}).await;
    let mut c = client(&coordinator.url).await;

    // Agent a runs r1 to completion honestly and leaves.
    let mut a = RawAgent::connect(&coordinator.url, "a", 1).await;
    let r1 = submit(&mut c, "r1").await;
    let assign = a.assigned().await;
    assert_eq!(assign.run_id, r1.id);
    a.send(chunk(&r1.id, 1, 0, b"hello\n")).await;
    a.send(finished(&r1.id, 1, 6)).await;
    match a.next(Duration::from_secs(10)).await {
        Some(In::LogAck(ack)) => assert!(ack.finished && ack.run_id == r1.id, "{ack:?}"),
        other => panic!("expected the ack of r1, got {other:?}"),
    }
    a.send(Msg::Goodbye(pb::Goodbye::default())).await;
    drop(a);

    // Agent b holds r2, attempt 1, and tries everything else.
    let mut b = RawAgent::connect(&coordinator.url, "b", 1).await;
    let r2 = submit(&mut c, "r2").await;
    let assign = b.assigned().await;
    assert_eq!(
        (assign.run_id.as_str(), assign.attempt),
        (r2.id.as_str(), 1)
    );
    let before = files(&data);
    let r1_before = c
        .get_run(pb::RunRef { run: r1.id.clone() })
        .await
        .unwrap()
        .into_inner();

    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let traversal = format!("../../../../../../../..{}/x", outside.display());
    let absolute = outside.join("abs").display().to_string();
    let upper = r2.id.to_uppercase();
    let crafted: Vec<Msg> = vec![
        chunk(&traversal, 1, 0, b"evil"),
        chunk(&absolute, 1, 0, b"evil"),
        chunk(&format!("{}/../{}", r2.id, r1.id), 1, 0, b"evil"),
        chunk(&upper, 1, 0, b"evil"),
        // Another agent's finished run, appended at its end.
        chunk(&r1.id, 1, 6, b"evil"),
        // The run this agent holds, at an attempt it does not hold.
        chunk(&r2.id, 2, 0, b"evil"),
        chunk(&r2.id, 0, 0, b"evil"),
        Msg::Started(pb::RunStarted {
            run_id: r1.id.clone(),
            attempt: 1,
            pid: 1,
        }),
        Msg::Started(pb::RunStarted {
            run_id: traversal.clone(),
            attempt: 1,
            pid: 1,
        }),
        finished(&r1.id, 1, 10),
        finished(&r2.id, 2, 0),
        finished(&traversal, 1, 4),
        finished(&absolute, 1, 4),
    ];
    for m in crafted {
        b.send(m).await;
    }
    // Then the honest report of r2: its ack proves every earlier message was handled.
    b.send(chunk(&r2.id, 1, 0, b"mine\n")).await;
    b.send(finished(&r2.id, 1, 5)).await;
    loop {
        match b.next(Duration::from_secs(10)).await {
            Some(In::LogAck(ack)) => {
                assert_eq!(
                    (ack.run_id.as_str(), ack.attempt),
                    (r2.id.as_str(), 1),
                    "only r2 attempt 1 is acknowledged: {ack:?}"
                );
                if ack.finished {
                    break;
                }
            }
            Some(In::HeartbeatAck(_)) => {}
            other => panic!("expected the ack of r2, got {other:?}"),
        }
    }

    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside the data dir"
    );
    let after = files(&data);
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let r2_files = [
        format!("logs/{}/1.stdout", r2.id),
        format!("logs/{}/1.sums", r2.id),
    ];
    assert!(
        new.iter().all(|k| r2_files.contains(k)),
        "only r2's own files are new: {new:?}"
    );
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k} unchanged");
    }
    assert_eq!(stdout_of(&mut c, &r1.id).await, "hello\n");
    assert_eq!(stdout_of(&mut c, &r2.id).await, "mine\n");
    let r1_after = c
        .get_run(pb::RunRef { run: r1.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r1_after, r1_before, "r1's record is unchanged");
    assert_eq!(r1_after.stdout_len, 6);
    drop(b);
    coordinator.stop().await;
}
