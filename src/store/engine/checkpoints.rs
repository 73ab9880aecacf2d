//! SQLite's write-ahead log: copied into the database file beside the writer, and emptied
//! after an erasure.
//!
//! Why a task of its own: the writer does not checkpoint after its commits
//! (`wal_autocheckpoint = 0`), so that no commit waits for the disk. Once a second a
//! passive checkpoint copies what was committed into the database file without holding
//! anyone back (and asks the writer to catch up once the log is long: [`LONG_LOG`], after
//! syncing the database file itself: [`DatabaseFile`]).
//!
//! An erasure needs more: the log still holds the pages as they were before it, text and
//! all, until it is emptied (`wal_checkpoint(TRUNCATE)`). Emptying holds every write back
//! while it copies, syncs and cuts the file, which takes as long as the log is long: 5–12
//! ms after a quiet minute, 0.1–0.2 s on the benchmark's year of history under a steady
//! load (the log then holds a hundred megabytes or more), and it needs a moment when no
//! read uses the log. Done after each erasure, a hundred erasures in a row held the desk's
//! writes back a hundred times; waited for inside SQLite (its busy handler), it held them
//! back until the reads ended. So erasures only ask for it ([`LogCheckpoints::ask`]), and
//! the task empties the log after its passive copy in the first quiet second (nothing
//! written since the tick before), or a minute after it was asked if no second was quiet,
//! without waiting (`busy_timeout = 0` on this task's own connection): one emptying for
//! every erasure before it, tried again at the next tick if a read was under way. A
//! command that must know waits for it ([`LogCheckpoints::empty`]), tried at once.
//!
//! The log's file keeps the length it grew to when the log starts again from its beginning
//! (`journal_size_limit = -1`, see `connection`): once the log has been long
//! ([`LONG_LOG`]), the task empties it in the first quiet second, which cuts the file back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Executor, Row};
use tokio::sync::{watch, Notify};

/// How often the log is copied into the database file (or emptied, if asked).
const TICK: Duration = Duration::from_secs(1);
/// Frames (pages) the log may hold before the writer is asked to catch up with it, which
/// lets the log start again from its beginning (see `writer::catch_up_with_the_log`):
/// 256 MiB of 4 KiB pages, tens of seconds of a saturating load.
const LONG_LOG: i64 = 65_536;
/// Copies in a row at most before the writer catches up with a long log.
const COPIES: usize = 8;
/// Frames a copy may find written during the one before for the writer to catch up: 1 MiB.
const LITTLE_LEFT: i64 = 256;
/// How soon emptying is tried again, when someone waits for it and a write or a read was
/// under way.
const RETRY: Duration = Duration::from_millis(50);
/// How long emptying is tried every [`RETRY`] for someone waiting; then at each tick again.
const WAITER_PATIENCE: Duration = Duration::from_secs(10);
/// How long an emptying asked for waits for a quiet second before it is done anyway.
const OVERDUE: Duration = Duration::from_secs(60);

/// Asks the checkpoint task to empty the log, and hears when it has.
#[derive(Clone)]
pub(in crate::store) struct LogCheckpoints {
    /// How many times the log was asked to be emptied.
    asked: watch::Sender<u64>,
    /// Up to which request it was emptied.
    emptied: watch::Receiver<u64>,
    /// Wakes the task for someone waiting.
    waiting: Arc<Notify>,
    /// Set when the log has grown long: the writer catches up with it.
    long: Arc<AtomicBool>,
}

impl LogCheckpoints {
    /// Starts the checkpoint task on `pool` (a connection of its own); it ends when every
    /// handle is gone.
    pub(in crate::store) fn start(pool: AnyPool) -> Self {
        let (asked, asked_rx) = watch::channel(0);
        let (emptied_tx, emptied) = watch::channel(0);
        let waiting = Arc::new(Notify::new());
        let long = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(
            pool,
            asked_rx,
            emptied_tx,
            waiting.clone(),
            long.clone(),
        ));
        Self {
            asked,
            emptied,
            waiting,
            long,
        }
    }

    /// What the writer watches to learn that the log has grown long.
    pub(in crate::store) fn long(&self) -> Arc<AtomicBool> {
        self.long.clone()
    }

    /// Asks for the log to be emptied of everything committed so far, at the next tick;
    /// returns the request's number.
    pub(in crate::store) fn ask(&self) -> u64 {
        let mut request = 0;
        self.asked.send_modify(|asked| {
            *asked += 1;
            request = *asked;
        });
        request
    }

    /// Empties the log of everything committed so far, now (tried again every [`RETRY`]
    /// while a read or a write is under way), waiting at most [`WAITER_PATIENCE`]; returns
    /// whether it was emptied.
    pub(in crate::store) async fn empty(&self) -> bool {
        let request = self.ask();
        self.waiting.notify_one();
        let mut emptied = self.emptied.clone();
        tokio::time::timeout(WAITER_PATIENCE, emptied.wait_for(|done| *done >= request))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }
}

async fn run(
    pool: AnyPool,
    mut asked: watch::Receiver<u64>,
    emptied: watch::Sender<u64>,
    waiting: Arc<Notify>,
    long: Arc<AtomicBool>,
) {
    let mut connection = loop {
        match own_connection(&pool).await {
            Ok(connection) => break connection,
            Err(error) => {
                tracing::warn!(%error, "no connection for the SQLite log's checkpoints yet");
                tokio::time::sleep(TICK).await;
            }
        }
    };
    // Until when someone waits for the log to be emptied (tried every `RETRY` meanwhile).
    let mut waited_for_until: Option<tokio::time::Instant> = None;
    // Since when an emptying is owed; the frames the log held at the last tick.
    let mut owed_since: Option<tokio::time::Instant> = None;
    let mut frames_before = None;
    // The most frames the log held at a tick since it was last emptied: about its file's
    // length, which only emptying cuts back.
    let mut longest: i64 = 0;
    let mut database_file = DatabaseFile::default();
    loop {
        let now = tokio::time::Instant::now();
        let someone_waits = waited_for_until.is_some_and(|until| until > now);
        tokio::select! {
            () = tokio::time::sleep(if someone_waits { RETRY } else { TICK }) => {}
            () = waiting.notified() => waited_for_until = Some(now + WAITER_PATIENCE),
        }
        if asked.has_changed().is_err() {
            return; // the store is gone
        }
        // What can be copied without holding anyone back, every time: emptying holds the
        // writes back while it copies the rest.
        let frames = match connection.fetch_one("PRAGMA wal_checkpoint(PASSIVE)").await {
            Ok(row) => match (row.try_get::<i64, _>(0), row.try_get::<i64, _>(1)) {
                (Ok(busy), Ok(frames)) => frames_in_log(busy, frames),
                _ => None,
            },
            Err(error) => {
                tracing::warn!(%error, "the SQLite log could not be checkpointed");
                None
            }
        };
        if frames.is_some_and(|frames| frames > LONG_LOG) {
            copy_until_little_is_left(&mut connection).await;
            // What the catch-up would otherwise sync while it holds the writes back.
            database_file.sync(&mut connection).await;
            copy_until_little_is_left(&mut connection).await;
            long.store(true, Ordering::Relaxed);
        }
        let quiet = is_quiet(frames, frames_before);
        frames_before = frames;
        longest = longest.max(frames.unwrap_or(0));
        let wanted = *asked.borrow_and_update();
        let now = tokio::time::Instant::now();
        let emptying_owed = if wanted > *emptied.borrow() {
            let owed_for = now - *owed_since.get_or_insert(now);
            let someone_waits = waited_for_until.is_some_and(|until| until > now);
            time_to_empty(someone_waits, quiet, owed_for)
        } else {
            owed_since = None;
            false
        };
        if !emptying_owed && !time_to_cut_back(quiet, longest) {
            continue;
        }
        match connection
            .fetch_one("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
        {
            // The first column says whether it was kept from finishing (`busy`).
            Ok(row) if row.try_get::<i64, _>(0).is_ok_and(|busy| busy == 0) => {
                emptied.send_replace(wanted);
                waited_for_until = None;
                owed_since = None;
                longest = 0;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "the SQLite log could not be emptied"),
        }
    }
}

/// The frames the log holds, from a passive copy's answer (its first two columns): `None`
/// when another connection was copying it (`icbridge purge`'s task beside `serve`'s, or the
/// writer catching up), which SQLite answers as busy, with -1 frames.
fn frames_in_log(busy: i64, frames: i64) -> Option<i64> {
    (busy == 0 && frames >= 0).then_some(frames)
}

/// Whether nothing was written since the last tick: the log is empty, or holds as many
/// frames as then. Not known when either copy found the log busy: two busy ticks in a row
/// (both -1) compared equal, so the log could be emptied while the desk wrote.
fn is_quiet(frames: Option<i64>, frames_before: Option<i64>) -> bool {
    frames.is_some_and(|frames| frames == 0 || Some(frames) == frames_before)
}

/// Whether an emptying owed for `owed_for` is done at this tick: at once for someone waiting
/// for it; otherwise in a quiet second (nothing written since the last tick), when it holds
/// nothing back, or once it has waited [`OVERDUE`] for one. Under a steady load the log is
/// long (up to [`LONG_LOG`]) and emptying it held the writes back for 0.1–0.2 s on the
/// benchmark's year of history; waiting lets one emptying serve a run of erasures, and most
/// run in a quiet second.
fn time_to_empty(someone_waits: bool, quiet: bool, owed_for: Duration) -> bool {
    someone_waits || quiet || owed_for >= OVERDUE
}

/// Whether the log's file is cut back (by emptying the log) at this tick: in a quiet second,
/// once the log has been long since it was last emptied. Under a steady load the log starts
/// again from its beginning every few seconds, and its file keeps the length it grew to
/// (about [`LONG_LOG`] frames, more if reads kept it from starting again); a quiet second
/// costs the desk nothing to empty it in.
fn time_to_cut_back(quiet: bool, longest: i64) -> bool {
    quiet && longest > LONG_LOG
}

/// Copies the log again while each copy found much written during the one before (at
/// most [`COPIES`] times), so that the writer, asked to catch up next, holds the writes
/// back only for what the last copy did not see. Asked right after one copy, it had to copy
/// what a busy desk wrote meanwhile (a copy of a long log takes tens of milliseconds) and
/// held the writes back 8–123 ms on the benchmark's year of history; after these, 2–23 ms.
async fn copy_until_little_is_left(connection: &mut PoolConnection<Any>) {
    let mut copied_before = None;
    for _ in 0..COPIES {
        // The third column: the frames copied so far.
        let Ok(row) = connection.fetch_one("PRAGMA wal_checkpoint(PASSIVE)").await else {
            return;
        };
        let copied = row.try_get::<i64, _>(2).ok();
        if let (Some(now), Some(before)) = (copied, copied_before) {
            if now - before < LITTLE_LEFT {
                return;
            }
        }
        copied_before = copied;
    }
}

/// The database file, synced by the checkpoint task before it asks the writer to catch up
/// with a long log.
///
/// Why: SQLite syncs the database file only in a copy of the log that reaches its end with
/// nothing committed meanwhile, which under a steady load only the writer's catch-up does
/// (see `writer::catch_up_with_the_log`); it then synced everything the background copies
/// had written since the last sync: on the benchmark's year of history it held the writes
/// back 18–35 ms (median of a run), up to 395 ms. Synced here first, beside the writes, the
/// catch-up syncs only what was copied since: 5–6 ms, up to 25 ms.
///
/// The handle is never closed: closing any handle of a file drops every POSIX lock the
/// process holds on it, SQLite's included (SQLite's "How To Corrupt An SQLite Database
/// File", 2.2). A trial that opened and closed a handle for each sync left the database
/// "malformed" in the next run. So it is opened once, only when the log first grows long
/// (one per database file and process in practice), and kept for the life of the process.
#[derive(Default)]
struct DatabaseFile(Option<&'static std::fs::File>);

impl DatabaseFile {
    /// Writes the database file's pages to the disk (on a thread that may block), opening
    /// it first if need be; a failure is logged, and the catch-up then syncs instead.
    async fn sync(&mut self, connection: &mut PoolConnection<Any>) {
        let file = match self.0 {
            Some(file) => file,
            None => match open_for_good(connection).await {
                Ok(file) => *self.0.insert(file),
                Err(error) => {
                    tracing::warn!(%error, "the SQLite database file could not be opened to sync it");
                    return;
                }
            },
        };
        match tokio::task::spawn_blocking(move || file.sync_data()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "the SQLite database file could not be synced")
            }
            Err(error) => tracing::warn!(%error, "the SQLite database file's sync did not finish"),
        }
    }
}

/// Opens the database file the connection is on, for the life of the process (see
/// [`DatabaseFile`]).
async fn open_for_good(
    connection: &mut PoolConnection<Any>,
) -> Result<&'static std::fs::File, Box<dyn std::error::Error + Send + Sync>> {
    // `database_list`: sequence number, schema name, file; `main` is the database's own.
    let path: String = connection
        .fetch_one("PRAGMA database_list")
        .await?
        .try_get(2)?;
    let file = std::fs::File::open(path)?;
    Ok(Box::leak(Box::new(file)))
}

/// The task's connection, which never waits for a lock: a checkpoint that cannot finish
/// now is tried again, rather than holding back the writes that came after it.
async fn own_connection(pool: &AnyPool) -> Result<PoolConnection<Any>, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    connection.execute("PRAGMA busy_timeout = 0").await?;
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptying_waits_for_a_quiet_second_or_a_minute_unless_someone_waits() {
        let second = Duration::from_secs(1);
        assert!(!time_to_empty(false, false, second), "the desk is writing");
        assert!(time_to_empty(false, true, second), "a quiet second");
        assert!(
            time_to_empty(true, false, Duration::ZERO),
            "a command waits for it"
        );
        assert!(!time_to_empty(false, false, OVERDUE - second));
        assert!(time_to_empty(false, false, OVERDUE), "it waited a minute");
    }

    #[test]
    fn a_log_busy_with_another_copy_is_not_a_quiet_one() {
        // SQLite's answer to a passive copy while another connection copies: busy, -1, -1.
        assert_eq!(frames_in_log(1, -1), None);
        assert_eq!(frames_in_log(0, 1_200), Some(1_200));
        assert_eq!(frames_in_log(0, 0), Some(0));
        let busy = frames_in_log(1, -1);
        assert!(!is_quiet(busy, busy), "two busy ticks say nothing");
        assert!(!is_quiet(Some(1_200), busy));
        assert!(is_quiet(Some(1_200), Some(1_200)), "nothing written since");
        assert!(is_quiet(Some(0), busy), "an empty log is quiet");
        assert!(!is_quiet(Some(1_300), Some(1_200)));
    }

    #[test]
    fn a_long_log_s_file_is_cut_back_in_a_quiet_second_only() {
        assert!(time_to_cut_back(true, LONG_LOG + 1), "it has been long");
        assert!(
            !time_to_cut_back(false, LONG_LOG + 1),
            "the desk is writing"
        );
        assert!(
            !time_to_cut_back(true, LONG_LOG),
            "no longer than the writer lets it grow"
        );
        assert!(!time_to_cut_back(true, 0));
    }

    /// The POSIX locks this process holds on the file of inode `inode`, as the kernel lists
    /// them: kind and byte range.
    #[cfg(target_os = "linux")]
    fn locks_held_on(inode: u64) -> Vec<String> {
        let pid = std::process::id().to_string();
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .filter_map(|line| {
                // "1: POSIX  ADVISORY  READ 11730 fe:00:10010654 1073741826 1073742335"
                let fields: Vec<&str> = line.split_whitespace().collect();
                let on_it = fields.get(1) == Some(&"POSIX")
                    && fields.get(4) == Some(&pid.as_str())
                    && fields
                        .get(5)
                        .and_then(|device| device.rsplit(':').next())
                        .is_some_and(|i| i == inode.to_string());
                on_it.then(|| fields[3..].join(" "))
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn syncing_the_database_file_keeps_sqlites_locks_on_it() {
        use std::os::unix::fs::MetadataExt;

        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("icbridge.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = AnyPool::connect(&url).await.unwrap();
        let mut connection = pool.acquire().await.unwrap();
        connection
            .execute("PRAGMA journal_mode = WAL")
            .await
            .unwrap();
        connection
            .execute("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        // In WAL mode a connection holds a shared lock on the database file while it is open:
        // what tells another process that the log is in use.
        let held = locks_held_on(inode);
        assert!(!held.is_empty(), "SQLite holds no lock on the file");

        {
            // Synced twice, then gone, as when the task ends.
            let mut database_file = DatabaseFile::default();
            database_file.sync(&mut connection).await;
            let file = database_file.0.expect("opened");
            assert_eq!(
                file.metadata().unwrap().ino(),
                inode,
                "the database's own file"
            );
            database_file.sync(&mut connection).await;
            assert!(std::ptr::eq(database_file.0.unwrap(), file), "opened once");
        }
        assert_eq!(locks_held_on(inode), held, "a handle was closed");
    }
}
