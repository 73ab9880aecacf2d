//! The database: the only module with SQL. SQLite and PostgreSQL both go through sqlx's
//! `Any` driver with the same SQL text (`$1`-style parameters); only the migrations differ.
//! Rows are read by column name into types. Timestamps are Unix milliseconds.
//!
//! Transactions here are short and never wait on the network: callers make their upstream
//! calls before or after, never inside. On SQLite every write goes through one connection
//! (SQLite runs one write transaction at a time anyway; queueing for it in the pool is
//! cheaper than retrying on `SQLITE_BUSY`), and reads through a pool of their own, which
//! WAL never makes wait for the writer. sqlx runs each SQLite connection on a thread of its
//! own, so no statement blocks an async worker thread.

mod admin;
mod console;
mod conversations;
mod intake;
mod messages;
mod outbox;
mod webex_events;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};

use crate::domain::OutboxEntry;

pub use admin::{MeetingInfo, PurgeCutoffs, PurgeReport, TranscriptEntry};
pub use console::{ConsoleSession, QueueItem};
pub use conversations::{ConversationInfo, ExpertMessage};
pub use messages::{Answer, Claim, FollowUps, LinkReply, NewMeeting, ReceiptMatch, Recorded};
pub use outbox::{OutboxRow, OutboxState, Outcome, Settlement};
pub use webex_events::WebexEvent;

/// How long a request waits for the database (a connection, or another writer's lock)
/// before it gives up with [`StoreError::Busy`]: well within the 10 s Webex Connect waits
/// for an answer, so that it gets a `503` it can retry rather than a timeout.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("the database is busy: {0}")]
    Busy(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH (a file) or postgres://…")]
    UnsupportedUrl(String),
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: String },
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let busy = match &error {
            sqlx::Error::PoolTimedOut => true,
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended codes included.
            // PostgreSQL: lock_not_available (55P03), query_canceled (57014).
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                let code = code.as_ref();
                code == "55P03"
                    || code == "57014"
                    || code
                        .parse::<i32>()
                        .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
            }),
            _ => false,
        };
        if busy {
            StoreError::Busy(error)
        } else {
            StoreError::Database(error)
        }
    }
}

impl StoreError {
    /// The database did not answer in time; the same request can succeed later.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Busy(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Write transactions: one connection on SQLite.
    writer: AnyPool,
    /// Reads; on PostgreSQL the same pool as the writer's.
    reader: AnyPool,
    /// Where customers' messages are recorded, in batches (`None` in the intake's own
    /// handle, which must not keep itself running).
    intake: Option<intake::Intake>,
}

/// A write transaction.
type Tx = Transaction<'static, Any>;

impl Store {
    /// Opens the database at `url`: `sqlite://PATH` (created if missing) or
    /// `postgres://…` (several icbridge instances can share it).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|_| StoreError::UnsupportedUrl(url.to_string()))?;
        if url.starts_with("sqlite:") {
            // The writer and the readers are connections of their own: each would get an
            // in-memory database of its own.
            if is_in_memory(url) {
                return Err(StoreError::UnsupportedUrl(url.to_string()));
            }
            if !Any::database_exists(url).await? {
                Any::create_database(url).await?;
            }
            let writer = sqlite_pool(1, false).connect_with(options.clone()).await?;
            let reader = sqlite_pool(4, true).connect_with(options).await?;
            Ok(Self::with_intake(Backend::Sqlite, writer, reader))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(BUSY_TIMEOUT)
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        // A row lock held too long by another transaction ends in `Busy`.
                        connection.execute("SET lock_timeout = '2s'").await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await?;
            Ok(Self::with_intake(Backend::Postgres, pool.clone(), pool))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    fn with_intake(backend: Backend, writer: AnyPool, reader: AnyPool) -> Self {
        let store = Self {
            backend,
            writer,
            reader,
            intake: None,
        };
        Self {
            intake: Some(intake::Intake::start(store.clone())),
            ..store
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.writer)
                    .await?
            }
            // sqlx holds an advisory lock while it migrates: instances starting together
            // wait for each other.
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.writer)
                    .await?
            }
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`IMMEDIATE`),
    /// so that a transaction that reads first cannot find, when it writes, that another
    /// process wrote in between.
    async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }
}

fn sqlite_pool(connections: u32, read_only: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(BUSY_TIMEOUT)
        // Connections stay open: SQLite's page cache lives with them.
        .idle_timeout(None)
        .max_lifetime(None)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                // WAL lets readers proceed while the writer commits; NORMAL sync is durable
                // across process crashes in WAL mode; another process's write lock is
                // waited for, up to the busy timeout.
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA busy_timeout = 2000",
                    "PRAGMA foreign_keys = ON",
                ] {
                    connection.execute(pragma).await?;
                }
                if read_only {
                    // A read that tried to write would be a bug; make it fail loudly.
                    connection.execute("PRAGMA query_only = ON").await?;
                }
                Ok(())
            })
        })
}

/// Queues deliveries of one conversation in the transaction that causes them.
async fn insert_outbox(
    tx: &mut AnyConnection,
    entries: &[OutboxEntry],
    conversation_id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let rows: Vec<_> = entries
        .iter()
        .map(|entry| (entry, conversation_id, now))
        .collect();
    insert_outbox_rows(tx, &rows).await
}

/// Queues deliveries, each with its conversation and the time it was queued, in one
/// statement.
async fn insert_outbox_rows(
    tx: &mut AnyConnection,
    rows: &[(&OutboxEntry, Option<&str>, i64)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..rows.len())
        .map(|row| {
            let n = row * 4;
            // The time it was queued is when it is first due.
            format!("(${}, ${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4, n + 4)
        })
        .collect();
    let sql = format!(
        "INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at)
         VALUES {}",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (entry, conversation_id, now) in rows {
        query = query
            .bind(&entry.kind)
            .bind(*conversation_id)
            .bind(&entry.payload)
            .bind(*now);
    }
    query.execute(tx).await?;
    Ok(())
}

/// Whether `url` names an in-memory SQLite database (`sqlite::memory:`, `?mode=memory`).
fn is_in_memory(url: &str) -> bool {
    let (database, query) = url.split_once('?').unwrap_or((url, ""));
    let database = database
        .trim_start_matches("sqlite:")
        .trim_start_matches("//");
    database == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://x.db?mode=memory",
        ] {
            let refused = Store::connect(url).await;
            assert!(
                matches!(refused, Err(StoreError::UnsupportedUrl(ref u)) if u == url),
                "{url}: {:?}",
                refused.err()
            );
        }
    }
}
