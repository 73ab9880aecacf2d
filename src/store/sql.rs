//! Statements on either database.
//!
//! The SQL text is the same on both (`$1`-style parameters). On SQLite, statements run
//! synchronously through `rusqlite`, on the thread that asks: the writer thread for writes,
//! the caller's for reads (which WAL never makes wait). sqlx's SQLite driver would hand
//! every statement to a worker thread and back, and under load those two thread wake-ups
//! cost far more than the statement itself. On PostgreSQL the statements go over the
//! network anyway, through sqlx.

use std::borrow::Cow;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Row as _};

use super::StoreError;

/// Where a statement runs.
pub(super) enum Db<'c> {
    /// On SQLite: the writer thread's connection inside its transaction (see
    /// [`super::writer`]), or a reader's.
    Sqlite(&'c mut rusqlite::Connection),
    /// A PostgreSQL transaction.
    Postgres(&'c mut AnyConnection),
    /// A PostgreSQL pool, for reads.
    Pool(&'c AnyPool),
}

/// A parameter. Typed even when null: PostgreSQL wants to know a null's type.
#[derive(Debug, Clone)]
pub(super) enum Value<'q> {
    Int(Option<i64>),
    Text(Option<Cow<'q, str>>),
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Int(Some(value))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(value: Option<i64>) -> Self {
        Value::Int(value)
    }
}

impl<'q> From<&'q str> for Value<'q> {
    fn from(value: &'q str) -> Self {
        Value::Text(Some(Cow::Borrowed(value)))
    }
}

impl<'q> From<&'q String> for Value<'q> {
    fn from(value: &'q String) -> Self {
        Value::Text(Some(Cow::Borrowed(value)))
    }
}

impl From<String> for Value<'_> {
    fn from(value: String) -> Self {
        Value::Text(Some(Cow::Owned(value)))
    }
}

impl<'q> From<Option<&'q str>> for Value<'q> {
    fn from(value: Option<&'q str>) -> Self {
        Value::Text(value.map(Cow::Borrowed))
    }
}

impl<'q> From<&'q Option<String>> for Value<'q> {
    fn from(value: &'q Option<String>) -> Self {
        Value::Text(value.as_deref().map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Value<'_> {
    fn from(value: Option<String>) -> Self {
        Value::Text(value.map(Cow::Owned))
    }
}

/// A statement with its parameters, `$1` first.
pub(super) struct Query<'q> {
    sql: &'q str,
    args: Vec<Value<'q>>,
}

pub(super) fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
    }
}

/// A row a statement returned.
pub(super) enum Row {
    Sqlite(Vec<rusqlite::types::Value>),
    /// From PostgreSQL, through sqlx.
    Any(AnyRow),
}

/// A type a column can be read as, on either database.
pub(super) trait Column:
    rusqlite::types::FromSql + sqlx::Type<Any> + for<'r> sqlx::Decode<'r, Any>
{
}

impl<T> Column for T where
    T: rusqlite::types::FromSql + sqlx::Type<Any> + for<'r> sqlx::Decode<'r, Any>
{
}

impl Row {
    /// The column at `index` (from 0).
    pub(super) fn get<T: Column>(&self, index: usize) -> Result<T, StoreError> {
        match self {
            Row::Sqlite(values) => {
                let value = values
                    .get(index)
                    .ok_or_else(|| StoreError::Corrupt(format!("a row has no column {index}")))?;
                T::column_result(value.into()).map_err(|error| {
                    StoreError::Sqlite(rusqlite::Error::FromSqlConversionFailure(
                        index,
                        value.data_type(),
                        Box::new(error),
                    ))
                })
            }
            Row::Any(row) => Ok(row.try_get(index)?),
        }
    }
}

impl<'q> Query<'q> {
    pub(super) fn bind(mut self, value: impl Into<Value<'q>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs the statement; returns how many rows it changed.
    pub(super) async fn execute(self, db: &mut Db<'_>) -> Result<u64, StoreError> {
        match db {
            Db::Sqlite(connection) => {
                self.run_on_sqlite(connection, 0)?;
                Ok(connection.changes())
            }
            Db::Postgres(connection) => Ok(self
                .any_query()
                .execute(&mut **connection)
                .await?
                .rows_affected()),
            Db::Pool(pool) => Ok(self.any_query().execute(*pool).await?.rows_affected()),
        }
    }

    pub(super) async fn fetch_all(self, db: &mut Db<'_>) -> Result<Vec<Row>, StoreError> {
        match db {
            Db::Sqlite(connection) => self.run_on_sqlite(connection, usize::MAX),
            Db::Postgres(connection) => {
                let rows = self.any_query().fetch_all(&mut **connection).await?;
                Ok(rows.into_iter().map(Row::Any).collect())
            }
            Db::Pool(pool) => {
                let rows = self.any_query().fetch_all(*pool).await?;
                Ok(rows.into_iter().map(Row::Any).collect())
            }
        }
    }

    pub(super) async fn fetch_optional(self, db: &mut Db<'_>) -> Result<Option<Row>, StoreError> {
        match db {
            Db::Sqlite(connection) => Ok(self.run_on_sqlite(connection, 1)?.pop()),
            Db::Postgres(connection) => Ok(self
                .any_query()
                .fetch_optional(&mut **connection)
                .await?
                .map(Row::Any)),
            Db::Pool(pool) => Ok(self.any_query().fetch_optional(*pool).await?.map(Row::Any)),
        }
    }

    pub(super) async fn fetch_one(self, db: &mut Db<'_>) -> Result<Row, StoreError> {
        self.fetch_optional(db).await?.ok_or(StoreError::NoRow)
    }

    /// Runs an `INSERT` of one row into a table keyed by `id`, written without a
    /// `RETURNING` clause. Returns the new row's id, or `None` when `ON CONFLICT DO
    /// NOTHING` kept the row out.
    ///
    /// On SQLite the id comes from the connection: a `RETURNING` clause there makes every
    /// insert build a temporary table for its one row. PostgreSQL gets `RETURNING id`.
    pub(super) async fn insert(self, db: &mut Db<'_>) -> Result<Option<i64>, StoreError> {
        match db {
            Db::Sqlite(connection) => {
                self.run_on_sqlite(connection, 0)?;
                Ok((connection.changes() == 1).then(|| connection.last_insert_rowid()))
            }
            Db::Postgres(_) | Db::Pool(_) => {
                let sql = format!("{} RETURNING id", self.sql);
                let returning = Query {
                    sql: &sql,
                    args: self.args,
                };
                returning
                    .fetch_optional(db)
                    .await?
                    .map(|row| row.get(0))
                    .transpose()
            }
        }
    }

    /// Runs the statement to its end, as PostgreSQL does before it answers, and returns its
    /// first `keep` rows.
    fn run_on_sqlite(
        &self,
        connection: &rusqlite::Connection,
        keep: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let mut statement = self.prepare(connection)?;
        let columns = statement.column_count();
        let mut rows = statement.raw_query();
        let mut kept = Vec::new();
        while let Some(row) = rows.next()? {
            if kept.len() < keep {
                let values = (0..columns)
                    .map(|index| row.get::<_, rusqlite::types::Value>(index))
                    .collect::<Result<_, _>>()?;
                kept.push(Row::Sqlite(values));
            }
        }
        Ok(kept)
    }

    /// The statement, from the connection's cache, with every parameter bound: `$N` is the
    /// N-th argument wherever it appears.
    fn prepare<'c>(
        &self,
        connection: &'c rusqlite::Connection,
    ) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
        let mut statement = connection.prepare_cached(self.sql)?;
        for index in 1..=statement.parameter_count() {
            let argument = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|number| number.parse::<usize>().ok())
                .and_then(|number| self.args.get(number.checked_sub(1)?))
                .ok_or_else(|| StoreError::MissingArgument(self.sql.to_string()))?;
            match argument {
                Value::Int(value) => statement.raw_bind_parameter(index, value)?,
                Value::Text(value) => statement.raw_bind_parameter(index, value.as_deref())?,
            }
        }
        Ok(statement)
    }

    fn any_query(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        self.args
            .iter()
            .fold(sqlx::query(self.sql), |query, argument| match argument {
                Value::Int(value) => query.bind(*value),
                Value::Text(value) => query.bind(value.as_deref()),
            })
    }
}
