//! The audit trail: one row per state-changing call, written in the batch that made the
//! change, with the runs it named in `audit_runs` (so `rota audit --run N` is an index
//! lookup). Retention deletes an entry with the last run it names (`Batch::delete_runs`) and
//! one naming no run (a group's max, a drain, an apply) once it is older than the policy's
//! `max_age` ([`Batch::prune_audit`]).

use rusqlite::params;

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

impl Batch<'_> {
    /// Inserts a row (its `id` is ignored) and its runs.
    pub fn insert_audit(&self, a: &AuditRecord) -> Result<u64> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO audit(at, caller, role, peer, method, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.execute(params![a.at, a.caller, a.role, a.peer, a.method, a.target])?;
        let id = self.tx.last_insert_rowid() as u64;
        let mut stmt = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO audit_runs(run, audit) VALUES (?1, ?2)")?;
        for run in &a.runs {
            stmt.execute(params![run, id])?;
        }
        Ok(id)
    }

    /// Deletes up to `limit` of the oldest entries from before `cutoff` (unix ms) that name no
    /// run (those go with their runs), through the `audit_by_time` index; returns how many.
    pub fn prune_audit(&self, cutoff: u64, limit: u32) -> Result<usize> {
        let mut stmt = self.tx.prepare_cached(
            "DELETE FROM audit WHERE id IN (SELECT a.id FROM audit a INDEXED BY audit_by_time \
             WHERE a.at < ?1 AND NOT EXISTS (SELECT 1 FROM audit_runs r WHERE r.audit = a.id) \
             ORDER BY a.at LIMIT ?2)",
        )?;
        Ok(stmt.execute(params![cutoff, limit])?)
    }
}

impl Reader<'_> {
    /// Newest first: of one run when `run` is not 0, from `since` (unix ms) on; each with its
    /// first 1,000 runs (its `target` says how many it named).
    pub fn audit(&self, run: u64, since: u64, limit: u32) -> Result<Vec<AuditRecord>> {
        let sql = if run == 0 {
            "SELECT id, at, caller, role, peer, method, target FROM audit \
             WHERE at >= ?2 AND ?1 = 0 ORDER BY id DESC LIMIT ?3"
        } else {
            "SELECT a.id, a.at, a.caller, a.role, a.peer, a.method, a.target FROM audit_runs r \
             JOIN audit a ON a.id = r.audit WHERE r.run = ?1 AND a.at >= ?2 ORDER BY a.id DESC LIMIT ?3"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![run, since, limit], |r| {
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
        })?;
        let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        let mut runs = self.conn.prepare_cached(
            "SELECT run FROM audit_runs WHERE audit = ?1 ORDER BY run LIMIT 1000",
        )?;
        for a in &mut out {
            a.runs = runs
                .query_map(params![a.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(out)
    }
}
