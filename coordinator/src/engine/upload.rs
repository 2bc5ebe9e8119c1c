//! `rota artifact upload` in the engine: a file a run uploaded while it runs joins its
//! artifacts. The service has checked the capability and stored the content whole; what only
//! the engine can say is whether that attempt is still the run's current one and running,
//! so this is checked here, in the batch that records it: an upload that races the run's end
//! is either recorded before the result or refused.

use super::State;
use crate::error::{Error, Result};
use crate::logs::RunId;
use crate::store::{ArtifactRecord, Batch};

impl State {
    pub(super) fn add_artifact(
        &mut self,
        b: &Batch<'_>,
        run: &RunId,
        attempt: u32,
        file: ArtifactRecord,
    ) -> Result<u64> {
        let id = run.to_string();
        let running = self
            .ids
            .get(&id)
            .and_then(|n| self.live.get(n))
            .filter(|r| r.attempt == attempt && matches!(r.state.as_str(), "assigned" | "running"));
        let Some(number) = running.map(|r| r.number) else {
            return Err(Error::FailedPrecondition(format!(
                "run {id} attempt {attempt} is not running: a run uploads artifacts only while \
                 that attempt runs"
            )));
        };
        let kept = b.read().artifacts(number)?;
        if kept.len() >= rota_proto::MAX_ARTIFACTS_PER_RUN
            && !kept.iter().any(|a| a.path == file.path)
        {
            return Err(Error::FailedPrecondition(format!(
                "run {number} already keeps {} artifacts, the most one run may",
                kept.len()
            )));
        }
        if !self.artifacts.has(&file.sha256, file.size) {
            return Err(Error::FailedPrecondition(format!(
                "artifact {} of run {number} is not stored whole",
                file.path
            )));
        }
        b.add_artifact(number, &file)?;
        self.changed.push(number);
        Ok(number)
    }
}
