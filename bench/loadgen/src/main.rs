//! icbridge's benchmark: starts local stand-ins of the Instant Connect broker and Webex
//! (with a broker latency it can change between phases), starts a release icbridge against
//! them on each database in turn (SQLite in a temporary directory, then a fresh database on
//! a PostgreSQL server), loads it phase by phase, checks the database counts, prints one
//! table with a column per database and writes it into bench/RESULTS.md.

mod history;
mod history_run;
mod operations;

use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use clap::{Parser, ValueEnum};
use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use sha2::Sha256;
use sqlx::Connection;

const SECRET: &str = "bench-webhook-secret";

#[derive(Parser, Debug)]
#[command(about = "Benchmark icbridge (see bench/README.md)")]
struct Args {
    /// The icbridge binary to measure.
    #[arg(long, default_value = "target/release/icbridge")]
    icbridge: PathBuf,
    /// Length of each saturation phase.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    phase: Duration,
    /// Length of the fixed-rate (latency) phase. Longer than a throughput's: its p99 is
    /// decided by the slowest 1% of its requests, and in 5 s a stall of the machine (the
    /// load generator shares its two cores) either falls in the phase or not, which moved
    /// the same binary's p99 between 5 and 15 ms from one run to the next.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    latency_phase: Duration,
    /// Concurrent connections of the saturation phases. Several (`64,128,256`) run each
    /// phase once per number, and the best counts.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 128])]
    connections: Vec<usize>,
    /// Requests per second of the latency phase on SQLite.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Requests per second of the latency phase on PostgreSQL.
    #[arg(long, default_value_t = 500)]
    postgres_rate: u64,
    /// The databases to measure, each with an icbridge of its own, one after the other
    /// (SQLite first): `sqlite`, `postgres` or both.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Database::Sqlite, Database::Postgres])]
    databases: Vec<Database>,
    /// The PostgreSQL server, as the URL of an existing database on it whose user may
    /// CREATE DATABASE: the run creates a fresh database `icb_bench_<random>` there and
    /// drops it at the end.
    #[arg(
        long = "postgres",
        value_name = "URL",
        env = "ICB_BENCH_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// First messages sent at once in the burst phase.
    #[arg(long, default_value_t = 1000)]
    burst: usize,
    /// The broker's latency during the burst.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    burst_broker_delay: Duration,
    /// Where to write the results table (between its markers); none: only print.
    #[arg(long)]
    results: Option<PathBuf>,
    /// With one event subscription that takes every event (Standard Webhooks), its receiver
    /// a stand-in that answers `204`.
    #[arg(long)]
    events: bool,
    /// Each database twice in one run, empty and then holding a year of history
    /// (`--history-size` conversations), with the operators' and experts' paths too
    /// (export, erase, the console's queue, the list, a transcript, the purge, the
    /// upgrade): the table goes between the `history` markers of `--results`.
    #[arg(long)]
    history: bool,
    /// Fill this database (`sqlite://…` or `postgres://…`, migrated by `icbridge migrate`,
    /// empty) with a year of a desk's history, print what was written, and exit.
    #[arg(long, value_name = "URL")]
    fill_history: Option<String>,
    /// The history's size (--history, --fill-history): walk-in conversations in the year.
    #[arg(long, value_name = "N", default_value_t = history::DEFAULT_CONVERSATIONS)]
    history_size: u64,
}

/// The bench subscription's secret (`--events`).
const EVENTS_SECRET: &str = "whsec_YmVuY2gtZXZlbnRzLXNlY3JldC1vZi0zMi1ieXRlcyE=";

/// The databases icbridge is measured on, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Database {
    Sqlite,
    Postgres,
}

impl Database {
    fn name(self) -> &'static str {
        match self {
            Database::Sqlite => "SQLite",
            Database::Postgres => "PostgreSQL",
        }
    }
}

/// The stand-ins' shared state.
#[derive(Default)]
struct StandIns {
    broker_delay_ms: AtomicU64,
    broker_calls: AtomicU64,
    webex_posts: AtomicU64,
    event_posts: AtomicU64,
}

const BROKER_ANSWER: &str = r#"{"host":[{"cipher":"h","short":"HostAbc"}],"guest":[{"cipher":"g","short":"GuestXy"}],"baseUrl":"https://instant.webex.com/visit/"}"#;

// Both stand-ins take the request body: actix closes a connection whose request body was
// left unread, and the real upstreams keep connections alive.

async fn joseencrypt(state: web::Data<StandIns>, _request: web::Bytes) -> HttpResponse {
    state.broker_calls.fetch_add(1, Ordering::Relaxed);
    let delay = state.broker_delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(BROKER_ANSWER)
}

async fn webex_message(state: web::Data<StandIns>, _request: web::Bytes) -> HttpResponse {
    let n = state.webex_posts.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(format!(r#"{{"id":"bench-message-{n}"}}"#))
}

async fn event(state: web::Data<StandIns>, _request: web::Bytes) -> HttpResponse {
    state.event_posts.fetch_add(1, Ordering::Relaxed);
    HttpResponse::NoContent().finish()
}

/// A webhook request body and its signature header, built once and sent many times:
/// cloning either is a reference count, so the generator spends its time on sending.
struct Signed {
    body: web::Bytes,
    signature: HeaderValue,
}

fn signed(body: &str) -> Signed {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    Signed {
        body: web::Bytes::copy_from_slice(body.as_bytes()),
        signature: HeaderValue::from_str(&signature).unwrap(),
    }
}

fn message(customer: u64, with_id: Option<&str>) -> Signed {
    let mut body = serde_json::json!({
        "channel": "sms", "from": format!("+1{:010}", 4_155_000_000u64 + customer), "to": "56263",
        "text": "I would like to talk to someone",
    });
    if let Some(id) = with_id {
        body["messageId"] = serde_json::json!(id);
    }
    signed(&body.to_string())
}

struct Target {
    http: reqwest::Client,
    webhook: reqwest::Url,
    healthz: reqwest::Url,
}

impl Target {
    fn new(http: reqwest::Client, base: &str) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Self {
            http,
            webhook: format!("{base}/webhooks/connect").parse()?,
            healthz: format!("{base}/healthz").parse()?,
        })
    }

    async fn post(&self, message: &Signed) -> bool {
        let response = self
            .http
            .post(self.webhook.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("X-Hub-Signature", message.signature.clone())
            .body(message.body.clone())
            .send()
            .await;
        finished(response).await
    }

    async fn healthz(&self) -> bool {
        let response = self.http.get(self.healthz.clone()).send().await;
        finished(response).await
    }
}

/// A 200 whose body was read to the end.
async fn finished(response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(response) if response.status() == 200 => response.bytes().await.is_ok(),
        _ => false,
    }
}

/// One saturation phase: `connections` loops for `phase`, each request built by
/// `request(i)`, `i` counting on from `counter`. Returns (rps, ok count, failed count).
async fn saturate<F, Fut>(
    connections: usize,
    phase: Duration,
    counter: Arc<AtomicU64>,
    request: F,
) -> (f64, u64, u64)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + phase;
    let loops = (0..connections).map(|_| {
        let (counter, ok, failed, request) =
            (counter.clone(), ok.clone(), failed.clone(), request.clone());
        tokio::spawn(async move {
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if request(i).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    join_all(loops).await;
    let elapsed = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    (ok as f64 / elapsed, ok, failed.load(Ordering::Relaxed))
}

/// A path's throughput at each number of connections tried.
struct Saturation {
    levels: Vec<Level>,
    ok: u64,
    failed: u64,
}

/// One run of a saturation phase.
struct Level {
    connections: usize,
    /// Requests answered per second.
    answered: f64,
    /// Requests answered and their side effects done (relays and notifications received
    /// by the Webex stand-in), per second: counted until the last one arrived. When the
    /// worker falls behind during the phase, this is the rate the service can keep up.
    completed: f64,
    /// Side effects still to do when the phase ended, and how long they took.
    backlog: u64,
    drain: Duration,
}

impl Saturation {
    /// The most answered per second, at whichever number of connections.
    fn answered(&self) -> f64 {
        self.levels
            .iter()
            .map(|level| level.answered)
            .fold(0.0, f64::max)
    }

    /// The most answered with their side effects done per second, at whichever number of
    /// connections: more connections answer more, but can leave more side effects behind.
    fn completed(&self) -> f64 {
        self.levels
            .iter()
            .map(|level| level.completed)
            .fold(0.0, f64::max)
    }

    /// `64: 14100 (12900; 2100 behind, 0.15 s)`: answered and completed per second per
    /// run, and the side effects left when the phase ended.
    fn describe(&self) -> String {
        let levels: Vec<String> = self
            .levels
            .iter()
            .map(|level| {
                let behind = if level.backlog > 0 {
                    format!(
                        "; {} behind, done in {:.2} s",
                        level.backlog,
                        level.drain.as_secs_f64()
                    )
                } else {
                    String::new()
                };
                format!(
                    "{}: {:.0} ({:.0}{behind})",
                    level.connections, level.answered, level.completed
                )
            })
            .collect();
        format!("{} req/s", levels.join(", "))
    }
}

/// Throughput at saturation: the phase once at each number of connections. After each
/// run, `settle` gets the requests answered so far, waits until their side effects are
/// done, so that no run pays for another's backlog, and returns how many were left to do.
async fn sweep<F, Fut>(
    connections: &[usize],
    phase: Duration,
    request: F,
    mut settle: impl AsyncFnMut(u64) -> u64,
) -> Saturation
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let counter = Arc::new(AtomicU64::new(0));
    let mut saturation = Saturation {
        levels: Vec::new(),
        ok: 0,
        failed: 0,
    };
    for &level in connections {
        let started = Instant::now();
        let (answered, ok, failed) = saturate(level, phase, counter.clone(), request.clone()).await;
        saturation.ok += ok;
        saturation.failed += failed;
        let ended = Instant::now();
        let backlog = settle(saturation.ok).await;
        saturation.levels.push(Level {
            connections: level,
            answered,
            completed: ok as f64 / started.elapsed().as_secs_f64(),
            backlog,
            drain: ended.elapsed(),
        });
    }
    saturation
}

/// Latencies at a fixed rate, sorted, and how late the generator sent each request, sorted.
///
/// Open loop: every request has a task of its own, started when it is due, so a slow answer
/// never holds back the requests after it. Latency counts from when the request was sent:
/// tokio's timer wakes a task up to a millisecond after it was due, which is the
/// generator's delay, not the server's; it is reported on its own.
async fn fixed_rate<F, Fut>(
    rate: u64,
    phase: Duration,
    request: F,
) -> (Vec<Duration>, Vec<Duration>, u64)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let total = rate * phase.as_secs().max(1);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks = (0..total).map(|i| {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        let (latencies, lateness, failed, request) = (
            latencies.clone(),
            lateness.clone(),
            failed.clone(),
            request.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let sent = tokio::time::Instant::now();
            let ok = request(i).await;
            let latency = sent.elapsed();
            lateness.lock().unwrap().push(sent - due);
            if ok {
                latencies.lock().unwrap().push(latency);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    join_all(tasks).await;
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    let mut lateness = std::mem::take(&mut *lateness.lock().unwrap());
    lateness.sort();
    (latencies, lateness, failed.load(Ordering::Relaxed))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The processor time `pid` has used so far (user and system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    // Fields 14 and 15 of /proc/<pid>/stat, after the command name in parentheses, in
    // clock ticks of 1/100 s (USER_HZ on Linux).
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<u64> = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .skip(11)
                .take(2)
                .map(|field| field.parse().ok())
                .collect::<Option<_>>()?;
            Some(fields.iter().sum::<u64>())
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Processor time per request, in microseconds.
fn cpu_per_request(cpu: Duration, requests: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown memory".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores ({cpu}), {memory}")
}

/// Starts the stand-ins of the broker and of Webex on a port of their own, with counters
/// of their own: each database's run gets fresh ones.
fn start_stand_ins() -> std::io::Result<(web::Data<StandIns>, String, ServerHandle)> {
    let stand_ins = web::Data::new(StandIns::default());
    let state = stand_ins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/api/v2/joseencrypt", web::post().to(joseencrypt))
            .route("/v1/messages", web::post().to(webex_message))
            .route("/events", web::post().to(event))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))?;
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((stand_ins, url, handle))
}

/// The PostgreSQL server the PostgreSQL run uses, checked before anything runs.
struct PostgresServer {
    /// The URL given: an existing database, to create and drop the benchmark's from.
    admin_url: String,
    /// The same without its password, for messages and the report.
    shown: String,
    version: String,
}

impl PostgresServer {
    async fn connect(url: &str) -> Result<Self, Box<dyn Error>> {
        let shown = match reqwest::Url::parse(url) {
            Ok(mut parsed) => {
                let _ = parsed.set_password(None);
                parsed.to_string()
            }
            Err(_) => url.to_string(),
        };
        let unreachable = |why: String| {
            format!(
                "cannot reach PostgreSQL at {shown}: {why}. Start the server, point --postgres \
                 (or ICB_BENCH_POSTGRES_URL) at one, or leave it out with --databases sqlite"
            )
        };
        let connection =
            tokio::time::timeout(Duration::from_secs(10), sqlx::AnyConnection::connect(url)).await;
        let mut connection = match connection {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(unreachable(error.to_string()).into()),
            Err(_) => return Err(unreachable("no answer within 10 s".into()).into()),
        };
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&mut connection)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        connection.close().await?;
        // `15.20 (Debian 15.20-0+deb12u1)`: the number says enough.
        let version = version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Self {
            admin_url: url.to_string(),
            shown,
            version,
        })
    }

    /// Creates a fresh database; returns its name and URL.
    async fn create_database(&self) -> Result<(String, String), Box<dyn Error>> {
        let name = format!("icb_bench_{}", uuid::Uuid::new_v4().simple());
        let mut connection = sqlx::AnyConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .map_err(|error| format!("cannot create a database on {}: {error}", self.shown))?;
        connection.close().await?;
        let mut url = reqwest::Url::parse(&self.admin_url)?;
        url.set_path(&format!("/{name}"));
        Ok((name, url.to_string()))
    }

    /// Drops a database `create_database` made, closing whatever connections it still has.
    async fn drop_database(&self, name: &str) -> Result<(), Box<dyn Error>> {
        let mut connection = sqlx::AnyConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut connection)
            .await?;
        connection.close().await?;
        Ok(())
    }
}

/// What one database's run measured and found.
struct Run {
    database: Database,
    /// Requests per second of its fixed-rate phase.
    rate: u64,
    idle_rss: f64,
    healthz: Saturation,
    healthz_cpu: f64,
    follow_ups: Saturation,
    follow_up_cpu: f64,
    p50: Duration,
    p99: Duration,
    late_p99: Duration,
    new_conversations: Saturation,
    /// Processor time per new conversation, its notification and answer included.
    new_conversation_cpu: f64,
    burst_answered: Duration,
    /// When the burst's last notification arrived; none if not within 60 s.
    burst_notified: Option<Duration>,
    peak_rss: f64,
    answered_messages: u64,
    conversations: u64,
    webex_posts: u64,
    /// What was checked, whether it held, and the figures it compared (shown if not).
    checks: Vec<(&'static str, bool, String)>,
    /// `--history`: the operations phase, and the database's size at the end.
    operations: Option<operations::OperationsRun>,
    database_bytes: u64,
    stored_messages: u64,
}

/// The counts a run's checks compare, as they were before it (a full database's history).
#[derive(Default)]
struct Counts {
    conversations: u64,
    meetings: u64,
    messages: u64,
    unsent: u64,
    outbox: u64,
}

impl Counts {
    /// The counts now; the deliveries only of conversations opened since `since` (ms): a
    /// full database's history has its own (some dead, cancelled or pending, and the
    /// service may act on those while it runs).
    async fn of(db: &sqlx::AnyPool, since: i64) -> Result<Self, sqlx::Error> {
        // Portable SQL: the same statements on SQLite and PostgreSQL.
        let deliveries = |filter: &str| {
            format!(
                "SELECT COUNT(*) FROM outbox WHERE kind != 'event' {filter}
                 AND conversation_id IN (SELECT id FROM conversations WHERE created_at >= {since})"
            )
        };
        Ok(Counts {
            conversations: count(db, "SELECT COUNT(*) FROM conversations").await?,
            meetings: count(db, "SELECT COUNT(*) FROM meetings").await?,
            messages: count(db, "SELECT COUNT(*) FROM messages").await?,
            unsent: count(db, &deliveries("AND state != 'sent'")).await?,
            outbox: count(db, &deliveries("")).await?,
        })
    }
}

/// Waits (up to two minutes) until the database holds `meetings` meetings at least (not
/// counted when 0) and every delivery of a conversation opened since `since` (ms) is sent:
/// the Webex stand-in's count of what it received includes the history's, which the
/// service sends too.
async fn settle(database_url: &str, since: i64, meetings: u64) -> Result<(), sqlx::Error> {
    let db = sqlx::AnyPool::connect(database_url).await?;
    let pending = format!(
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND kind != 'event'
         AND conversation_id IN (SELECT id FROM conversations WHERE created_at >= {since})"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline
        && ((meetings > 0 && count(&db, "SELECT COUNT(*) FROM meetings").await? < meetings)
            || count(&db, &pending).await? > 0)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await;
    Ok(())
}

/// The last lines of icbridge's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

async fn count(db: &sqlx::AnyPool, sql: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, i64>(sql).fetch_one(db).await? as u64)
}

/// Every phase on one database: starts fresh stand-ins and an icbridge on `database_url`
/// (its log in `dir`), loads it, stops it and checks the database.
async fn measure(
    args: &Args,
    database: Database,
    database_url: &str,
    dir: &Path,
    history: Option<&history_run::Pass>,
) -> Result<Run, Box<dyn Error>> {
    let run_started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let history_rows = match history {
        Some(history_run::Pass::Full { .. }) => {
            let db = sqlx::AnyPool::connect(database_url).await?;
            let counts = Counts::of(&db, run_started).await?;
            db.close().await;
            counts
        }
        _ => Counts::default(),
    };
    let (stand_ins, stand_in_url, stand_in_server) = start_stand_ins()?;
    let rate = match database {
        Database::Sqlite => args.rate,
        Database::Postgres => args.postgres_rate,
    };

    // icbridge, as an operator would run it: info logs to a file.
    let log_path = dir.join("icbridge.log");
    let log = std::fs::File::create(&log_path)?;
    let mut command = tokio::process::Command::new(&args.icbridge);
    command
        .arg("serve")
        .env_clear()
        .env("ICB_LISTEN", "127.0.0.1:0")
        .env("ICB_DATABASE_URL", database_url)
        .env("ICB_WEBEX_TOKEN", "bench-bot-token")
        .env("ICB_IC_BASE_URL", &stand_in_url)
        .env("ICB_WEBEX_API_URL", format!("{stand_in_url}/v1"))
        .env("ICB_CONNECT_WEBHOOK_SECRET", SECRET)
        .env("ICB_EXPERT_ROOM_ID", "bench-experts-room")
        .env("ICB_MAX_NEW_MEETINGS_PER_HOUR", "0")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if args.events {
        command
            .env("ICB_EVENTS_URL", format!("{stand_in_url}/events"))
            .env("ICB_EVENTS_SECRET", EVENTS_SECRET);
    }
    if history.is_some() {
        // A desk that keeps a year: the service's hourly purge leaves the history alone
        // (the operations phase runs one itself). The admin API and the console are on.
        command
            .env("ICB_RETENTION", history_run::SERVICE_RETENTION)
            .env("ICB_ADMIN_TOKEN", operations::ADMIN_TOKEN)
            .env("ICB_PUBLIC_URL", "http://127.0.0.1")
            .env("ICB_OAUTH_CLIENT_ID", "bench-client")
            .env("ICB_OAUTH_CLIENT_SECRET", "bench-client-secret");
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", args.icbridge.display()))?;
    let pid = child.id().expect("running");
    let mut base = None;
    // Up to 10 s: it migrates the database first.
    for _ in 0..1000 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(rest) = text.split("listening on ").nth(1) {
            base = Some(
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.'))
                    .collect::<String>(),
            );
            break;
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!(
                "icbridge exited ({status}) before it listened; the end of its log:\n{}",
                log_tail(&log_path)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let base = base.ok_or_else(|| {
        format!(
            "icbridge did not listen within 10 s; the end of its log:\n{}",
            log_tail(&log_path)
        )
    })?;
    // A connection left idle 5 s is closed by icbridge (actix-web's keep-alive): one sent
    // on just as it closes fails (`IncompleteMessage`). The burst's thousand connections
    // all fell idle together, and 5 s later 4–16 follow-ups of the operations phase failed
    // so; the pool drops a connection idle for 4 s instead.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .pool_idle_timeout(Duration::from_secs(4))
        .build()?;
    let target = Arc::new(Target::new(http, &base)?);
    let mut answered_messages: u64 = 0;
    let mut next_customer: u64 = 0;

    // Warm up and measure idle memory.
    for _ in 0..50 {
        target.healthz().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_mib(pid);

    // 1. The floor: /healthz.
    let t = target.clone();
    let cpu_before = cpu_time(pid);
    let healthz = sweep(
        &args.connections,
        args.phase,
        move |_| {
            let t = t.clone();
            async move { t.healthz().await }
        },
        async |_| 0,
    )
    .await;
    let healthz_cpu = cpu_per_request(cpu_time(pid) - cpu_before, healthz.ok);

    // 2. Follow-ups in 100 existing conversations.
    let customers: Vec<u64> = (0..100).map(|i| next_customer + i).collect();
    next_customer += 100;
    for customer in &customers {
        if !target
            .post(&message(*customer, Some(&format!("open-{customer}"))))
            .await
        {
            return Err(format!(
                "icbridge did not answer a first message; the end of its log:\n{}",
                log_tail(&log_path)
            )
            .into());
        }
        answered_messages += 1;
    }
    let follow_ups: Arc<Vec<Signed>> =
        Arc::new(customers.iter().map(|c| message(*c, None)).collect());
    // Each phase, and each run of a sweep, starts with the relays and notifications of
    // the ones before delivered.
    let drained = |expected: u64| stand_ins.webex_posts.load(Ordering::Relaxed) >= expected;
    // Waits until `expected` Webex messages arrived; returns how many were still missing.
    let catch_up = async |expected: u64| {
        let missing = expected.saturating_sub(stand_ins.webex_posts.load(Ordering::Relaxed));
        wait_until(Duration::from_secs(120), || drained(expected)).await;
        missing
    };
    let (t, f) = (target.clone(), follow_ups.clone());
    let cpu_before = cpu_time(pid);
    let before = answered_messages;
    let follow_ups_saturation = sweep(
        &args.connections,
        args.phase,
        move |i| {
            let (t, f) = (t.clone(), f.clone());
            async move { t.post(&f[(i % f.len() as u64) as usize]).await }
        },
        async |ok| catch_up(before + ok).await,
    )
    .await;
    answered_messages += follow_ups_saturation.ok;
    let failed_follow_ups = follow_ups_saturation.failed;
    // Until the relays are delivered: a follow-up's cost includes its relay.
    let follow_up_cpu = cpu_per_request(cpu_time(pid) - cpu_before, follow_ups_saturation.ok);
    let (t, f) = (target.clone(), follow_ups.clone());
    let (latencies, lateness, failed_latency) = fixed_rate(rate, args.latency_phase, move |i| {
        let (t, f) = (t.clone(), f.clone());
        async move { t.post(&f[(i % f.len() as u64) as usize]).await }
    })
    .await;
    answered_messages += latencies.len() as u64;
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    let late_p99 = percentile(&lateness, 0.99);
    wait_until(Duration::from_secs(120), || drained(answered_messages)).await;

    // 3. New conversations, the broker answering at once.
    stand_ins.broker_delay_ms.store(0, Ordering::Relaxed);
    let first_new = next_customer;
    let t = target.clone();
    let before = answered_messages;
    let cpu_before = cpu_time(pid);
    let new_saturation = sweep(
        &args.connections,
        args.phase,
        move |i| {
            let t = t.clone();
            async move { t.post(&message(1_000_000 + first_new + i, None)).await }
        },
        // One Webex message per answered message.
        async |ok| catch_up(before + ok).await,
    )
    .await;
    let (new_ok, failed_new) = (new_saturation.ok, new_saturation.failed);
    let new_conversation_cpu = cpu_per_request(cpu_time(pid) - cpu_before, new_ok);
    answered_messages += new_ok;

    // 4. A burst of first messages from new customers, the broker taking its time.
    stand_ins.broker_delay_ms.store(
        args.burst_broker_delay.as_millis() as u64,
        Ordering::Relaxed,
    );
    let bodies: Vec<Signed> = (0..args.burst as u64)
        .map(|i| message(10_000_000 + i, Some(&format!("burst-{i}"))))
        .collect();
    let peak = Arc::new(Mutex::new(rss_mib(pid)));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let rss = rss_mib(pid);
                {
                    let mut peak = peak.lock().unwrap();
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    let results = join_all(bodies.iter().map(|body| target.post(body))).await;
    let burst_answered = started.elapsed();
    let burst_ok = results.iter().filter(|ok| **ok).count() as u64;
    answered_messages += burst_ok;
    let all_sent = answered_messages;
    let notified = wait_until(Duration::from_secs(60), || drained(all_sent)).await;
    let burst_notified = notified.map(|_| started.elapsed());
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    let peak_rss = *peak.lock().unwrap();

    // Events (`--events`) trail the customers' answers and the experts' messages: they are
    // all delivered before icbridge stops.
    let events_drained = if args.events {
        let db = sqlx::AnyPool::connect(database_url).await?;
        let queued = count(&db, "SELECT COUNT(*) FROM outbox WHERE kind = 'event'").await?;
        db.close().await;
        wait_until(Duration::from_secs(120), || {
            stand_ins.event_posts.load(Ordering::Relaxed) >= queued
        })
        .await
        .map(|_| started.elapsed())
    } else {
        None
    };

    // One conversation per customer: the follow-ups', the new ones and the burst's.
    let expected_customers = 100 + new_ok + burst_ok;

    // `--history`: what operators and experts do, beside the customers' follow-ups.
    let operations = match history {
        Some(pass) => {
            // The burst waits for the notifications it caused, not for the customers'
            // answers (sent to Webex Connect): the outbox still held some for 0.26–0.42 s
            // after it, and the service's writes for them ran beside the first erasures.
            // The operations start once every conversation has its meeting and every
            // delivery is sent.
            let meetings = history_rows.meetings + expected_customers;
            settle(database_url, run_started, meetings).await?;
            let conversations = pass.conversations(database_url).await?;
            let operations = operations::Operations {
                base: &base,
                http: reqwest::Client::new(),
                icbridge: &args.icbridge,
                database_url,
                rate,
                customers: pass.customers(args.burst),
                conversations,
                purge_retention: history_run::PURGE_RETENTION,
            };
            let (t, f) = (target.clone(), follow_ups.clone());
            let run = operations
                .measure(move |i| {
                    let (t, f) = (t.clone(), f.clone());
                    async move { t.post(&f[(i % f.len() as u64) as usize]).await }
                })
                .await
                .map_err(|error| {
                    format!(
                        "{error}; the end of icbridge's log:\n{}",
                        log_tail(&log_path)
                    )
                })?;
            answered_messages += run.answered;
            settle(database_url, run_started, 0).await?;
            Some(run)
        }
        None => None,
    };

    // 5. Nothing traded away: the database agrees with what was answered.
    // A graceful stop: the worker records the sends it has in flight.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let db = sqlx::AnyPool::connect(database_url).await?;
    // What this run added (to a full database's history).
    let after = Counts::of(&db, run_started).await?;
    // A full database's deliveries that came due while the service ran (a reminder, a
    // waiting conversation's notification) reach the Webex stand-in too.
    let history_sent = count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM outbox WHERE kind != 'event' AND sent_at >= {run_started}
             AND conversation_id IN (SELECT id FROM conversations WHERE created_at < {run_started})"
        ),
    )
    .await?;
    let stored_messages = after.messages;
    let conversations = after.conversations - history_rows.conversations;
    let meetings = after.meetings - history_rows.meetings;
    let messages = after.messages - history_rows.messages;
    let unsent = after.unsent.saturating_sub(history_rows.unsent);
    let outbox = after.outbox - history_rows.outbox;
    // Events (`--events`): one delivery per stored event, each received once.
    let stored_events = count(&db, "SELECT COUNT(*) FROM events").await?;
    let event_rows = count(&db, "SELECT COUNT(*) FROM outbox WHERE kind = 'event'").await?;
    let unsent_events = count(
        &db,
        "SELECT COUNT(*) FROM outbox WHERE kind = 'event' AND state != 'sent'",
    )
    .await?;
    db.close().await;
    let database_bytes = match history {
        Some(_) => operations::database_bytes(database, database_url).await?,
        None => 0,
    };
    stand_in_server.stop(false).await;
    let failed_operations = operations.as_ref().map_or(0, |run| run.failed);
    let webex_posts = stand_ins.webex_posts.load(Ordering::Relaxed);
    let broker_calls = stand_ins.broker_calls.load(Ordering::Relaxed);
    let event_posts = stand_ins.event_posts.load(Ordering::Relaxed);
    let mut checks = vec![
        (
            "one conversation per customer",
            conversations == expected_customers,
            format!("{conversations} conversations, {expected_customers} customers"),
        ),
        (
            "one meeting per conversation (and per broker call)",
            meetings == conversations && broker_calls == meetings,
            format!("{meetings} meetings, {conversations} conversations, {broker_calls} broker calls"),
        ),
        (
            "every answered message stored once",
            messages == answered_messages,
            format!("{messages} stored, {answered_messages} answered"),
        ),
        (
            "every notification and relay sent, once each",
            unsent == 0 && outbox == answered_messages && webex_posts == outbox + history_sent,
            format!(
                "{outbox} in the outbox, {unsent} of them not marked sent; {answered_messages} answered; {webex_posts} received by Webex, {history_sent} of them the history's"
            ),
        ),
        (
            "no failed requests",
            failed_follow_ups + failed_latency + failed_new + failed_operations == 0
                && burst_ok == args.burst as u64,
            format!(
                "failed: {failed_follow_ups} follow-ups at saturation, {failed_latency} at the fixed rate, {failed_new} new conversations, {} of the burst, {failed_operations} follow-ups during the erasures and the purge",
                args.burst as u64 - burst_ok
            ),
        ),
    ];
    if args.events {
        checks.push((
            "every event delivered to the subscription, once each",
            unsent_events == 0 && event_rows == stored_events && event_posts == event_rows,
            format!(
                "{stored_events} events stored, {event_rows} deliveries queued, {unsent_events} of them not marked sent, {event_posts} received; the last {}",
                events_drained.map_or("not within 120 s of the burst".to_string(), |d| format!("{} ms after the burst began", d.as_millis()))
            ),
        ));
    }
    Ok(Run {
        database,
        rate,
        idle_rss,
        healthz,
        healthz_cpu,
        follow_ups: follow_ups_saturation,
        follow_up_cpu,
        p50,
        p99,
        late_p99,
        new_conversations: new_saturation,
        new_conversation_cpu,
        burst_answered,
        burst_notified,
        peak_rss,
        answered_messages,
        conversations,
        webex_posts,
        checks,
        operations,
        database_bytes,
        stored_messages,
    })
}

/// Runs `work` unless interrupted (Ctrl-C), so that what it created can still be removed.
async fn interruptible<T>(
    work: impl Future<Output = Result<T, Box<dyn Error>>>,
) -> Result<T, Box<dyn Error>> {
    tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    }
}

/// One database's cell of a row: its figure, and the target and whether it was met where
/// one applies to that database.
struct Cell {
    value: String,
    target: Option<(String, bool)>,
}

fn cell(value: String) -> Cell {
    Cell {
        value,
        target: None,
    }
}

fn judged(value: String, target: &str, met: bool) -> Cell {
    Cell {
        value,
        target: Some((target.to_string(), met)),
    }
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "❌"
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The table: a row per measurement, a column per database, and the targets, each marked
/// with the database it applies to.
fn table(args: &Args, runs: &[Run]) -> String {
    let mut table = String::from("| measurement |");
    for run in runs {
        table.push_str(&format!(" {} |", run.database.name()));
    }
    table.push_str(" target |\n|---|");
    for _ in runs {
        table.push_str("---|");
    }
    table.push_str("---|\n");
    let mut row = |label: &str, cell: &dyn Fn(&Run) -> Cell| {
        let cells: Vec<(Database, Cell)> =
            runs.iter().map(|run| (run.database, cell(run))).collect();
        let mut line = format!("| {label} |");
        let mut targets = Vec::new();
        for (database, cell) in &cells {
            match &cell.target {
                Some((target, met)) => {
                    line.push_str(&format!(" {} {} |", cell.value, pass(*met)));
                    targets.push(format!("{target} ({})", database.name()));
                }
                None => line.push_str(&format!(" {} |", cell.value)),
            }
        }
        let targets = if targets.is_empty() {
            "—".to_string()
        } else {
            targets.join("; ")
        };
        table.push_str(&format!("{line} {targets} |\n"));
    };
    row("`GET /healthz` throughput (floor)", &|run| {
        cell(format!("{:.0} req/s", run.healthz.answered()))
    });
    // Follow-ups: on SQLite against the floor, on PostgreSQL in requests per second.
    let follow_ups = |rps: f64, run: &Run| {
        let healthz = run.healthz.answered();
        let value = format!("{rps:.0} req/s = {:.0}% of healthz", 100.0 * rps / healthz);
        match run.database {
            Database::Sqlite => judged(value, "≥ 10% of healthz", rps >= 0.1 * healthz),
            Database::Postgres => judged(value, "≥ 2000/s", rps >= 2000.0),
        }
    };
    row(
        "follow-ups (signed, existing conversation) at saturation: answered",
        &|run| follow_ups(run.follow_ups.answered(), run),
    );
    row(
        "… answered and relayed to Webex (until the last relay arrived)",
        &|run| follow_ups(run.follow_ups.completed(), run),
    );
    row(
        "icbridge's processor time per request: `/healthz` / follow-up (its relay included) / new conversation (its notification included)",
        &|run| {
            cell(format!(
                "{:.0} µs / {:.0} µs / {:.0} µs",
                run.healthz_cpu, run.follow_up_cpu, run.new_conversation_cpu
            ))
        },
    );
    row(
        "follow-ups at a fixed rate: p50 / p99 latency (from the send; how late the generator sent at p99)",
        &|run| {
            let value = format!(
                "at {} req/s: {} / {} ({} late)",
                run.rate,
                ms(run.p50),
                ms(run.p99),
                ms(run.late_p99)
            );
            let limit = match run.database {
                Database::Sqlite => 5,
                Database::Postgres => 10,
            };
            judged(
                value,
                &format!("p99 ≤ {limit} ms"),
                run.p99 <= Duration::from_millis(limit),
            )
        },
    );
    row("new conversations (broker at once) at saturation", &|run| {
        let (rps, healthz) = (run.new_conversations.answered(), run.healthz.answered());
        let value = format!("{rps:.0} req/s = {:.0}% of healthz", 100.0 * rps / healthz);
        match run.database {
            Database::Sqlite => judged(value, "≥ 2000/s", rps >= 2000.0),
            Database::Postgres => cell(value),
        }
    });
    row(
        &format!(
            "burst of {} first messages, broker {}: all answered",
            args.burst,
            humantime::format_duration(args.burst_broker_delay)
        ),
        &|run| {
            let value = ms(run.burst_answered);
            match run.database {
                Database::Sqlite => judged(
                    value,
                    "≤ 0.6 s",
                    run.burst_answered <= Duration::from_millis(600),
                ),
                Database::Postgres => cell(value),
            }
        },
    );
    row("… all notifications sent", &|run| {
        let value = match run.burst_notified {
            Some(notified) => ms(notified),
            None => "not within 60 s".into(),
        };
        match run.database {
            Database::Sqlite => judged(
                value,
                "≤ 3 s",
                run.burst_notified
                    .is_some_and(|notified| notified <= Duration::from_secs(3)),
            ),
            Database::Postgres => cell(value),
        }
    });
    row("resident memory idle", &|run| {
        let value = format!("{:.1} MiB", run.idle_rss);
        match run.database {
            Database::Sqlite => judged(value, "≤ 20 MiB", run.idle_rss <= 20.0),
            Database::Postgres => cell(value),
        }
    });
    row("resident memory, peak of the burst", &|run| {
        let value = format!("{:.1} MiB", run.peak_rss);
        match run.database {
            Database::Sqlite => judged(value, "≤ 100 MiB", run.peak_rss <= 100.0),
            Database::Postgres => cell(value),
        }
    });
    table
}

/// Everything printed and written into the results file.
fn report(args: &Args, runs: &[Run], postgres: Option<&PostgresServer>) -> String {
    let connections: Vec<String> = args.connections.iter().map(|c| c.to_string()).collect();
    let databases: Vec<String> = runs
        .iter()
        .map(|run| match (run.database, postgres) {
            (Database::Postgres, Some(server)) => format!(
                "PostgreSQL {} (a fresh database on {}, dropped after the run)",
                server.version, server.shown
            ),
            _ => "SQLite (a file in a temporary directory)".to_string(),
        })
        .collect();
    let mut report = format!(
        "Machine: {}. Phases of {} (the fixed rate's: {}); saturation phases at {} connections. One icbridge per database, one after the other: {}. The load generator, the stand-ins and the database server run on the same machine.{}\n\n",
        machine(),
        humantime::format_duration(args.phase),
        humantime::format_duration(args.latency_phase),
        connections.join(", "),
        databases.join(", then "),
        if args.events {
            " With one event subscription taking every event (`--events`)."
        } else {
            ""
        },
    );
    report.push_str(&table(args, runs));
    report.push_str(
        "\nThroughput by connections, answered (and with their Webex messages delivered):\n\n",
    );
    for run in runs {
        report.push_str(&format!(
            "- {}: `/healthz` {}; follow-ups {}; new conversations {}.\n",
            run.database.name(),
            run.healthz.describe(),
            run.follow_ups.describe(),
            run.new_conversations.describe(),
        ));
    }
    for run in runs {
        report.push_str(&format!(
            "\nDatabase checks after the {} run ({} messages answered, {} conversations, {} Webex messages):\n\n",
            run.database.name(),
            run.answered_messages,
            run.conversations,
            run.webex_posts,
        ));
        for (what, ok, figures) in &run.checks {
            if *ok {
                report.push_str(&format!("- {} {what}\n", pass(*ok)));
            } else {
                report.push_str(&format!("- {} {what} ({figures})\n", pass(*ok)));
            }
        }
    }
    report
}

/// `--fill-history`: a year of history ending now, and a few of its customers and
/// conversations to try it with.
async fn fill_history(url: &str, conversations: u64) -> Result<(), Box<dyn Error>> {
    let size = history::HistorySize { conversations };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let filled = history::fill(url, &size, now_ms).await?;
    print!("{filled}");
    println!(
        "customers: {}",
        history::sample_customers(&size, 3).join(" ")
    );
    let conversations = history::sample_conversations(&size, now_ms, 3);
    println!("conversations: {}", conversations.join(" "));
    Ok(())
}

/// Writes `text` into the file at `path` between the markers `start` and `end` (added at
/// its end if it has none).
fn write_between(path: &Path, start: &str, end: &str, text: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let updated = match (existing.find(start), existing.find(end)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{start}\n{text}{}", &existing[..a], &existing[b..])
        }
        _ => format!("{existing}\n{start}\n{text}{end}\n"),
    };
    std::fs::write(path, updated)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match bench().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench() -> Result<(), Box<dyn Error>> {
    let mut args = Args::parse();
    if let Some(url) = &args.fill_history {
        return fill_history(url, args.history_size).await;
    }
    args.databases.sort();
    args.databases.dedup();
    if args.databases.is_empty() {
        return Err("--databases: name at least one of sqlite, postgres".into());
    }
    sqlx::any::install_default_drivers();

    // The PostgreSQL server is checked first: a run that cannot reach it stops at once,
    // not after the SQLite phases.
    let postgres = if args.databases.contains(&Database::Postgres) {
        Some(PostgresServer::connect(&args.postgres_url).await?)
    } else {
        None
    };

    if args.history {
        return history_run::run(&args, postgres.as_ref()).await;
    }

    let mut runs = Vec::new();
    for &database in &args.databases {
        eprintln!("measuring icbridge on {}…", database.name());
        let dir =
            std::env::temp_dir().join(format!("icbridge-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let outcome = match (database, &postgres) {
            (Database::Postgres, Some(server)) => {
                let (name, url) = server.create_database().await?;
                let outcome = interruptible(measure(&args, database, &url, &dir, None)).await;
                if let Err(error) = server.drop_database(&name).await {
                    eprintln!(
                        "warning: could not drop the database {name} on {}: {error}",
                        server.shown
                    );
                }
                outcome
            }
            _ => {
                let url = format!("sqlite://{}", dir.join("bench.db").display());
                interruptible(measure(&args, database, &url, &dir, None)).await
            }
        };
        match outcome {
            Ok(run) => {
                if run.checks.iter().all(|(_, ok, _)| *ok) {
                    let _ = std::fs::remove_dir_all(&dir);
                } else {
                    eprintln!(
                        "a database check failed on {}; icbridge's log: {}",
                        database.name(),
                        dir.join("icbridge.log").display()
                    );
                }
                runs.push(run);
            }
            // The directory stays, with icbridge's log.
            Err(error) => {
                return Err(format!(
                    "the {} run failed: {error}\n(icbridge's log: {})",
                    database.name(),
                    dir.join("icbridge.log").display()
                )
                .into())
            }
        }
    }

    let summary = report(&args, &runs, postgres.as_ref());
    println!("{summary}");
    if let Some(path) = &args.results {
        write_between(path, "<!-- results -->", "<!-- /results -->", &summary)?;
        println!("written to {}", path.display());
    }
    checks_held(&runs)
}

/// An error naming the databases on which a check failed, if one did.
fn checks_held<'a>(runs: impl IntoIterator<Item = &'a Run>) -> Result<(), Box<dyn Error>> {
    let mut failed: Vec<&str> = runs
        .into_iter()
        .filter(|run| !run.checks.iter().all(|(_, ok, _)| *ok))
        .map(|run| run.database.name())
        .collect();
    failed.dedup();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("a database check failed on {}", failed.join(" and ")).into())
    }
}
