//! What the store's queries need of a database, so they are written once and run on either
//! backend: SQLite embedded in the coordinator (the default, [`super::sqlite`]) or a shared
//! PostgreSQL (`--store postgres://…`, [`super::pg`]).
//!
//! Queries are written in the SQL both accept (upserts with `ON CONFLICT`, `RETURNING`,
//! row-value comparisons) with SQLite's `?N` parameters, which the PostgreSQL backend renumbers
//! as `$N`. Where the two really differ (JSON inside the spec column, index hints, giving pages
//! back), a query asks [`Dialect`] for its fragment, so every difference is named here.
//!
//! Values cross as [`Value`]: integers are 64-bit on both sides, so a `u64` run number or
//! millisecond time is stored as the same `BIGINT` either way.

use super::{Result, StoreError};

/// One SQL value, as both backends store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    /// A `u64` past `i64::MAX`, which no column holds: binding it is an error naming it, as
    /// nothing should be stored or looked up in its place.
    TooBig(u64),
}

impl Value {
    /// The error of binding a [`Value::TooBig`].
    pub fn too_big(n: u64) -> String {
        format!(
            "integer {n} out of range for the store (at most {})",
            i64::MAX
        )
    }
}

/// Rust values a query binds.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

/// Rust values a query reads back; the error names what did not fit.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

/// The arguments of a query: `args![a, b]` is `&[a.to_value(), b.to_value()]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::store::sql::ToValue::to_value(&$a)),*][..]
    };
}
pub(crate) use args;

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
}

macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                match i64::try_from(*self) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::TooBig(*self as u64),
                }
            }
        }

        impl FromValue for $t {
            fn from_value(v: &Value) -> std::result::Result<Self, String> {
                match v {
                    Value::Int(i) => <$t>::try_from(*i)
                        .map_err(|_| format!("{i} does not fit {}", stringify!($t))),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )*};
}
int_values!(i64, u64, i32, u32, i16, u16, usize);

impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a result.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as a `T`; a value of another type is a corrupt record, named by its column.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {i}")))?;
        T::from_value(v).map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
    }
}

/// Which SQL a backend speaks, for the few fragments the two write differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The defined job of a run (`spec.job`, NULL for an ad hoc run), written exactly as the
    /// `runs_by_job` index's expression so the index serves it.
    pub fn job_of_spec(self) -> &'static str {
        match self {
            Dialect::Sqlite => "json_extract(spec, '$.job')",
            Dialect::Postgres => "((spec::jsonb) ->> 'job')",
        }
    }

    /// "The spec's `after` lists run `?1`", for the dependents of a run.
    pub fn after_contains_first_arg(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "EXISTS (SELECT 1 FROM json_each(runs.spec, '$.after') WHERE value = ?1)"
            }
            Dialect::Postgres => "((spec::jsonb) -> 'after') @> to_jsonb(?1::bigint)",
        }
    }

    /// An index hint after a table name: SQLite's planner otherwise prefers a full index on
    /// a partial one's column; PostgreSQL's costs pick it by themselves and have no hints.
    pub fn indexed_by(self, index: &str) -> String {
        match self {
            Dialect::Sqlite => format!("INDEXED BY {index}"),
            Dialect::Postgres => String::new(),
        }
    }
}

/// A connection to one backend: the queries of the store run through this alone.
pub trait Sql {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; the number of rows it changed.
    fn exec(&self, sql: &str, args: &[Value]) -> Result<u64>;
    /// Runs one query; every row it returns.
    fn rows(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>>;
}

/// A backend: a connection the store can also open transactions on.
pub trait Backend: Sql + Send {
    /// Starts the transaction of one batch; `relaxed`: it may commit without waiting for the
    /// disk, unless [`Backend::commit`] then says it must be durable.
    fn begin(&mut self, relaxed: bool) -> Result<()>;
    /// Commits the batch; `durable`: only return once it survives a crash.
    fn commit(&mut self, durable: bool) -> Result<()>;
    /// Undoes the batch (its closure failed); best effort, the backend reports its own error.
    fn rollback(&mut self);
    /// Where the store is, for messages (a PostgreSQL URL without its password).
    fn location(&self) -> String;
    /// The database and fence for writers beside the store (the log archive); None for SQLite,
    /// whose logs stay files beside it.
    fn shared(&self) -> Option<super::Shared> {
        None
    }
}

/// A batch's connection that holds back rows of one kind of insert and sends them as one
/// multi-row `INSERT` each [`INSERT_ROWS`], before any other statement (so every statement and
/// read sees them) and at [`Buffered::flush`].
pub struct Buffered<'a> {
    db: &'a dyn Sql,
    /// The insert's head (`INSERT INTO t(columns)`), its width, and the rows held.
    held: std::cell::RefCell<Option<(&'static str, usize, Vec<Value>)>>,
}

/// Rows per multi-row insert: 500 runs are 9,500 parameters, under both databases' limits.
const INSERT_ROWS: usize = 500;

impl<'a> Buffered<'a> {
    pub fn new(db: &'a dyn Sql) -> Self {
        Buffered {
            db,
            held: Default::default(),
        }
    }

    /// Holds one row of `INSERT INTO …(columns)` (`head`, always the same string for one kind
    /// of row) with `values`.
    pub fn insert_later(&self, head: &'static str, values: Vec<Value>) -> Result<()> {
        if self
            .held
            .borrow()
            .as_ref()
            .is_some_and(|(h, _, _)| *h != head)
        {
            self.flush()?;
        }
        let full = {
            let mut held = self.held.borrow_mut();
            let (_, width, rows) = held.get_or_insert_with(|| (head, values.len(), Vec::new()));
            debug_assert_eq!(*width, values.len());
            rows.extend(values);
            rows.len() / *width >= INSERT_ROWS
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the rows held.
    pub fn flush(&self) -> Result<()> {
        let Some((head, width, rows)) = self.held.borrow_mut().take() else {
            return Ok(());
        };
        let n = rows.len() / width;
        let tuples: Vec<String> = (0..n)
            .map(|r| {
                let marks: Vec<String> =
                    (1..=width).map(|c| format!("?{}", r * width + c)).collect();
                format!("({})", marks.join(", "))
            })
            .collect();
        self.db
            .exec(&format!("{head} VALUES {}", tuples.join(", ")), &rows)?;
        Ok(())
    }
}

impl Sql for Buffered<'_> {
    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    fn exec(&self, sql: &str, args: &[Value]) -> Result<u64> {
        self.flush()?;
        self.db.exec(sql, args)
    }

    fn rows(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        self.flush()?;
        self.db.rows(sql, args)
    }
}

impl dyn Sql + '_ {
    /// The rows of a query, each made a `T` by `f`.
    pub fn map<T>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.rows(sql, args)?.iter().map(f).collect()
    }

    /// The first row of a query made a `T` by `f`, if there is one.
    pub fn first<T>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.rows(sql, args)?.first().map(f).transpose()
    }

    /// The one value of a query that always returns one row (`SELECT count(*) …`).
    pub fn value<T: FromValue>(&self, sql: &str, args: &[Value]) -> Result<T> {
        self.first(sql, args, |r| r.get(0))?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from: {sql}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_refuse_what_does_not_fit() {
        assert_eq!(u64::from_value(&7u64.to_value()).unwrap(), 7);
        assert_eq!(u64::MAX.to_value(), Value::TooBig(u64::MAX));
        assert!(u32::from_value(&Value::Int(-1))
            .unwrap_err()
            .contains("does not fit u32"));
        assert_eq!(Option::<i32>::from_value(&Value::Null).unwrap(), None);
        assert!(String::from_value(&Value::Int(1))
            .unwrap_err()
            .contains("expected text"));
    }

    #[test]
    fn a_wrong_column_type_is_a_corrupt_record_naming_the_column() {
        let row = Row(vec![Value::Text("x".into())]);
        let err = row.get::<u64>(0).unwrap_err().to_string();
        assert!(err.contains("corrupt record: column 0"), "{err}");
    }
}
