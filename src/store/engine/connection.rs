//! Opening the database: the writer's connections and the readers' (on SQLite a pool of
//! each, the writer's of one connection, and one for the log's checkpoints), their
//! settings, and migrations.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, Executor};

use super::{Backend, LogCheckpoints};
use crate::store::{Store, StoreError};

/// How long a request waits for the database (a connection, or another writer's lock)
/// before it gives up with [`StoreError::Busy`]: well within the 10 s Webex Connect waits
/// for an answer, so that it gets a `503` it can retry rather than a timeout.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// SQLite waits up to [`BUSY_TIMEOUT`] for another process's lock (in its busy handler).
const PATIENT: &str = "PRAGMA busy_timeout = 2000";
/// SQLite answers `SQLITE_BUSY` at once: the writer's connection, which waits itself.
const IMPATIENT: &str = "PRAGMA busy_timeout = 0";

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
            let reader = sqlite_pool(4, true).connect_with(options.clone()).await?;
            let checkpoints = sqlite_pool(1, true).connect_with(options).await?;
            let log = LogCheckpoints::start(checkpoints);
            Ok(Self::new(Backend::Sqlite, writer, reader, Some(log)))
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
            Ok(Self::new(Backend::Postgres, pool.clone(), pool, None))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            // Migrations wait for another process's lock in SQLite's busy handler, as
            // everything but the writer's groups does.
            Backend::Sqlite => {
                let mut connection = self.writer_pool.acquire().await?;
                connection.execute(PATIENT).await?;
                let migrated = sqlx::migrate!("./migrations/sqlite")
                    .run(&mut *connection)
                    .await;
                // A failed migration's error is the one to tell, not the reset's.
                let reset = connection.execute(IMPATIENT).await;
                migrated?;
                reset?;
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

    /// Copies SQLite's log into the database file and closes the connections, so that a
    /// command that ends (`icbridge migrate`) leaves the database whole in its file, ready
    /// to be copied, not partly in a log beside it.
    pub async fn close(self) {
        if self.backend == Backend::Sqlite {
            let copied = async {
                let mut connection = self.writer_pool.acquire().await?;
                connection.execute(PATIENT).await?;
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").await
            };
            if let Err(error) = copied.await {
                tracing::warn!(%error, "the SQLite log could not be copied into the database");
            }
        }
        self.reader.close().await;
        self.writer_pool.close().await;
    }

    /// Empties SQLite's write-ahead log now, of what an erasure left in it (which the
    /// service does within a minute anyway), waiting at most ten seconds: whether it
    /// was emptied; `None` on PostgreSQL, which has no such log to empty.
    pub async fn empty_log(&self) -> Option<bool> {
        Some(self.log.as_ref()?.empty().await)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
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
                // waited for, up to the busy timeout (by the writer itself, see below).
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    PATIENT,
                    "PRAGMA foreign_keys = ON",
                ] {
                    connection.execute(pragma).await?;
                }
                if read_only {
                    // A read that tried to write would be a bug; make it fail loudly.
                    connection.execute("PRAGMA query_only = ON").await?;
                } else {
                    // The writer waits for another process's write lock itself, looking
                    // again every millisecond (`writer::begin`): SQLite's busy handler looks
                    // after 1, 3, 8, 18, 33 ms…, so a slice of `icbridge purge` that held the
                    // lock for 9 ms kept the desk's writes waiting 18.
                    connection.execute(IMPATIENT).await?;
                    // What is deleted or overwritten is zeroed in the file, not left in its
                    // free space: an erased customer's data must not be recoverable.
                    connection.execute("PRAGMA secure_delete = ON").await?;
                    // The log is copied into the database by [`LogCheckpoints`], not by the
                    // commit that happens to fill it, which would wait for the disk.
                    connection.execute("PRAGMA wal_autocheckpoint = 0").await?;
                    // When the log starts again from its beginning, its file keeps its
                    // length: cutting it back there was done by the first commit after the
                    // writer caught up with a long log, and held the writes back 6–31 ms
                    // after 19 of 23 catch-ups on the benchmark (after none of 32 without).
                    // [`LogCheckpoints`] cuts the file back in a quiet second instead.
                    connection.execute("PRAGMA journal_size_limit = -1").await?;
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
