//! Every row of one store into another, empty one: `rota-coordinator migrate`, from the
//! embedded SQLite store to PostgreSQL. One transaction on the destination, so a migration
//! that fails leaves it empty; then every table is counted on both sides.

use super::sql::{Dialect, Sql};
use super::{Result, Store, StoreError};

/// The tables and their columns, parents before the rows that refer to them.
const TABLES: &[(&str, &str)] = &[
    ("jobsets", "name, parallel, created_at"),
    ("runs", super::runs::RUN_COLUMNS),
    (
        "attempts",
        "run, attempt, agent, grp, state, started_at, finished_at, exit_code, signal, error",
    ),
    ("cancel_requests", "run, attempt"),
    ("groups", "name, max"),
    ("config", "key, value"),
    ("return_data", "run, attempt, data, problem"),
    ("artifacts", "run, path, sha256, size"),
    ("outbox", super::outbox::COLUMNS),
    ("jobset_notify", "jobset, targets"),
    ("audit", "id, at, caller, role, peer, method, target"),
    ("audit_runs", "run, audit"),
    ("prune_queue", "number, id"),
];

/// Tables whose ids the destination generates: after rows came with their ids, its sequence
/// must continue after them.
const GENERATED_IDS: &[&str] = &["outbox", "audit"];

/// What was copied: rows per table, in [`TABLES`]' order.
pub type Copied = Vec<(&'static str, u64)>;

impl Store {
    /// Copies every row of `self` into `to`, which must hold no row yet, and checks the
    /// counts of every table on both sides.
    pub fn copy_into(&self, to: &mut Store) -> Result<Copied> {
        let from: &dyn Sql = &*self.db;
        let held = counts(&*to.db)?;
        if let Some((table, n)) = held.iter().find(|(_, n)| *n > 0) {
            return Err(StoreError::NotEmpty {
                location: to.location(),
                table,
                rows: *n,
            });
        }
        to.batch(|b| {
            for (table, columns) in TABLES {
                let width = columns.split(',').count();
                let marks: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
                let insert = format!(
                    "INSERT INTO {table}({columns}) VALUES ({})",
                    marks.join(", ")
                );
                for row in from.rows(&format!("SELECT {columns} FROM {table}"), &[])? {
                    b.db.exec(&insert, &row.0)?;
                }
            }
            if b.db.dialect() == Dialect::Postgres {
                for table in GENERATED_IDS {
                    b.db.rows(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                             COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                        ),
                        &[],
                    )?;
                }
            }
            Ok::<_, StoreError>(())
        })?;
        let copied = counts(from)?;
        let landed = counts(&*to.db)?;
        if copied != landed {
            return Err(StoreError::Corrupt(format!(
                "the copy's row counts {landed:?} differ from the source's {copied:?}"
            )));
        }
        Ok(copied)
    }
}

fn counts(db: &dyn Sql) -> Result<Copied> {
    TABLES
        .iter()
        .map(|(table, _)| {
            Ok((
                *table,
                db.value(&format!("SELECT COUNT(*) FROM {table}"), &[])?,
            ))
        })
        .collect()
}
