//! Collects every SQL statement the store runs on SQLite during the suite, for the
//! query-plan check (`tests/query_plans.rs`): each distinct statement once, as a JSON string
//! per line, in `$CARGO_TARGET_TMPDIR/statements/<run>.jsonl`.
//!
//! sqlx reports each statement it runs as a `tracing` event (target `sqlx::query`). SQLite's
//! are run, and so reported, on sqlx's worker threads (`sqlx-sqlite-worker-…`), which tells
//! them from PostgreSQL's. The tests' own assertions go through [`super::helpers::open_db`],
//! whose connections do not report their statements: only the store's are collected.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// The folder the check reads (shared with `tests/query_plans.rs`).
pub fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("statements")
}

/// Starts collecting, once per test process. A test binary run by `cargo test` is one
/// process, its file named by its process id; under nextest every test is a process of its
/// own, and the processes of one run share the run's file.
pub fn collect() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let run = std::env::var("NEXTEST_RUN_ID")
            .unwrap_or_else(|_| format!("pid-{}", std::process::id()));
        std::fs::create_dir_all(folder()).expect("a folder for the collected statements");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(folder().join(format!("{run}.jsonl")))
            .expect("a file for the collected statements");
        let layer = Statements {
            seen: Mutex::new((HashSet::new(), file)),
        };
        // Only `sqlx::query` events are enabled: nothing else is formatted or printed.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
    });
}

struct Statements {
    seen: Mutex<(HashSet<String>, File)>,
}

impl<S: Subscriber> Layer<S> for Statements {
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target() == "sqlx::query"
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let on_sqlite = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("sqlx-sqlite-worker"));
        if !on_sqlite {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // sqlx gives a long statement in full in `db.statement`, a short one as `summary`.
        let statement = match fields.statement.trim() {
            "" => fields.summary.trim().to_string(),
            full => full.to_string(),
        };
        if statement.is_empty() {
            return;
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (statements, file) = &mut *seen;
        if statements.insert(statement.clone()) {
            let line = serde_json::to_string(&statement).expect("a string") + "\n";
            // One write per line: the processes of a nextest run append to one file.
            let _ = file.write_all(line.as_bytes());
        }
    }
}

#[derive(Default)]
struct Fields {
    summary: String,
    statement: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "summary" | "db.statement") {
            self.record_str(field, &format!("{value:?}"));
        }
    }
}
