//! The long-lived control calls: `logs` (follows a live run), `watch` and `wait`. They
//! subscribe before they look, so no change between the look and the wait is missed.

use std::collections::HashMap;
use std::pin::Pin;

use futures::Stream;
use rota_proto as pb;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use crate::engine::{Command, EngineHandle};
use crate::error::Error;
use crate::logs::Stream as LogStream;
use crate::store::is_final_state;

pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Ends `stream` with UNAVAILABLE when the coordinator shuts down, so a follower can tell a
/// stop from the end of what it follows (which ends OK) and reconnect.
pub fn until_shutdown<T: Send + 'static>(
    stream: BoxStream<T>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> BoxStream<T> {
    use futures::StreamExt;
    Box::pin(futures::stream::unfold(
        Some((stream, shutdown)),
        |state| async move {
            let (mut stream, mut shutdown) = state?;
            let item = tokio::select! {
                biased;
                // A closed channel means the server is gone: a stop as well.
                _ = shutdown.wait_for(|s| *s) => return Some((Err(shutting_down()), None)),
                item = stream.next() => item?,
            };
            Some((item, Some((stream, shutdown))))
        },
    ))
}

/// What a stream or wait cut short by a shutdown ends with.
pub fn shutting_down() -> Status {
    Status::unavailable("coordinator is shutting down")
}

/// Bytes per LogsResponse.
const CHUNK: usize = 256 << 10;

pub async fn logs(
    engine: EngineHandle,
    req: pb::LogsRequest,
) -> Result<BoxStream<pb::LogsResponse>, Status> {
    let run = engine.ask(|t| Command::GetRun(req.run.clone(), t)).await?;
    // One attempt per call: the one asked for, else the latest at the start. Offsets are
    // within that attempt's files, so a follow never jumps to another attempt mid-stream.
    let attempt = match req.attempt {
        0 => run.attempt,
        n if n <= run.attempt => n,
        n => {
            return Err(Status::not_found(format!(
                "run {} has no attempt {n} (its latest is {})",
                run.number, run.attempt
            )))
        }
    };
    let streams: Vec<LogStream> = match (req.stdout, req.stderr) {
        (true, false) => vec![LogStream::Stdout],
        (false, true) => vec![LogStream::Stderr],
        _ => vec![LogStream::Stdout, LogStream::Stderr],
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let hub = engine.logs.clone();
        let mut changes = hub.subscribe(&run.id);
        let mut events = engine.events.subscribe();
        let mut run = run;
        if req.follow && !is_final_state(&run.state) {
            // The run may have finished between the first look and the subscription (its
            // wake-up would then be lost): look again now that we are subscribed.
            match engine.ask(|t| Command::GetRun(run.id.clone(), t)).await {
                Ok(r) => run = r,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
        }
        let mut offsets: HashMap<LogStream, u64> = HashMap::from([
            (LogStream::Stdout, req.stdout_offset),
            (LogStream::Stderr, req.stderr_offset),
        ]);
        loop {
            // Re-read the state before the files: once final (or past this attempt), the files
            // are complete.
            let done = is_final_state(&run.state) || run.attempt != attempt || !req.follow;
            if is_final_state(&run.state) {
                hub.finished(&run.id);
            }
            for &s in &streams {
                // A finished attempt's log is checked against its recorded length and sums.
                let mut reader =
                    match tokio::task::block_in_place(|| hub.reader(&run.id, attempt, s)) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(Error::from(e).into())).await;
                            return;
                        }
                    };
                loop {
                    let off = offsets.entry(s).or_default();
                    let data = match tokio::task::block_in_place(|| reader.read_at(*off, CHUNK)) {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = tx.send(Err(Error::from(e).into())).await;
                            return;
                        }
                    };
                    if data.is_empty() {
                        break;
                    }
                    let offset = *off;
                    *off += data.len() as u64;
                    let stream = match s {
                        LogStream::Stdout => pb::LogStream::Stdout,
                        LogStream::Stderr => pb::LogStream::Stderr,
                    } as i32;
                    if tx
                        .send(Ok(pb::LogsResponse {
                            stream,
                            offset,
                            data,
                            attempt,
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if done {
                return;
            }
            // Woken by new bytes, by the run finishing (the sender goes away), or by a change
            // of the run (a new attempt leaves this one complete).
            let reread = tokio::select! {
                changed = changes.changed() => changed.is_err(),
                event = events.recv() => match event {
                    Ok(r) if r.number == run.number => {
                        run = r;
                        false
                    }
                    Ok(_) => false,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => {
                        let _ = tx.send(Err(shutting_down())).await;
                        return;
                    }
                },
            };
            if reread {
                match engine.ask(|t| Command::GetRun(run.id.clone(), t)).await {
                    Ok(r) => run = r,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
                if !is_final_state(&run.state) {
                    changes = hub.subscribe(&run.id);
                }
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

pub fn watch(engine: &EngineHandle, req: pb::WatchRequest) -> BoxStream<pb::RunEvent> {
    let mut events = engine.events.subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(run) => {
                    if !req.jobset.is_empty() && run.jobset != req.jobset {
                        continue;
                    }
                    if tx.send(Ok(pb::RunEvent { run: Some(run) })).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!("watch lagged, {n} events skipped"),
                Err(RecvError::Closed) => return,
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

pub async fn wait(engine: &EngineHandle, req: pb::WaitRequest) -> Result<pb::WaitResponse, Status> {
    let mut events = engine.events.subscribe();
    let mut runs: HashMap<u64, pb::Run> = HashMap::new();
    let load = |engine: EngineHandle, req: pb::WaitRequest| async move {
        if req.jobset.is_empty() {
            let mut out = Vec::new();
            for r in &req.runs {
                out.push(engine.ask(|t| Command::GetRun(r.clone(), t)).await?);
            }
            Ok::<_, crate::error::Error>(out)
        } else {
            engine
                .ask(|t| Command::GetJobset(req.jobset.clone(), t))
                .await?;
            let list = pb::ListRunsRequest {
                jobset: req.jobset.clone(),
                ..Default::default()
            };
            engine.ask(|t| Command::ListRuns(list, t)).await
        }
    };
    if req.runs.is_empty() && req.jobset.is_empty() {
        return Err(Status::invalid_argument("wait needs runs or a jobset"));
    }
    for r in load(engine.clone(), req.clone()).await? {
        runs.insert(r.number, r);
    }
    loop {
        if runs.values().all(|r| is_final_state(&r.state)) {
            let mut list: Vec<pb::Run> = runs.into_values().collect();
            list.sort_by_key(|r| r.number);
            let all_succeeded = list.iter().all(|r| r.state == "success");
            return Ok(pb::WaitResponse {
                runs: list,
                all_succeeded,
            });
        }
        match events.recv().await {
            Ok(run) => {
                let tracked = runs.contains_key(&run.number)
                    || (!req.jobset.is_empty() && run.jobset == req.jobset);
                if tracked {
                    runs.insert(run.number, run);
                }
            }
            Err(RecvError::Lagged(_)) => {
                for r in load(engine.clone(), req.clone()).await? {
                    runs.insert(r.number, r);
                }
            }
            Err(RecvError::Closed) => {
                return Err(Status::unavailable("coordinator is shutting down"))
            }
        }
    }
}
