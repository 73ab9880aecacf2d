//! SQLite connections: how they are opened, and the readers' pool.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::sql::Db;
use super::StoreError;

/// Set on every SQLite connection. WAL lets readers proceed while one writer commits;
/// NORMAL sync is durable across process crashes in WAL mode; a connection waits for
/// another process's write lock (up to 5 s) instead of failing.
pub(super) const PRAGMAS: [&str; 4] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
];

/// Distinct statements a connection keeps prepared: more than icbridge uses.
const PREPARED_STATEMENTS: usize = 128;

/// Opens the database file at `path` and runs `setup` on the connection.
pub(super) fn open(path: &Path, setup: &[&str]) -> Result<rusqlite::Connection, StoreError> {
    let connection = rusqlite::Connection::open(path)?;
    for statement in setup {
        // Some pragmas answer with a row (journal_mode): read and drop it.
        connection.prepare(statement)?.raw_query().next()?;
    }
    connection.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(connection)
}

/// Connections that only read. A read runs on the thread that asks for it: it takes
/// microseconds, and in WAL mode it never waits for the writer.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

/// Idle readers kept open. Reads never wait for one another, so at most one reader per
/// thread is busy at a time; more are opened if needed and closed after.
const IDLE_READERS: usize = 8;

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn get(&self) -> Result<Reader<'_>, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = open(&self.path, &PRAGMAS)?;
                // A read that tried to write would be a bug; make it fail loudly.
                connection.execute_batch("PRAGMA query_only = ON")?;
                connection
            }
        };
        Ok(Reader {
            readers: self,
            connection: Some(connection),
        })
    }
}

/// A reader taken from the pool; it goes back when dropped.
pub(super) struct Reader<'a> {
    readers: &'a Readers,
    connection: Option<rusqlite::Connection>,
}

impl Reader<'_> {
    pub(super) fn db(&mut self) -> Db<'_> {
        Db::Sqlite(self.connection.as_mut().expect("present until dropped"))
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        let mut idle = self.readers.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    /// `.cargo/config.toml` compiles SQLite without its two process-wide mutexes on the
    /// hot path (see there); a build without that file would quietly be slower.
    #[test]
    fn sqlite_is_compiled_without_the_global_page_cache_and_memory_statistics() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let mut statement = connection.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            options.contains(&"DEFAULT_MEMSTATUS=0".to_string()),
            "{options:?}"
        );
        assert!(
            !options.contains(&"ENABLE_MEMORY_MANAGEMENT".to_string()),
            "{options:?}"
        );
    }
}
