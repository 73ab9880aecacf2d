//! No statement the store runs scans a table that grows with the desk's history.
//!
//! The integration suite (`tests/api`) collects every SQL statement the store runs on
//! SQLite (see `tests/api/statements.rs`); this test asks SQLite for each one's plan
//! (`EXPLAIN QUERY PLAN`, on a database migrated as icbridge migrates it) and fails on a
//! full `SCAN` of a growing table, or a walk of a whole index of one, unless the index is a
//! partial one over a bounded set (the pending deliveries, the waiting conversations) or
//! the statement is one of the few deliberate scans listed below with the reason.
//!
//! `cargo test` runs this binary after the suite's (`api`), and it checks the statements of
//! the suite's latest run. Under nextest, which runs the two side by side, run it again
//! afterwards (`cargo test --test query_plans`).
//!
//! PostgreSQL is not checked: its planner scans a small table rather than use an index,
//! so the plans on a test's empty database would say nothing, and version 15 cannot plan a
//! statement with parameters it has no values for (`EXPLAIN (GENERIC_PLAN)` is 16's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{ConnectOptions, Row};

/// Tables that grow with every conversation, message or day of service.
const GROWING: &[&str] = &[
    "appointments",
    "audit_log",
    "conversations",
    "delivery_receipts",
    "events",
    "links",
    "meeting_claims",
    "meeting_links",
    "meeting_starts",
    "meetings",
    "messages",
    "opt_outs",
    "outbox",
    "surveys",
    "webex_events",
];

/// Partial indexes over sets that stay small however long the desk runs: walking one of
/// them whole is not a scan of its table.
const BOUNDED_INDEXES: &[(&str, &str)] = &[
    ("outbox_due", "the deliveries still pending"),
    (
        "outbox_held",
        "the WhatsApp deliveries held for a closed window",
    ),
    ("outbox_stale", "pending reminders"),
    (
        "conversations_waiting",
        "the conversations waiting for an expert",
    ),
    ("conversations_one_open", "the open conversations"),
    (
        "outbox_dead",
        "the deliveries given up, few (an alert fires while one is left)",
    ),
    (
        "outbox_cancelled",
        "the deliveries cancelled by an opt-out or an erasure, few",
    ),
];

/// Statements that scan on purpose, each found by a part of its text (spaces as one),
/// with the reason.
const DELIBERATE: &[(&str, &str)] = &[
    (
        "FROM audit_log ORDER BY id DESC LIMIT",
        "the newest entries: read backwards from the last, up to the limit",
    ),
    (
        "FROM outbox WHERE TRUE ORDER BY id DESC LIMIT",
        "the newest deliveries: read backwards from the last, up to the limit",
    ),
    (
        "FROM outbox WHERE state = 'sent' ORDER BY id DESC LIMIT",
        "the newest sent deliveries: nearly every row is one, so reading backwards from \
         the last finds the limit's worth at once",
    ),
    (
        "FROM conversations c ORDER BY c.created_at DESC, c.id LIMIT",
        "the newest conversations: their index read backwards, up to the limit",
    ),
];

#[tokio::test]
async fn no_statement_the_store_runs_scans_a_growing_table() {
    let statements = collected();
    assert!(
        !statements.is_empty(),
        "no statements collected in {}: run the whole suite (`cargo test`) first",
        folder().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/plans.db", dir.path().display());
    let store = icbridge::store::Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let options: AnyConnectOptions = url.parse().unwrap();
    let db = AnyPoolOptions::new()
        .max_connections(1)
        .connect_with(options.disable_statement_logging())
        .await
        .unwrap();

    let mut scans = Vec::new();
    let mut checked = 0;
    for statement in statements.values() {
        let spaced = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        if DELIBERATE.iter().any(|(part, _)| spaced.contains(part)) {
            continue;
        }
        // An insert into a table others refer to plans a scan of each of those for the
        // rows it would satisfy; SQLite runs it only while a foreign key is violated,
        // which with immediate constraints never outlives a failing statement. Planned
        // without the checks, an insert shows what it reads itself.
        let checks = if is_an_insert(statement) { "OFF" } else { "ON" };
        sqlx::query(&format!("PRAGMA foreign_keys = {checks}"))
            .execute(&db)
            .await
            .unwrap();
        let sql = format!("EXPLAIN QUERY PLAN {statement}");
        let mut explain = sqlx::query(&sql);
        for _ in 0..parameters(statement) {
            explain = explain.bind(None::<i64>);
        }
        let plan = match explain.fetch_all(&db).await {
            Ok(rows) => rows,
            // The suite's statements run against the same migrations: one that does not
            // prepare here is a statement of an older schema (a migration test's).
            Err(error) if error.to_string().contains("no such") => continue,
            Err(error) => panic!("could not plan {statement}: {error}"),
        };
        checked += 1;
        let aliases = tables_by_name(statement);
        for row in plan {
            let detail: String = row.get("detail");
            if let Some(table) = scanned_growing_table(&detail, &aliases) {
                scans.push(format!("{table}: {detail}\n    in: {statement}"));
            }
        }
    }
    assert!(checked > 50, "only {checked} statements checked");
    assert!(
        scans.is_empty(),
        "{} of {checked} statements scan a growing table:\n{}",
        scans.len(),
        scans.join("\n")
    );
}

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("statements")
}

/// The latest run's statements, one of each shape (batches of different sizes are one
/// shape), keyed by shape.
fn collected() -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(folder()) else {
        return BTreeMap::new();
    };
    let latest = entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "jsonl"))
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok());
    let Some(latest) = latest else {
        return BTreeMap::new();
    };
    let text = std::fs::read_to_string(latest.path()).unwrap();
    let mut statements = BTreeMap::new();
    for line in text.lines() {
        let Ok(statement) = serde_json::from_str::<String>(line) else {
            continue;
        };
        if is_a_query(&statement) {
            statements.entry(shape(&statement)).or_insert(statement);
        }
    }
    statements
}

/// A single `SELECT`, `INSERT`, `UPDATE`, `DELETE` or `WITH` (not a migration's script,
/// a transaction's `BEGIN` or a `PRAGMA`).
fn is_a_query(statement: &str) -> bool {
    let first = statement
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let several = statement.trim_end().trim_end_matches(';').contains(';');
    matches!(
        first.as_str(),
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "WITH"
    ) && !several
}

fn is_an_insert(statement: &str) -> bool {
    statement
        .split_whitespace()
        .next()
        .is_some_and(|first| first.eq_ignore_ascii_case("INSERT"))
}

/// The statement with its parameters as `?` and runs of `(?, ?), (?, ?)` as one.
fn shape(statement: &str) -> String {
    let mut shaped = String::new();
    let mut chars = statement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            shaped.push('?');
        } else {
            shaped.push(c);
        }
    }
    let words: Vec<&str> = shaped.split_whitespace().collect();
    let mut shaped = words.join(" ");
    loop {
        let before = shaped.len();
        shaped = shaped.replace("?, ?", "?").replace("(?), (?)", "(?)");
        if shaped.len() == before {
            break;
        }
    }
    shaped
}

/// How many parameters (`$1` … `$n`) the statement takes.
fn parameters(statement: &str) -> usize {
    let mut highest = 0;
    let mut rest = statement;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<usize>() {
            highest = highest.max(n);
        }
    }
    highest
}

/// The tables a statement names, by the name or alias its plan shows them by.
fn tables_by_name(statement: &str) -> HashMap<String, BTreeSet<String>> {
    const NOT_ALIASES: &[&str] = &[
        "WHERE",
        "ON",
        "JOIN",
        "LEFT",
        "INNER",
        "CROSS",
        "SET",
        "GROUP",
        "ORDER",
        "LIMIT",
        "USING",
        "VALUES",
        "DEFAULT",
        "SELECT",
        "RETURNING",
        "UNION",
        "EXCEPT",
        "AS",
        "AND",
        "OR",
        "NOT",
        "WINDOW",
        "HAVING",
        "FROM",
        "INDEXED",
        "OFFSET",
    ];
    let words: Vec<String> = statement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '('))
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect();
    let mut tables: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (i, word) in words.iter().enumerate() {
        if !matches!(
            word.to_ascii_uppercase().as_str(),
            "FROM" | "JOIN" | "UPDATE" | "INTO"
        ) {
            continue;
        }
        let Some(table) = words.get(i + 1).filter(|t| !t.starts_with('(')) else {
            continue;
        };
        let table = table.to_ascii_lowercase();
        tables
            .entry(table.clone())
            .or_default()
            .insert(table.clone());
        let mut next = i + 2;
        if words
            .get(next)
            .is_some_and(|w| w.eq_ignore_ascii_case("AS"))
        {
            next += 1;
        }
        if let Some(alias) = words.get(next) {
            let upper = alias.to_ascii_uppercase();
            if !alias.starts_with('(') && !NOT_ALIASES.contains(&upper.as_str()) {
                tables
                    .entry(alias.to_ascii_lowercase())
                    .or_default()
                    .insert(table);
            }
        }
    }
    tables
}

/// The growing table a plan step scans whole, if it does: a `SCAN`, a `SEARCH` that names
/// no index (the inner table of a join none serves, read whole for each outer row), or an
/// automatic index (built from the whole table for the statement).
fn scanned_growing_table(
    detail: &str,
    tables: &HashMap<String, BTreeSet<String>>,
) -> Option<String> {
    let rest = match detail.strip_prefix("SEARCH ") {
        Some(rest) if rest.contains(" USING ") && !rest.contains("AUTOMATIC") => return None,
        Some(rest) => rest,
        None => detail.strip_prefix("SCAN ")?,
    };
    let name = rest.split_whitespace().next()?.to_ascii_lowercase();
    let candidates = tables
        .get(&name)
        .cloned()
        .unwrap_or_else(|| BTreeSet::from([name.clone()]));
    let table = candidates
        .into_iter()
        .find(|table| GROWING.contains(&table.as_str()))?;
    let bounded = BOUNDED_INDEXES
        .iter()
        .any(|(index, _)| rest.ends_with(&format!("INDEX {index}")));
    (!bounded).then_some(table)
}

#[test]
fn shapes_and_aliases_are_read_as_meant() {
    assert_eq!(
        shape("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)"),
        shape("INSERT INTO t (a, b) VALUES ($1, $2)")
    );
    assert_eq!(parameters("SELECT $1, $12 FROM t WHERE a = $3"), 12);
    let tables = tables_by_name(
        "SELECT c.id FROM conversations c JOIN messages AS m ON m.c = c.id WHERE x IN (SELECT id FROM outbox)",
    );
    assert_eq!(tables["c"], BTreeSet::from(["conversations".to_string()]));
    assert_eq!(tables["m"], BTreeSet::from(["messages".to_string()]));
    assert_eq!(
        scanned_growing_table("SCAN c", &tables).as_deref(),
        Some("conversations")
    );
    assert_eq!(
        scanned_growing_table("SEARCH c USING INDEX x (id=?)", &tables),
        None
    );
    assert_eq!(
        scanned_growing_table("SEARCH m", &tables).as_deref(),
        Some("messages")
    );
    assert_eq!(
        scanned_growing_table("SEARCH m USING AUTOMATIC COVERING INDEX (a=?)", &tables).as_deref(),
        Some("messages")
    );
    assert_eq!(
        scanned_growing_table("SCAN outbox USING INDEX outbox_due", &tables),
        None
    );
    assert_eq!(
        scanned_growing_table("SCAN outbox USING INDEX outbox_by_recipient", &tables).as_deref(),
        Some("outbox")
    );
    assert!(is_a_query("SELECT 1"));
    assert!(!is_a_query("CREATE TABLE t (a); INSERT INTO t VALUES (1)"));
    assert!(!is_a_query("PRAGMA foreign_keys = ON"));
}
