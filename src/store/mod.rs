//! The database: the only module with SQL. SQLite and PostgreSQL both go through sqlx's
//! `Any` driver with the same SQL text (`$1`-style parameters); only the migrations differ.
//! Rows are read by column name into types. Timestamps are Unix milliseconds.
//!
//! Transactions here are short and never wait on the network: callers make their upstream
//! calls before or after, never inside. Writes are committed in groups by a writer task
//! (see [`writer`]); on SQLite it has the one connection that writes (SQLite runs one
//! write transaction at a time anyway), and reads go through a pool of their own, which
//! WAL never makes wait for the writer. sqlx runs each SQLite connection on a thread of its
//! own, so no statement blocks an async worker thread.

mod admin;
mod appointments;
mod batches;
mod console;
mod conversations;
mod customers;
mod intake;
mod links;
mod messages;
mod opt_outs;
mod outbox;
mod pauses;
mod surveys;
mod waiting;
mod webex_events;
mod writer;

use crate::domain::Answer;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, AnyConnection, AnyPool, Executor};

use crate::domain::{ConversationKey, OutboxEntry};

pub use admin::PurgeCutoffs;
pub use appointments::{Booking, NewAppointment};
pub use conversations::ExpertMessage;

pub use links::NewGuestLink;
pub use messages::{
    Claim, MeetingClaim, NewMeeting, ReceiptMatch, Recorded, StartLimit, UnansweredMessage,
};
pub use opt_outs::{KeywordMessage, KeywordOutcome, OptOutChange, OptedOutMessage};
pub use outbox::{Outcome, Settlement, OUTBOX_CLAIM_LOCK};
pub use surveys::{same_message, LatestSurvey, NewSurvey, Rating, RatingOutcome};
pub use waiting::WaitingMessage;
pub use webex_events::{CaughtUpEvent, WebexEvent};

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
    #[error("the writes committed with this one failed: {reason}")]
    GroupFailed { busy: bool, reason: String },
    #[error("the database writer stopped")]
    WriterStopped,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let busy = match &error {
            sqlx::Error::PoolTimedOut => true,
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended codes included.
            // PostgreSQL: lock_not_available (55P03), query_canceled (57014), and a
            // transaction chosen to end a deadlock (40P01) or a conflict (40001): the same
            // request goes through when tried again.
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                let code = code.as_ref();
                matches!(code, "55P03" | "57014" | "40P01" | "40001")
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
        matches!(
            self,
            StoreError::Busy(_) | StoreError::GroupFailed { busy: true, .. }
        )
    }

    /// What a write learns when the transaction it was part of could not be committed.
    fn group_failed(error: &StoreError) -> Self {
        StoreError::GroupFailed {
            busy: error.is_busy(),
            reason: error.to_string(),
        }
    }
}

/// What the number of an anonymised (or erased) customer becomes.
const ERASED: &str = "erased";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// The writer's connections (one on SQLite); also what migrations run on.
    writer_pool: AnyPool,
    writer: writer::Writer,
    /// Reads; on PostgreSQL the same pool as the writer's.
    reader: AnyPool,
    /// The tasks that write concurrent requests' messages, claims and new meetings in batches
    /// (`None` in their own handle, which must not keep them running).
    batches: Option<Batched>,
}

#[derive(Clone)]
struct Batched {
    messages: batches::Batches<intake::Job, Option<Recorded>>,
    claims: batches::Batches<MeetingClaim, Claim>,
    meetings: batches::Batches<NewMeeting, Answer>,
}

/// A write: statements on the writer's transaction (see [`Store::write`]).
type WriteFuture<'c, T> = BoxFuture<'c, Result<T, StoreError>>;

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
            Ok(Self::new(Backend::Sqlite, writer, reader))
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
            Ok(Self::new(Backend::Postgres, pool.clone(), pool))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    fn new(backend: Backend, writer_pool: AnyPool, reader: AnyPool) -> Self {
        let store = Self {
            backend,
            writer: writer::Writer::start(writer_pool.clone(), backend),
            writer_pool,
            reader,
            batches: None,
        };
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoints(store.reader.clone()));
        }
        let batches = Batched {
            messages: batches::Batches::start(
                store.clone(),
                intake::MAX_BATCH,
                intake::record_batch,
            ),
            claims: batches::Batches::start(
                store.clone(),
                messages::MAX_MEETINGS,
                messages::claim_meetings,
            ),
            meetings: batches::Batches::start(
                store.clone(),
                messages::MAX_MEETINGS,
                messages::store_meetings,
            ),
        };
        Self {
            batches: Some(batches),
            ..store
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.writer_pool)
                    .await?
            }
            // sqlx holds an advisory lock while it migrates: instances starting together
            // wait for each other.
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.writer_pool)
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

    /// Runs `write` in a transaction, committed with the writes of other requests (see
    /// [`writer`]), and returns its result once committed. A write that fails changes
    /// nothing, and only it fails.
    async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> WriteFuture<'c, T> + Send + 'static,
    {
        self.writer.write(write).await
    }
}

/// Copies SQLite's write-ahead log into the database file every second, beside the writer
/// (a passive checkpoint never waits for it), so that no commit waits for the disk.
async fn checkpoints(reader: AnyPool) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(error) = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::warn!(%error, "the SQLite log could not be checkpointed");
        }
    }
}

fn sqlite_pool(connections: u32, read_only: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(BUSY_TIMEOUT)
        // Connections stay open: SQLite's page cache lives with them.
        .idle_timeout(None)
        .max_lifetime(None)
        // A connection to a local file cannot have been dropped by a server: no ping (a
        // round trip to the connection's thread) before every use.
        .test_before_acquire(false)
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
                } else {
                    // What is deleted or overwritten is zeroed in the file, not left in its
                    // free space: an erased customer's data must not be recoverable.
                    connection.execute("PRAGMA secure_delete = ON").await?;
                    // The log is copied into the database by `checkpoints`, not by the
                    // commit that happens to fill it, which would wait for the disk.
                    connection.execute("PRAGMA wal_autocheckpoint = 0").await?;
                    // The writer touches the indexes of every table it writes: a larger
                    // cache than the default 2 MiB keeps them out of the kernel's reads.
                    connection.execute("PRAGMA cache_size = -8192").await?;
                    // A group's savepoints journal the pages they change: in memory, not in
                    // a temporary file made, written and deleted for every group.
                    connection.execute("PRAGMA temp_store = MEMORY").await?;
                }
                Ok(())
            })
        })
}

/// A conversation's key as the database's columns give it back.
type Key = (String, String, String);

fn key_of(key: &ConversationKey) -> Key {
    (
        key.channel.as_str().to_string(),
        key.customer.as_str().to_string(),
        key.business.as_str().to_string(),
    )
}

/// `($1, $2), ($3, $4)`: placeholders for `rows` rows of `columns` values, from `$first`.
pub(super) fn rows_of_placeholders(rows: usize, columns: usize, first: usize) -> String {
    (0..rows)
        .map(|row| {
            let values: Vec<String> = (0..columns)
                .map(|column| format!("${}", first + row * columns + column))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Queues deliveries of one conversation in the transaction that causes them.
async fn insert_outbox(
    tx: &mut AnyConnection,
    entries: &[OutboxEntry],
    conversation_id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let rows: Vec<_> = entries.iter().map(|e| (e, conversation_id, now)).collect();
    insert_outbox_rows(tx, &rows).await
}

/// Queues deliveries, each with its conversation and the time it was queued (and is first
/// due), in one statement.
async fn insert_outbox_rows(
    tx: &mut AnyConnection,
    rows: &[(&OutboxEntry, Option<&str>, i64)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // A row is first due when it is queued.
    let sql = format!(
        "INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at, recipient)
         VALUES {}",
        rows_of_placeholders(rows.len(), 6, 1)
    );
    let mut query = sqlx::query(&sql);
    for (entry, conversation_id, now) in rows {
        query = query
            .bind(&entry.kind)
            .bind(*conversation_id)
            .bind(&entry.payload)
            .bind(*now)
            .bind(*now)
            .bind(&entry.recipient);
    }
    query.execute(tx).await?;
    Ok(())
}

/// Queues deliveries due at a later time (`scheduled.due`): they do not hold up the rows
/// of their conversation queued meanwhile, and are cancelled, not sent, if still pending
/// after `scheduled.stale_after`.
async fn insert_scheduled(
    tx: &mut AnyConnection,
    entries: &[OutboxEntry],
    conversation_id: &str,
    scheduled: appointments::Scheduled,
    now: i64,
) -> Result<(), StoreError> {
    for entry in entries {
        sqlx::query(
            "INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at,
                                 scheduled, stale_after, recipient)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
        )
        .bind(&entry.kind)
        .bind(conversation_id)
        .bind(&entry.payload)
        .bind(scheduled.due)
        .bind(now)
        .bind(scheduled.stale_after)
        .bind(&entry.recipient)
        .execute(&mut *tx)
        .await?;
    }
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
