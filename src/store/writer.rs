//! Group commit for SQLite.
//!
//! SQLite lets one connection write at a time. When every request's transaction took the
//! lock on its own, concurrent writers slept in SQLite's busy handler (milliseconds at a
//! time) and every transaction paid for its own commit. Instead, icbridge's writes are
//! jobs for one writer thread with its own connection: it takes all the jobs waiting, runs
//! them one after the other in one transaction, commits, and only then answers each job.
//! So a caller never acknowledges what is not in the database, and a job runs to its end
//! even if its caller stops waiting.
//!
//! If a job fails, the transaction is rolled back: the jobs that ran before it in the
//! batch report [`StoreError::BatchAborted`] (nothing of theirs was written) and the jobs
//! after it run in the next batch.
//!
//! Copying the write-ahead log back into the database file (a checkpoint, with its fsync)
//! is left to a thread of its own, so that no batch waits for it. The writer only copies
//! the few commits made while that thread worked, so that the log can start over.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::sql::Db;
use super::sqlite::open;
use super::StoreError;

/// The most jobs committed together: bounds how long one commit keeps callers waiting.
const MAX_BATCH: usize = 512;

/// Commits between two checkpoints. A commit of a busy writer adds about ten pages to the
/// log; SQLite's own default is to checkpoint every 1000 pages.
const COMMITS_PER_CHECKPOINT: u32 = 100;

/// A write: runs on the writer's connection inside the batch's transaction.
pub type WriteJob<T> =
    Box<dyn for<'c> FnOnce(Db<'c>) -> BoxFuture<'c, Result<T, StoreError>> + Send>;

/// A job in the writer's queue, its result type erased.
trait Queued: Send {
    /// Runs the job; `None` when it failed (its caller has been told why).
    fn run<'c>(
        self: Box<Self>,
        connection: &'c mut rusqlite::Connection,
    ) -> BoxFuture<'c, Option<Box<dyn Answer>>>;
    /// Tells the caller its job was not run.
    fn refuse(self: Box<Self>);
}

struct Job<T> {
    work: WriteJob<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send + 'static> Queued for Job<T> {
    fn run<'c>(
        self: Box<Self>,
        connection: &'c mut rusqlite::Connection,
    ) -> BoxFuture<'c, Option<Box<dyn Answer>>> {
        let Job { work, reply } = *self;
        Box::pin(async move {
            match work(Db::Sqlite(connection)).await {
                Ok(output) => Some(Box::new(Pending { output, reply }) as Box<dyn Answer>),
                Err(error) => {
                    let _ = reply.send(Err(error));
                    None
                }
            }
        })
    }

    fn refuse(self: Box<Self>) {
        let _ = self.reply.send(Err(StoreError::BatchAborted));
    }
}

/// Tells a job's caller how its write ended, once the batch has.
trait Answer: Send {
    fn send(self: Box<Self>, committed: bool);
}

struct Pending<T> {
    output: T,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send> Answer for Pending<T> {
    fn send(self: Box<Self>, committed: bool) {
        let result = if committed {
            Ok(self.output)
        } else {
            Err(StoreError::BatchAborted)
        };
        // The caller may have stopped waiting; the write stands all the same.
        let _ = self.reply.send(result);
    }
}

/// The way to the writer thread. The thread ends when the last handle is dropped.
pub(super) struct SharedWriter {
    jobs: mpsc::UnboundedSender<Box<dyn Queued>>,
}

impl SharedWriter {
    /// Starts the writer thread on its own connection to the database file at `path`,
    /// set up by `setup`.
    pub(super) fn start(path: &Path, setup: &'static [&'static str]) -> Result<Self, StoreError> {
        let connection = open_writer(path, setup)?;
        let checkpointer = Checkpointer::start(open(path, setup)?)?;
        let path = path.to_path_buf();
        let (jobs, receiver) = mpsc::unbounded_channel();
        // Jobs on SQLite never wait for I/O or timers; the runtime only drives their futures.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(StoreError::WriterStart)?;
        std::thread::Builder::new()
            .name("icb-db-writer".into())
            .spawn(move || runtime.block_on(run(path, setup, connection, checkpointer, receiver)))
            .map_err(StoreError::WriterStart)?;
        Ok(Self { jobs })
    }

    /// Runs `job` in the next batch and returns its result once the batch is committed.
    pub(super) async fn write<T: Send + 'static>(&self, job: WriteJob<T>) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(Job { work: job, reply }))
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The log file is cut back to this size when it starts over, after a burst made it larger.
const LOG_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

fn open_writer(path: &Path, setup: &[&str]) -> Result<rusqlite::Connection, StoreError> {
    let connection = open(path, setup)?;
    // The checkpointer checkpoints; a commit never does.
    connection.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {LOG_SIZE_LIMIT}"
    ))?;
    Ok(connection)
}

/// Copies what it can of the log into the database file (PASSIVE: what no reader still
/// needs, waiting for nobody).
fn checkpoint(connection: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut statement = connection.prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")?;
    let mut rows = statement.raw_query();
    rows.next().map(|_| ())
}

/// The thread that checkpoints, on a connection of its own, alongside the writer.
struct Checkpointer {
    due: std::sync::mpsc::SyncSender<()>,
    /// Set by the checkpointer when it has copied the log up to a recent commit.
    caught_up: Arc<AtomicBool>,
    commits: u32,
}

impl Checkpointer {
    fn start(connection: rusqlite::Connection) -> Result<Self, StoreError> {
        let (due, requests) = std::sync::mpsc::sync_channel::<()>(1);
        let caught_up = Arc::new(AtomicBool::new(false));
        let done = caught_up.clone();
        std::thread::Builder::new()
            .name("icb-db-checkpoint".into())
            .spawn(move || {
                // Ends when the writer does.
                for () in requests {
                    match checkpoint(&connection) {
                        Ok(()) => done.store(true, Ordering::Release),
                        Err(error) => tracing::warn!(%error,
                            "database checkpoint failed; the next one retries"),
                    }
                }
            })
            .map_err(StoreError::WriterStart)?;
        Ok(Self {
            due,
            caught_up,
            commits: 0,
        })
    }

    /// Counts a commit on the writer's `connection`; every [`COMMITS_PER_CHECKPOINT`] asks
    /// for a checkpoint, unless one is already waiting to run.
    fn committed(&mut self, connection: &rusqlite::Connection) {
        if self.caught_up.swap(false, Ordering::Acquire) {
            // SQLite starts the log over only when a write begins with all of it copied,
            // which a checkpoint on another thread never sees under steady writes: the
            // log grew by about 150 MB a second under load. The checkpointer has copied
            // all but the last few commits; copying those here, before the next batch
            // begins, lets that batch write from the start of the log again.
            if let Err(error) = checkpoint(connection) {
                tracing::warn!(%error, "database checkpoint failed; the next one retries");
            }
        }
        self.commits += 1;
        if self.commits >= COMMITS_PER_CHECKPOINT {
            self.commits = 0;
            let _ = self.due.try_send(());
        }
    }
}

async fn run(
    path: PathBuf,
    setup: &'static [&'static str],
    mut connection: rusqlite::Connection,
    mut checkpointer: Checkpointer,
    mut receiver: mpsc::UnboundedReceiver<Box<dyn Queued>>,
) {
    let mut waiting: VecDeque<Box<dyn Queued>> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match receiver.recv().await {
                Some(job) => waiting.push_back(job),
                None => break,
            }
        }
        while waiting.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        match run_batch(&mut connection, &mut waiting).await {
            Batch::Committed => checkpointer.committed(&connection),
            Batch::RolledBack => {}
            Batch::NotStarted => {
                // The connection may be broken: the next batch gets a fresh one if it can.
                match open_writer(&path, setup) {
                    Ok(fresh) => connection = fresh,
                    Err(error) => tracing::error!(%error, "database writer cannot reconnect"),
                }
            }
        }
    }
}

/// Runs `BEGIN`, `COMMIT` or `ROLLBACK`, prepared once per connection like every statement.
fn transaction_control(connection: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// How a batch ended.
enum Batch {
    Committed,
    RolledBack,
    /// No transaction could be started; the waiting jobs were refused.
    NotStarted,
}

/// Runs the waiting jobs in one transaction, up to the first that fails.
async fn run_batch(
    connection: &mut rusqlite::Connection,
    waiting: &mut VecDeque<Box<dyn Queued>>,
) -> Batch {
    // IMMEDIATE takes the write lock now: another process writing to the same file makes
    // this wait (busy timeout) rather than fail a job half way.
    if let Err(error) = transaction_control(connection, "BEGIN IMMEDIATE") {
        tracing::error!(%error, jobs = waiting.len(), "database transaction could not start");
        for job in waiting.drain(..) {
            job.refuse();
        }
        return Batch::NotStarted;
    }
    let mut answers = Vec::with_capacity(waiting.len());
    let mut failed = false;
    while let Some(job) = waiting.pop_front() {
        match job.run(&mut *connection).await {
            Some(answer) => answers.push(answer),
            None => {
                failed = true;
                break;
            }
        }
    }
    let committed = !failed
        && match transaction_control(connection, "COMMIT") {
            Ok(_) => true,
            Err(error) => {
                tracing::error!(%error, writes = answers.len(), "database commit failed");
                false
            }
        };
    if !committed {
        // SQLite may have rolled back already (after some errors); then this fails, harmlessly.
        let _ = transaction_control(connection, "ROLLBACK");
    }
    for answer in answers {
        answer.send(committed);
    }
    if committed {
        Batch::Committed
    } else {
        Batch::RolledBack
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::query;
    use futures_util::FutureExt;

    async fn writer() -> (tempfile::TempDir, PathBuf, SharedWriter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let writer = SharedWriter::start(&path, &["PRAGMA journal_mode = WAL"]).unwrap();
        writer
            .write(Box::new(|mut tx| {
                Box::pin(async move {
                    query("CREATE TABLE t (name TEXT PRIMARY KEY)")
                        .execute(&mut tx)
                        .await?;
                    Ok(())
                })
            }))
            .await
            .unwrap();
        (dir, path, writer)
    }

    fn insert(name: impl Into<String>) -> WriteJob<()> {
        let name = name.into();
        Box::new(move |mut tx| {
            Box::pin(async move {
                query("INSERT INTO t (name) VALUES ($1)")
                    .bind(name)
                    .execute(&mut tx)
                    .await?;
                Ok(())
            })
        })
    }

    /// A job that tells when it runs, then holds the writer until released: the jobs sent
    /// meanwhile are all waiting when the next batch starts.
    fn hold(running: oneshot::Sender<()>, release: oneshot::Receiver<()>) -> WriteJob<()> {
        Box::new(move |_| {
            Box::pin(async move {
                let _ = running.send(());
                let _ = release.await;
                Ok(())
            })
        })
    }

    /// Starts a write (queues its job) without waiting for it.
    fn queue<'a, T: Send + 'static>(
        writer: &'a SharedWriter,
        job: WriteJob<T>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        let mut write = Box::pin(writer.write(job));
        assert!((&mut write).now_or_never().is_none(), "not done yet");
        write
    }

    fn names(path: &Path) -> Vec<String> {
        let connection = rusqlite::Connection::open(path).unwrap();
        let mut statement = connection
            .prepare("SELECT name FROM t ORDER BY name")
            .unwrap();
        let names = statement.query_map([], |row| row.get(0)).unwrap();
        names.collect::<Result<_, _>>().unwrap()
    }

    #[tokio::test]
    async fn a_failing_write_aborts_its_batch_and_the_writes_after_it_run_in_the_next() {
        let (_dir, path, writer) = writer().await;
        let ((running, is_running), (release, held)) = (oneshot::channel(), oneshot::channel());
        let holding = queue(&writer, hold(running, held));
        is_running.await.unwrap();
        let second = queue(&writer, insert("second"));
        // The same name twice: the primary key refuses the second.
        let failing = queue(
            &writer,
            Box::new(|mut tx| {
                Box::pin(async move {
                    for _ in 0..2 {
                        query("INSERT INTO t (name) VALUES ('twice')")
                            .execute(&mut tx)
                            .await?;
                    }
                    Ok(())
                })
            }),
        );
        let fourth = queue(&writer, insert("fourth"));
        release.send(()).unwrap();

        holding.await.unwrap();
        let second = second.await;
        assert!(
            matches!(second, Err(StoreError::BatchAborted)),
            "{second:?}"
        );
        let failing = failing.await;
        assert!(matches!(failing, Err(StoreError::Sqlite(_))), "{failing:?}");
        fourth.await.unwrap();
        assert_eq!(names(&path), ["fourth"]);
    }

    /// Makes `commits` commits one after the other, each adding a row of about a page.
    async fn commit_pages(writer: &SharedWriter, commits: u32) {
        for n in 0..commits {
            let name = format!("{n:05}{}", "x".repeat(4000));
            writer.write(insert(name)).await.unwrap();
        }
    }

    #[tokio::test]
    async fn the_log_is_copied_into_the_database_file_by_the_checkpointer() {
        let (_dir, path, writer) = writer().await;
        let file_size = || std::fs::metadata(&path).unwrap().len();
        let before = file_size();
        // Every commit adds a page of its own; none of them reaches the file before a
        // checkpoint.
        commit_pages(&writer, COMMITS_PER_CHECKPOINT).await;
        let waited = std::time::Instant::now();
        while file_size() < before + 100 * 4096 {
            assert!(
                waited.elapsed() < std::time::Duration::from_secs(10),
                "no checkpoint: the file is still {} bytes",
                file_size()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(names(&path).len(), COMMITS_PER_CHECKPOINT as usize);
    }

    #[tokio::test]
    async fn the_log_starts_over_under_steady_writes() {
        let (_dir, path, writer) = writer().await;
        let commits = 10 * COMMITS_PER_CHECKPOINT;
        commit_pages(&writer, commits).await;
        // Each commit here writes about six pages (4 KiB and a frame header each) to the
        // log: a log that never started over holds some 6,000 frames by now.
        let log = std::fs::metadata(path.with_extension("db-wal"))
            .unwrap()
            .len();
        let frames = log / (4096 + 24);
        assert!(
            frames < u64::from(commits),
            "{frames} frames in the log after {commits} commits"
        );
        assert_eq!(names(&path).len(), commits as usize);
    }

    #[tokio::test]
    async fn a_write_whose_caller_stopped_waiting_is_still_committed() {
        let (_dir, path, writer) = writer().await;
        let ((running, is_running), (release, held)) = (oneshot::channel(), oneshot::channel());
        let holding = queue(&writer, hold(running, held));
        is_running.await.unwrap();
        drop(queue(&writer, insert("abandoned")));
        release.send(()).unwrap();
        holding.await.unwrap();
        // Queued after it, so committed no earlier.
        writer.write(insert("later")).await.unwrap();
        assert_eq!(names(&path), ["abandoned", "later"]);
    }
}
