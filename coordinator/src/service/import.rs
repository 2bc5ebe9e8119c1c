//! `ImportRuns`: another system's finished runs (`rota import dsari`). The output is written to
//! the log store here, as an agent's logs are (log bytes never pass through the engine), and
//! made whole and durable before the engine records the run, so a recorded run always has its
//! log. The output of a run already in the store is not written at all (whatever run has that
//! id keeps its log as it is), and the engine skips the run.

use rota_proto as pb;

use crate::engine::{Command, EngineHandle};
use crate::error::Result;
use crate::logs::{LogFiles, RunId, Stream};

/// The attempt an imported run's output is stored under: it ran once, elsewhere.
pub const IMPORTED_ATTEMPT: u32 = 1;

/// Writes the request's output pieces, then records the runs whose output is complete.
pub async fn import_runs(
    engine: &EngineHandle,
    req: pb::ImportRunsRequest,
) -> Result<pb::ImportRunsResponse> {
    super::validate::import_runs(&req)?;
    // Which ids the store has already, through the engine's read path (one batch for all).
    let mut ids: Vec<&str> = req.runs.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let found = futures::future::join_all(ids.iter().map(|id| {
        let id = id.to_string();
        engine.ask(|t| Command::GetRun(id, t))
    }))
    .await;
    let mut present = std::collections::HashSet::new();
    for (id, found) in ids.iter().zip(found) {
        match found {
            Ok(_) => {
                present.insert(id.to_string());
            }
            Err(crate::error::Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let hub = engine.logs.clone();
    let cap = engine.config.max_log_bytes;
    let complete = tokio::task::block_in_place(|| -> Result<Vec<pb::ImportedRun>> {
        let mut files = LogFiles::default();
        let mut complete = Vec::new();
        for mut run in req.runs {
            if present.contains(&run.id) {
                if run.output_offset + run.output.len() as u64 == run.output_len {
                    run.output = Vec::new();
                    complete.push(run);
                }
                continue;
            }
            let id = RunId::parse(&run.id).expect("validated");
            hub.write(
                &mut files,
                &id,
                IMPORTED_ATTEMPT,
                Stream::Stdout,
                run.output_offset,
                &run.output,
                cap,
            )
            .map_err(|source| crate::logs::LogError::Io {
                run: run.id.clone(),
                source,
            })?;
            if run.output_offset + run.output.len() as u64 == run.output_len {
                files.finish(&hub, &id, IMPORTED_ATTEMPT, [run.output_len, 0])?;
                run.output = Vec::new();
                complete.push(run);
            }
        }
        Ok(complete)
    })?;
    let pieces = complete.len();
    let (imported, skipped) = engine.ask(|t| Command::ImportRuns(complete, t)).await?;
    tracing::info!(pieces, imported, skipped, "runs imported");
    Ok(pb::ImportRunsResponse { imported, skipped })
}
