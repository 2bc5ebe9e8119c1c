//! The shared backend: PostgreSQL at `--store postgres://USER@HOST/DB`, for a farm that has
//! outgrown one coordinator's disk. The same queries as SQLite (see [`super::sql`]) through the
//! `postgres` crate (sfackler's blocking client over tokio-postgres): the engine owns the store
//! on its own thread, which is what a blocking client is for, and it keeps one connection, as
//! the engine is the store's one writer and makes one transaction per batch.
//!
//! A connection the server dropped (a restart, a failover of the database) is made again at
//! the next batch or read outside one; the batch that was open fails, and nothing of it was
//! committed, so the engine's usual handling of a failed batch applies.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};

use super::lease::{Claim, Keeper, Lease};
use super::sql::{Backend, Dialect, Row, Sql, Value};
use super::{pg_schema, Result, StoreError};

pub struct Postgres {
    config: postgres::Config,
    location: String,
    /// The lease this coordinator holds; every batch checks its epoch.
    lease: Lease,
    keeper: Keeper,
    conn: RefCell<Conn>,
    /// A batch is open: a dropped connection must fail it, not be replaced under it.
    in_batch: bool,
    relaxed: bool,
}

struct Conn {
    client: Client,
    /// Statements by their SQL as the store wrote it (with `?N`).
    prepared: HashMap<String, Statement>,
}

impl Postgres {
    /// Connects to the database at `url`, brings its schema up to date and waits until this
    /// coordinator holds the database's lease (see [`super::lease`]).
    pub fn connect(url: &str, claim: &Claim) -> Result<Postgres> {
        let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Url {
            url: redact(url),
            reason: format!("{e}"),
        })?;
        // Every connection of this coordinator (store, lease keeper, log archive) is named
        // for its holder, so a taker can end them once its lease has lapsed.
        config.application_name(&super::lease::session_name(&claim.holder));
        let location = describe(&config);
        let mut client = connect_within(&config, &location, crate::restart::patience())?;
        pg_schema::migrate(&mut client, &location)?;
        let lease = Lease::acquire(&mut client, claim, &location)?;
        let keeper = lease.keep(config.clone(), location.clone(), claim.on_lost.clone());
        Ok(Postgres {
            config,
            location,
            lease,
            keeper,
            conn: RefCell::new(Conn {
                client,
                prepared: HashMap::new(),
            }),
            in_batch: false,
            relaxed: false,
        })
    }

    /// Makes the connection again if the server dropped it, between batches only.
    fn ensure_connected(&self) -> Result<()> {
        let mut conn = self.conn.borrow_mut();
        if self.in_batch || !conn.client.is_closed() {
            return Ok(());
        }
        tracing::warn!(store = %self.location, "database connection lost; connecting again");
        conn.client = connect(&self.config, &self.location)?;
        conn.prepared.clear();
        Ok(())
    }

    fn run<T>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnOnce(
            &mut Client,
            &Statement,
            &[&(dyn ToSql + Sync)],
        ) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        self.ensure_connected()?;
        let mut conn = self.conn.borrow_mut();
        let Conn { client, prepared } = &mut *conn;
        let stmt = match prepared.get(sql) {
            Some(stmt) => stmt.clone(),
            None => {
                let stmt = client.prepare(&dollar_params(sql))?;
                prepared.insert(sql.to_owned(), stmt.clone());
                stmt
            }
        };
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|v| v as _).collect();
        Ok(f(client, &stmt, &params)?)
    }
}

impl Drop for Postgres {
    /// A store closed (a coordinator stopping, a migration done) hands its lease over now.
    fn drop(&mut self) {
        let client = &mut self.conn.get_mut().client;
        if !client.is_closed() {
            let _ = client.execute(Lease::RELEASE, &[&self.lease.holder, &self.lease.epoch]);
        }
    }
}

/// [`connect`], trying again for up to `patience` while the database is not there yet.
fn connect_within(
    config: &postgres::Config,
    location: &str,
    patience: std::time::Duration,
) -> Result<Client> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match connect(config, location) {
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(store = location, "waiting for the database: {e}");
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            done => return done,
        }
    }
}

fn connect(config: &postgres::Config, location: &str) -> Result<Client> {
    config.connect(NoTls).map_err(|source| StoreError::Connect {
        location: location.to_owned(),
        source,
    })
}

impl Sql for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn exec(&self, sql: &str, args: &[Value]) -> Result<u64> {
        self.run(sql, args, |client, stmt, params| {
            client.execute(stmt, params)
        })
    }

    fn rows(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        let rows = self.run(sql, args, |client, stmt, params| client.query(stmt, params))?;
        rows.iter().map(row_values).collect()
    }
}

impl Backend for Postgres {
    fn shared(&self) -> Option<super::Shared> {
        Some(super::Shared {
            config: self.config.clone(),
            location: self.location.clone(),
            epoch: self.lease.epoch,
            lost: self.keeper.lost_flag(),
        })
    }

    fn begin(&mut self, relaxed: bool) -> Result<()> {
        self.ensure_connected()?;
        let client = &mut self.conn.get_mut().client;
        // BEGIN and the fence in one round trip (the simple protocol takes both at once).
        let fenced = client
            .simple_query(&format!("BEGIN; {}", Lease::FENCE))
            .map_err(StoreError::from)
            .and_then(|messages| {
                let epoch = messages.iter().find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
                    _ => None,
                });
                self.lease.fence(epoch, &self.keeper, &self.location)
            });
        if let Err(e) = fenced {
            let _ = client.batch_execute("ROLLBACK");
            return Err(e);
        }
        self.in_batch = true;
        self.relaxed = relaxed;
        Ok(())
    }

    /// A batch nobody waits on commits with `synchronous_commit = off`: atomic and in order,
    /// a server crash loses at most the last such commits, never a later durable one.
    fn commit(&mut self, durable: bool) -> Result<()> {
        let relaxed = std::mem::take(&mut self.relaxed);
        self.in_batch = false;
        let client = &mut self.conn.get_mut().client;
        let sql = if relaxed && !durable {
            "SET LOCAL synchronous_commit TO OFF; COMMIT"
        } else {
            "COMMIT"
        };
        if let Err(e) = client.batch_execute(sql) {
            let _ = client.batch_execute("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }

    fn rollback(&mut self) {
        self.in_batch = false;
        self.relaxed = false;
        let client = &mut self.conn.get_mut().client;
        if client.is_closed() {
            return;
        }
        if let Err(e) = client.batch_execute("ROLLBACK") {
            tracing::warn!(store = %self.location, "store rollback: {e}");
        }
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

/// The store's `?N` parameters as PostgreSQL's `$N` (no query has a `?` inside a literal).
fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn row_values(row: &postgres::Row) -> Result<Row> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|n| Value::Int(n.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|n| Value::Int(n.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|b| Value::Int(b.into()))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
        } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(ty) {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(StoreError::Corrupt(format!(
                "column {} has type {ty}, which the store does not read",
                column.name()
            )));
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// Each value is written as the type PostgreSQL inferred for its parameter, so one `Int` binds
/// to a `BIGINT` column, an `INTEGER` comparison or a `BOOLEAN` alike, and a NULL to any.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) if *ty == Type::INT8 => i.to_sql(ty, out),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::BOOL => (*i != 0).to_sql(ty, out),
            Value::Int(i) => Err(format!("integer {i} for a parameter of type {ty}").into()),
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
            Value::TooBig(n) => Err(Value::too_big(*n).into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `postgres://user@host:port/db`: where the store is, without a password, for messages.
fn describe(config: &postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// A URL as given, its password (if any) replaced, for the message about a URL that does not
/// parse.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_in_place() {
        assert_eq!(
            dollar_params("SELECT a FROM t WHERE a = ?1 AND b > ?12 OR c ?"),
            "SELECT a FROM t WHERE a = $1 AND b > $12 OR c ?"
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://rota:s3cret@db:5432/rota"),
            "postgres://rota:***@db:5432/rota"
        );
        assert_eq!(redact("postgres://rota@db/rota"), "postgres://rota@db/rota");
        let config: postgres::Config = "postgres://rota:s3cret@db:6000/farm".parse().unwrap();
        assert_eq!(describe(&config), "postgres://rota@db:6000/farm");
    }
}
