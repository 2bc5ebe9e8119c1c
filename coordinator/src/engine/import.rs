//! Recording runs imported from another system (`ImportRuns`): finished runs straight into the
//! store, never into the scheduler core (nothing is left to decide about them). Each takes the
//! next run number, in the order given, so the importer sends them oldest first and they
//! count as the job's previous runs (PREVIOUS_GOOD/BAD) for its next runs here.

use rota_proto as pb;

use super::State;
use crate::error::Result;
use crate::service::import::IMPORTED_ATTEMPT;
use crate::store::{AttemptRecord, Batch, ReturnDataRecord, RunRecord, RunSpecData};

/// The agent an imported run shows: it ran before rota.
const IMPORTED_AGENT: &str = "imported";

/// The jobset of imported runs of a job rota does not define (yet).
const IMPORT_JOBSET: &str = "imported";

impl State {
    /// Records the runs not already in the store; returns (imported, skipped).
    pub(super) fn import_runs(
        &mut self,
        b: &Batch<'_>,
        runs: Vec<pb::ImportedRun>,
    ) -> Result<(u32, u32)> {
        let (mut imported, mut skipped) = (0, 0);
        for run in runs {
            if b.read().run_by_id(&run.id)?.is_some() {
                skipped += 1;
                continue;
            }
            let jobset = self
                .jobs_jobset(&run.job)
                .unwrap_or_else(|| IMPORT_JOBSET.to_string());
            self.ensure_jobset(b, &jobset, 0)?;
            let state = if run.exit_code == 0 {
                "success"
            } else {
                "errored"
            };
            let number = self.next_number;
            let rec = RunRecord {
                number,
                id: run.id,
                name: run.job.clone(),
                jobset,
                spec: RunSpecData {
                    env: run.env.into_iter().collect(),
                    job: Some(run.job),
                    trigger_type: run.trigger_type,
                    schedule_time: Some(run.schedule_time_ms),
                    ..Default::default()
                },
                state: state.into(),
                attempt: IMPORTED_ATTEMPT,
                agent: IMPORTED_AGENT.into(),
                exit_code: Some(run.exit_code),
                submitted_at: run.schedule_time_ms.min(run.start_time_ms),
                started_at: run.start_time_ms,
                finished_at: run.stop_time_ms,
                stdout_len: run.output_len,
                ..Default::default()
            };
            b.insert_run(&rec)?;
            b.put_attempt(&AttemptRecord {
                run: number,
                attempt: IMPORTED_ATTEMPT,
                agent: IMPORTED_AGENT.into(),
                group: String::new(),
                state: state.into(),
                started_at: rec.started_at,
                finished_at: rec.finished_at,
                exit_code: rec.exit_code,
                signal: None,
                error: String::new(),
            })?;
            if !run.return_data.is_empty() {
                // Checked as JSON by the service (`validate::import_runs`).
                b.put_return_data(
                    number,
                    &ReturnDataRecord {
                        attempt: IMPORTED_ATTEMPT,
                        data: run.return_data,
                        problem: String::new(),
                    },
                )?;
            }
            self.next_number += 1;
            imported += 1;
        }
        Ok((imported, skipped))
    }
}
