//! Group commit: every write goes through a writer task, which runs the writes queued
//! meanwhile in one transaction, each in a savepoint of its own.
//!
//! Why: a commit costs far more than the statements before it (on SQLite the connection's
//! thread is woken and put to sleep several times per transaction; on PostgreSQL a commit
//! waits for the log to reach the disk), and a busy desk writes for many requests at once.
//! One transaction for all of them costs one commit. A write that fails is rolled back to
//! its savepoint and fails alone; the others are committed. Each caller learns its write's
//! outcome once the commit is done, so nothing is answered before it is stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Executor};
use tokio::sync::{mpsc, oneshot};

use super::connection::BUSY_TIMEOUT;
use super::{Backend, WriteFn};
use crate::store::StoreError;

/// Writes committed together at most.
const MAX_GROUP: usize = 128;

/// A write in a group: runs its statements, then hears how the group's commit went.
trait Write: Send {
    /// Runs the write's statements; returns whether they all succeeded.
    fn run<'a>(&'a mut self, tx: &'a mut AnyConnection) -> BoxFuture<'a, bool>;
    /// Tells the caller: its result, once `commit` succeeded; the error otherwise.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

/// A write with its caller's result type.
struct Typed<T, F> {
    write: Option<F>,
    result: Option<Result<T, StoreError>>,
    done: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Typed<T, F>
where
    T: Send + 'static,
    F: for<'c> WriteFn<'c, T> + Send + 'static,
{
    fn run<'a>(&'a mut self, tx: &'a mut AnyConnection) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let write = self.write.take().expect("a write runs once");
            let result = write(tx).await;
            let succeeded = result.is_ok();
            self.result = Some(result);
            succeeded
        })
    }

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let outcome = match (self.result, commit) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(error)) => Err(StoreError::group_failed(error)),
            (None, Ok(())) => Err(StoreError::WriterStopped),
        };
        let _ = self.done.send(outcome);
    }
}

/// Hands writes to the writer task. One per process: SQLite runs one write transaction at
/// a time anyway, and on PostgreSQL two groups side by side would hold row locks the other
/// wants (an instance's writes deadlocking with each other).
#[derive(Clone)]
pub(in crate::store) struct Writer {
    writes: mpsc::UnboundedSender<Box<dyn Write>>,
}

impl Writer {
    /// Starts the writer task on the current runtime; it ends when every handle is gone.
    /// `catch_up`: set when SQLite's log has grown long (see [`catch_up_with_the_log`]).
    pub(in crate::store) fn start(
        pool: AnyPool,
        backend: Backend,
        catch_up: Option<Arc<AtomicBool>>,
    ) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, backend, queue, catch_up));
        Self { writes }
    }

    /// Runs `write` in the next group's transaction; returns its result once committed.
    pub(super) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> WriteFn<'c, T> + Send + 'static,
    {
        let (done, outcome) = oneshot::channel();
        let write = Box::new(Typed {
            write: Some(write),
            result: None,
            done,
        });
        self.writes
            .send(write)
            .map_err(|_| StoreError::WriterStopped)?;
        outcome.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// A writer task: commits what is queued (at most a group at a time).
async fn run(
    pool: AnyPool,
    backend: Backend,
    mut queue: mpsc::UnboundedReceiver<Box<dyn Write>>,
    catch_up: Option<Arc<AtomicBool>>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let mut writes = std::mem::take(&mut group);
        let committed = commit_group(&pool, backend, &mut writes).await;
        if let Err(error) = &committed {
            tracing::warn!(%error, writes = writes.len(), "a group of writes could not be committed");
        }
        for write in writes {
            write.finish(committed.as_ref().map(|_| ()));
        }
        if catch_up
            .as_ref()
            .is_some_and(|flag| flag.swap(false, Ordering::Relaxed))
        {
            catch_up_with_the_log(&pool).await;
        }
    }
}

/// Copies into SQLite's database file what the log holds beyond the last checkpoint,
/// between two groups.
///
/// Why the writer: the checkpoint task copies the log in the background, but a log can
/// only start again from its beginning when a write begins with all of it copied, and
/// under a steady load the writer has always written more by the time the task is done:
/// the log grew to about a gigabyte in a few minutes of the benchmark, and every read searched
/// it. Done here, between groups, nothing is written meanwhile, so the next group starts
/// the log again. It holds the writes back while it copies what the task's last copy did not
/// see (the task copies until little is left first) and syncs what was copied since the
/// task synced the database file, so it is done only once the log is long (a few times a
/// minute at most, under a saturating load).
async fn catch_up_with_the_log(pool: &AnyPool) {
    let caught_up = async {
        pool.acquire()
            .await?
            .execute("PRAGMA wal_checkpoint(PASSIVE)")
            .await
    };
    if let Err(error) = caught_up.await {
        tracing::warn!(%error, "the SQLite log could not be caught up with");
    }
}

/// How often the writer looks again for SQLite's write lock while another process holds
/// it (`icbridge purge` beside `serve`, or the other way round).
const LOCK_POLL: Duration = Duration::from_millis(1);

/// Begins a group's transaction. On SQLite it takes the write lock at once (a transaction
/// that reads first could otherwise find, when it writes, that another process wrote in
/// between); while another process holds it, it looks again every [`LOCK_POLL`] for up to
/// [`BUSY_TIMEOUT`], then gives up busy. (The connection answers `SQLITE_BUSY` at once:
/// SQLite's own busy handler looks again ever later, and a write that found the lock taken
/// waited up to twice as long as the other process held it.)
async fn begin(connection: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        connection.execute("BEGIN").await?;
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match connection.execute("BEGIN IMMEDIATE").await {
            Ok(_) => return Ok(()),
            Err(error) => {
                let error = StoreError::from(error);
                if !error.is_busy() || tokio::time::Instant::now() >= deadline {
                    return Err(error);
                }
                tokio::time::sleep(LOCK_POLL).await;
            }
        }
    }
}

/// Runs `writes` in one transaction, each in a savepoint, and commits.
async fn commit_group(
    pool: &AnyPool,
    backend: Backend,
    writes: &mut [Box<dyn Write>],
) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    begin(&mut connection, backend).await?;
    let result = async {
        if let [write] = writes {
            // Alone in its group, a write needs no savepoint: the transaction is its own.
            let end = if write.run(&mut connection).await {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            connection.execute(end).await?;
            return Ok(());
        }
        for write in writes.iter_mut() {
            connection.execute("SAVEPOINT write").await?;
            if !write.run(&mut connection).await {
                connection.execute("ROLLBACK TO SAVEPOINT write").await?;
            }
            // Released at once: SQLite keeps what it journaled for a savepoint until then,
            // which for a whole group adds up.
            connection.execute("RELEASE SAVEPOINT write").await?;
        }
        connection.execute("COMMIT").await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if result.is_err() {
        let _ = connection.execute("ROLLBACK").await;
    }
    Ok(result?)
}
