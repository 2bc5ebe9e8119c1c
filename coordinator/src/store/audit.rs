//! The audit trail: one row per state-changing call, written in the batch that made the
//! change, with the runs it named in `audit_runs` (so `rota audit --run N` is an index
//! lookup). Retention deletes an entry with the last run it names (`Batch::delete_runs`) and
//! one naming no run (a group's max, a drain, an apply) once it is older than the policy's
//! `max_age` ([`Batch::prune_audit`]).

use super::sql::args;

use super::{Batch, Reader, Result};

/// One audit row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: u64,
    pub at: u64,
    pub caller: String,
    pub role: String,
    pub peer: String,
    pub method: String,
    pub target: String,
    pub runs: Vec<u64>,
}

const INSERT_AUDIT_RUN: &str = "INSERT INTO audit_runs(run, audit)";

impl Batch<'_> {
    pub fn insert_audit(&self, a: &AuditRecord) -> Result<u64> {
        let id: u64 = self.db.value(
            "INSERT INTO audit(at, caller, role, peer, method, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            args![a.at, a.caller, a.role, a.peer, a.method, a.target],
        )?;
        // The runs it names (a submit names every run it made) go in rows of many; the entry
        // is new, so each run once is each pair once.
        let runs: std::collections::BTreeSet<u64> = a.runs.iter().copied().collect();
        for run in runs {
            self.buffered
                .insert_later(INSERT_AUDIT_RUN, args![run, id].to_vec())?;
        }
        Ok(id)
    }

    pub fn prune_audit(&self, cutoff: u64, limit: u32) -> Result<usize> {
        let n = self.db.exec(
            &format!(
                "DELETE FROM audit WHERE id IN (SELECT a.id FROM audit a {} \
                 WHERE a.at < ?1 AND NOT EXISTS (SELECT 1 FROM audit_runs r WHERE r.audit = a.id) \
                 ORDER BY a.at LIMIT ?2)",
                self.db.dialect().indexed_by("audit_by_time")
            ),
            args![cutoff, limit],
        )?;
        Ok(n as usize)
    }
}

impl Reader<'_> {
    pub fn audit(&self, run: u64, since: u64, limit: u32) -> Result<Vec<AuditRecord>> {
        let entry = |r: &super::sql::Row| {
            Ok(AuditRecord {
                id: r.get(0)?,
                at: r.get(1)?,
                caller: r.get(2)?,
                role: r.get(3)?,
                peer: r.get(4)?,
                method: r.get(5)?,
                target: r.get(6)?,
                runs: vec![],
            })
        };
        let mut out = if run == 0 {
            self.db.map(
                "SELECT id, at, caller, role, peer, method, target FROM audit \
                 WHERE at >= ?1 ORDER BY id DESC LIMIT ?2",
                args![since, limit],
                entry,
            )?
        } else {
            self.db.map(
                "SELECT a.id, a.at, a.caller, a.role, a.peer, a.method, a.target FROM audit_runs r \
                 JOIN audit a ON a.id = r.audit WHERE r.run = ?1 AND a.at >= ?2 ORDER BY a.id DESC LIMIT ?3",
                args![run, since, limit],
                entry,
            )?
        };
        for a in &mut out {
            a.runs = self.db.map(
                "SELECT run FROM audit_runs WHERE audit = ?1 ORDER BY run LIMIT 1000",
                args![a.id],
                |r| r.get(0),
            )?;
        }
        Ok(out)
    }
}
