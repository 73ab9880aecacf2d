//! What operators and experts do besides the customers' messages, measured on the empty and
//! the full database (`--history`): a customer's export and erasure, the console's queue,
//! the conversation list and a transcript, the purge, the upgrade, and the database's size.

use std::error::Error;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sha2::{Digest, Sha256};

use crate::Database;

/// The admin API's token of the bench's icbridge (`ICB_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "bench-admin-token";
/// The console's session the bench signs its expert in with (see [`console_cookie`]).
const CONSOLE_SESSION: &str = "bench-console-session-of-32-chars";

/// The console's session cookie of an expert. The console signs experts in through Webex,
/// which the bench has no stand-in for: it writes the session as a login would have
/// (`id_hash` the SHA-256 of the cookie's value, tokens valid as long as Webex's are: 14 days
/// for access, 90 for refresh, so that the console does not refresh them).
pub async fn console_cookie(database_url: &str) -> Result<String, Box<dyn Error>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let day = 86_400_000;
    let db = sqlx::AnyPool::connect(database_url).await?;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, email, display_name, access_token,
             access_expires_at, refresh_token, refresh_expires_at, csrf_token, created_at)
         VALUES ($1, 'bench@desk.example', 'Bench Expert', 'bench-access', $2,
                 'bench-refresh', $3, 'bench-csrf', $4)",
    )
    .bind(hex::encode(Sha256::digest(CONSOLE_SESSION.as_bytes())))
    .bind(now + 14 * day)
    .bind(now + 90 * day)
    .bind(now)
    .execute(&db)
    .await?;
    db.close().await;
    Ok(format!("icb_console={CONSOLE_SESSION}"))
}

/// How long each of a few requests took: the median and the slowest.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    pub median: Duration,
    pub max: Duration,
}

impl Timing {
    pub fn of(mut durations: Vec<Duration>) -> Self {
        durations.sort();
        Timing {
            median: durations
                .get(durations.len() / 2)
                .copied()
                .unwrap_or_default(),
            max: durations.last().copied().unwrap_or_default(),
        }
    }
}

/// Sends each request in turn (one after the other) and times it; fails on an answer that
/// is not 2xx.
pub async fn timed(
    requests: impl IntoIterator<Item = reqwest::RequestBuilder>,
) -> Result<Timing, Box<dyn Error>> {
    let mut durations = Vec::new();
    for request in requests {
        let started = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        durations.push(started.elapsed());
        if !status.is_success() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )
            .into());
        }
    }
    Ok(Timing::of(durations))
}

/// Runs `icbridge <args>` on the database as an operator would, with `env` besides;
/// returns how long it took and what it printed.
pub async fn command(
    icbridge: &Path,
    database_url: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(Duration, String), Box<dyn Error>> {
    let started = Instant::now();
    let output = tokio::process::Command::new(icbridge)
        .args(args)
        .env_clear()
        .env("ICB_DATABASE_URL", database_url)
        .envs(env.iter().copied())
        .output()
        .await?;
    let took = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "icbridge {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok((
        took,
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    ))
}

/// The database's size on disk: SQLite's file and its write-ahead log, PostgreSQL's
/// database (tables, indexes, TOAST).
pub async fn database_bytes(database: Database, database_url: &str) -> Result<u64, Box<dyn Error>> {
    match database {
        Database::Sqlite => {
            let path = database_url
                .strip_prefix("sqlite://")
                .ok_or("not a sqlite:// URL")?;
            let path = path.split('?').next().unwrap_or(path);
            let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            Ok(size(path) + size(&format!("{path}-wal")))
        }
        Database::Postgres => {
            let db = sqlx::AnyPool::connect(database_url).await?;
            let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&db)
                .await?;
            db.close().await;
            Ok(bytes as u64)
        }
    }
}

/// How long requests are sent at the rate before the operation starts, unmeasured. The
/// first requests of a stream are slower than the rest: on the empty database, the first
/// eight follow-ups of the erasures' window took 8–12 ms while the writer was idle, and
/// of the 268 the window held, they set its p99.
const LEAD_IN: Duration = Duration::from_millis(200);

/// What [`at_rate_during`] measured.
pub struct DuringOperation<T> {
    /// Latencies of the requests sent while the operation ran, sorted.
    pub latencies: Vec<Duration>,
    /// Requests answered in all, those of the lead-in included.
    pub answered: u64,
    pub failed: u64,
    /// What the operation returned.
    pub outcome: T,
}

/// Latencies of requests sent at `rate` per second for as long as `operation` runs (open
/// loop, as the fixed-rate phase: each request its own task, started when it is due), the
/// operation started [`LEAD_IN`] after the first request.
pub async fn at_rate_during<F, Fut, O>(
    rate: u64,
    request: F,
    operation: O,
) -> DuringOperation<O::Output>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
    O: std::future::Future + Send + 'static,
    O::Output: Send + 'static,
{
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Requests sent before the operation starts.
    let lead_in = LEAD_IN.as_millis() as u64 * rate / 1000;
    let mut operation = Some(operation);
    let mut running = None;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    let mut i = 0;
    loop {
        if i == lead_in {
            running = operation.take().map(tokio::spawn);
        }
        if running.as_ref().is_some_and(|r| r.is_finished()) {
            break;
        }
        tokio::time::sleep_until(start + Duration::from_nanos(i * 1_000_000_000 / rate)).await;
        let measured = i >= lead_in;
        let (latencies, answered, failed, request) = (
            latencies.clone(),
            answered.clone(),
            failed.clone(),
            request.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            if request(i).await {
                answered.fetch_add(1, Ordering::Relaxed);
                if measured {
                    latencies.lock().unwrap().push(sent.elapsed());
                }
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
        i += 1;
    }
    join_all(tasks).await;
    let outcome = running
        .expect("started after the lead-in")
        .await
        .expect("the operation ran to its end");
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    DuringOperation {
        latencies,
        answered: answered.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        outcome,
    }
}

/// What the operations phase needs of the run.
pub struct Operations<'a> {
    pub base: &'a str,
    pub http: reqwest::Client,
    pub icbridge: &'a Path,
    pub database_url: &'a str,
    /// Follow-ups per second sent during the erasures and the purge (the fixed rate's).
    pub rate: u64,
    /// Customers to export and erase (their SMS numbers): 10 alone, then 100 one after
    /// another under load.
    pub customers: Vec<String>,
    /// Conversations whose transcript is read.
    pub conversations: Vec<String>,
    /// `ICB_RETENTION` of the purge: a day's worth of the history past it.
    pub purge_retention: &'a str,
}

/// What the operations phase measured.
#[derive(Clone, Debug, Default)]
pub struct OperationsRun {
    pub export: Timing,
    pub erase: Timing,
    /// Follow-ups' p99 while 100 erasures ran one after another, and how long they took.
    pub erasing_p99: Duration,
    pub erasing_took: Duration,
    /// Follow-ups answered during the erasures: how many the p99 is of.
    pub erasing_follow_ups: usize,
    pub queue: Timing,
    pub list: Timing,
    pub transcript: Timing,
    pub purge_took: Duration,
    /// Follow-ups' p99 during the purge, and how many it is of.
    pub purging_p99: Duration,
    pub purging_follow_ups: usize,
    /// What the purge printed.
    pub purged: String,
    /// Follow-ups answered and failed during the erasures and the purge.
    pub answered: u64,
    pub failed: u64,
}

/// Customers exported and erased on their own (the timing), before the hundred under load
/// (fewer in a smoke run, whose burst has fewer customers).
const ALONE: usize = 10;
/// Erasures one after another while follow-ups arrive at the fixed rate.
const UNDER_LOAD: usize = 100;
/// Reads of the console's queue, the list and transcripts.
const READS: usize = 20;

impl Operations<'_> {
    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Measures each operation; `follow_up(i)` sends the `i`th follow-up of the fixed rate.
    pub async fn measure<F, Fut>(&self, follow_up: F) -> Result<OperationsRun, Box<dyn Error>>
    where
        F: Fn(u64) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        if self.customers.len() < 2 {
            return Err("no customers to export and erase".into());
        }
        let mut run = OperationsRun::default();
        let (alone, under_load) = self.customers.split_at(ALONE.min(self.customers.len() / 2));
        let get = reqwest::Method::GET;
        let post = reqwest::Method::POST;
        run.export = timed(
            alone
                .iter()
                .map(|n| self.admin(get.clone(), &format!("/api/customers/{n}/export"))),
        )
        .await
        .map_err(|e| format!("export: {e}"))?;
        run.erase = timed(
            alone
                .iter()
                .map(|n| self.admin(post.clone(), &format!("/api/customers/{n}/erase"))),
        )
        .await
        .map_err(|e| format!("erase: {e}"))?;

        let erasures: Vec<reqwest::RequestBuilder> = under_load
            .iter()
            .take(UNDER_LOAD)
            .map(|n| self.admin(post.clone(), &format!("/api/customers/{n}/erase")))
            .collect();
        let erasing = at_rate_during(self.rate, follow_up.clone(), async move {
            let started = Instant::now();
            timed(erasures)
                .await
                .map(|_| started.elapsed())
                .map_err(|e| e.to_string())
        })
        .await;
        run.erasing_took = erasing
            .outcome
            .map_err(|e| format!("erasures under load: {e}"))?;
        run.erasing_p99 = crate::percentile(&erasing.latencies, 0.99);
        run.erasing_follow_ups = erasing.latencies.len();
        run.answered += erasing.answered;
        run.failed += erasing.failed;

        let cookie = console_cookie(self.database_url).await?;
        run.queue = timed((0..READS).map(|_| {
            self.http
                .get(format!("{}/console/api/queue", self.base))
                .header(reqwest::header::COOKIE, cookie.clone())
        }))
        .await
        .map_err(|e| format!("console queue: {e}"))?;
        run.list = timed((0..READS).map(|_| self.admin(get.clone(), "/api/conversations")))
            .await
            .map_err(|e| format!("conversation list: {e}"))?;
        run.transcript = timed(
            self.conversations
                .iter()
                .cycle()
                .take(READS)
                .map(|id| self.admin(get.clone(), &format!("/api/conversations/{id}"))),
        )
        .await
        .map_err(|e| format!("transcript: {e}"))?;

        let (icbridge, url, retention) = (
            self.icbridge.to_path_buf(),
            self.database_url.to_string(),
            self.purge_retention.to_string(),
        );
        let purging = at_rate_during(self.rate, follow_up, async move {
            command(
                &icbridge,
                &url,
                &["purge"],
                &[("ICB_RETENTION", &retention)],
            )
            .await
            .map_err(|e| e.to_string())
        })
        .await;
        (run.purge_took, run.purged) = purging.outcome.map_err(|e| format!("purge: {e}"))?;
        run.purging_p99 = crate::percentile(&purging.latencies, 0.99);
        run.purging_follow_ups = purging.latencies.len();
        run.answered += purging.answered;
        run.failed += purging.failed;
        Ok(run)
    }
}
