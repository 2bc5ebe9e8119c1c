//! The audit trail: every state-changing control call is recorded by the engine in the batch
//! that applies it, so the trail and the change are committed together or not at all.

use rota_proto as pb;

use super::State;
use crate::error::Result;
use crate::store::{AuditRecord, Batch};

/// Who asked for a change: the credential (from `rota_proto::access::Caller`) and the peer's
/// address. Every state-changing command carries one, so there is one code path whoever calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    /// agent | read | admin | all
    pub role: String,
    /// ip:port; empty when unknown.
    pub peer: String,
}

impl Actor {
    /// A checked caller (gRPC, or an HTTP handler after `HttpState::authorize`) from `peer`.
    pub fn new(caller: &rota_proto::access::Caller, peer: Option<std::net::SocketAddr>) -> Actor {
        Actor {
            name: caller.name.to_string(),
            role: caller.role.as_str().to_string(),
            peer: peer.map(|a| a.to_string()).unwrap_or_default(),
        }
    }

    /// A trigger file dropped into the data dir's `trigger/` (whoever may write there).
    pub fn trigger_file() -> Actor {
        Actor {
            name: "trigger-file".into(),
            role: "all".into(),
            peer: String::new(),
        }
    }

    /// The coordinator itself applying its `--config` (at start and on SIGHUP).
    pub fn config_file() -> Actor {
        Actor {
            name: "config-file".into(),
            role: "all".into(),
            peer: String::new(),
        }
    }
}

/// Runs as a person reads them: `run 4`, `runs 4-9`, `runs 3, 7, 12`.
pub fn runs_text(runs: &[u64]) -> String {
    match runs {
        [] => "no runs".into(),
        [one] => format!("run {one}"),
        [first, .., last] if runs.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("runs {first}-{last}")
        }
        many if many.len() <= 20 => {
            let list: Vec<String> = many.iter().map(u64::to_string).collect();
            format!("runs {}", list.join(", "))
        }
        many => format!("{} runs", many.len()),
    }
}

/// Most audit entries one retention sweep deletes.
const PRUNE_BATCH: u32 = 5000;

/// What a listing gives when the request sets no limit.
const DEFAULT_LIMIT: u32 = 1000;

impl State {
    /// Records one change in this batch.
    pub(super) fn audit(
        &self,
        b: &Batch<'_>,
        actor: &Actor,
        method: &str,
        target: String,
        runs: &[u64],
    ) -> Result<()> {
        b.insert_audit(&AuditRecord {
            id: 0,
            at: self.now,
            caller: actor.name.clone(),
            role: actor.role.clone(),
            peer: actor.peer.clone(),
            method: method.into(),
            target,
            runs: runs.to_vec(),
        })?;
        Ok(())
    }

    /// Deletes entries naming no run from before `cutoff` (entries naming runs go with
    /// them): at most [`PRUNE_BATCH`] per call, so the batch stays short; called as each
    /// retention age sweep starts, so a backlog goes over a few sweeps.
    pub(super) fn prune_audit(&self, b: &Batch<'_>, cutoff: u64) -> Result<()> {
        let gone = b.prune_audit(cutoff, PRUNE_BATCH)?;
        if gone > 0 {
            tracing::debug!(entries = gone, "pruned audit entries naming no run");
        }
        Ok(())
    }

    pub(super) fn list_audit(
        &self,
        b: &Batch<'_>,
        req: &pb::ListAuditRequest,
    ) -> Result<Vec<pb::AuditEntry>> {
        let limit = super::listing_limit(req.limit, DEFAULT_LIMIT);
        Ok(b.read()
            .audit(req.run, req.since_ms, limit)?
            .into_iter()
            .map(|a| pb::AuditEntry {
                id: a.id,
                at_ms: a.at,
                caller: a.caller,
                role: a.role,
                peer: a.peer,
                method: a.method,
                target: a.target,
                runs: a.runs,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::runs_text;

    #[test]
    fn runs_read_as_ranges_or_lists() {
        assert_eq!(runs_text(&[4]), "run 4");
        assert_eq!(runs_text(&[4, 5, 6]), "runs 4-6");
        assert_eq!(runs_text(&[3, 7]), "runs 3, 7");
        let many: Vec<u64> = (0..30).map(|n| n * 2).collect();
        assert_eq!(runs_text(&many), "30 runs");
    }
}
