use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use icbridge::app::settings::Settings;
use icbridge::app::{Application, ServeOptions, StartupError};
use icbridge::bridge::Bridge;
use icbridge::delivery::OutboxWorker;
use icbridge::desks::DeskConfig;
use icbridge::domain::clock::Clock;
pub use icbridge::domain::events::{Includes, Subscription, WebhookSecret};
use icbridge::experts::Desk;
use serde_json::Value;
use sha2::Sha256;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, ConnectOptions};
use tempfile::TempDir;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const HUB_SECRET: &str = "hub-secret-for-tests";
pub const FLOW_TOKEN: &str = "flow-token-for-tests";
pub const BOT_TOKEN: &str = "bot-token-for-tests";
pub const SERVICE_KEY: &str = "connect-service-key-for-tests";
/// The admin API's token, for apps started with `ADMIN_TOKEN` set to it.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";
pub const EXPERT_ROOM: &str =
    "Y2lzY29zcGFyazovL3VzL1JPT00vYmJjZWIxYWQtNDNmMS0zYjU4LTkxNDctZjE0YmIwYzRkMTU0";

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub broker: MockServer,
    pub webex: MockServer,
    pub connect: MockServer,
    pub worker: OutboxWorker,
    pub desk: Desk,
    /// What the routes act through; the openings of desks are driven with it.
    pub bridge: Bridge,
    /// The app's clock: it stands still unless the test moves it.
    pub clock: Clock,
    pub db: AnyPool,
    pub database_url: String,
    /// The settings the app was started with (keys without `ICB_`), and its desks.
    pub vars: BTreeMap<String, String>,
    pub desks: Vec<DeskConfig>,
    pub subscriptions: Vec<Subscription>,
    _database: TestDatabase,
}

/// The upstream payloads in `tests/fixtures/` (their sources: `tests/fixtures/README.md`).
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

pub fn sign_sha256(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDb {
    Sqlite,
    Postgres,
}

/// A database of one test's own, removed with it: a SQLite file in a temporary directory,
/// or a fresh PostgreSQL database dropped at the end.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(db: TestDb) -> Self {
        crate::statements::collect();
        match db {
            TestDb::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Self {
                    url: format!("sqlite://{}/icbridge.db", dir.path().display()),
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            TestDb::Postgres => {
                let admin = std::env::var("ICB_TEST_POSTGRES_URL")
                    .expect("set ICB_TEST_POSTGRES_URL for the PostgreSQL tests");
                let name = format!("icb_test_{}", uuid::Uuid::new_v4().simple());
                let pool = open_db(&admin).await;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&format!("/{name}"));
                Self {
                    url: url.to_string(),
                    _dir: None,
                    postgres: Some((admin, name)),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let pool = open_db(&admin).await;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await?;
                    pool.close().await;
                    Ok::<_, sqlx::Error>(())
                })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop the test database: {error}");
        }
    }
}

/// Opens a test's database for assertions (SQL with `$1`-style placeholders). Its
/// statements are not collected for the query-plan check (see `statements`): only the
/// store's are.
pub async fn open_db(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    let options: sqlx::any::AnyConnectOptions = url.parse().unwrap();
    AnyPoolOptions::new()
        .max_connections(4)
        .connect_with(options.disable_statement_logging())
        .await
        .unwrap()
}

/// Upstream stand-ins plus the settings that point icbridge at them.
pub struct Upstreams {
    pub broker: MockServer,
    pub webex: MockServer,
    pub connect: MockServer,
    pub database: TestDatabase,
    pub vars: BTreeMap<String, String>,
    /// `[[desk]]` entries, as a TOML file would give them.
    pub desks: Vec<DeskConfig>,
    /// `[[event_subscription]]` entries, as a TOML file would give them.
    pub subscriptions: Vec<Subscription>,
}

impl Upstreams {
    pub async fn start(db: TestDb) -> Self {
        let broker = MockServer::start().await;
        let webex = MockServer::start().await;
        let connect = MockServer::start().await;
        let database = TestDatabase::create(db).await;
        let vars = [
            ("LISTEN", "127.0.0.1:0".to_string()),
            ("DATABASE_URL", database.url.clone()),
            ("WEBEX_TOKEN", BOT_TOKEN.into()),
            ("IC_BASE_URL", broker.uri()),
            ("WEBEX_API_URL", format!("{}/v1", webex.uri())),
            ("CONNECT_API_URL", connect.uri()),
            ("CONNECT_SERVICE_KEY", SERVICE_KEY.into()),
            ("CONNECT_WEBHOOK_SECRET", HUB_SECRET.into()),
            ("CONNECT_WEBHOOK_TOKEN", FLOW_TOKEN.into()),
            ("EXPERT_ROOM_ID", EXPERT_ROOM.into()),
            ("RETRY_SCHEDULE", "1ms,1ms,1ms".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self {
            broker,
            webex,
            connect,
            database,
            vars,
            desks: Vec::new(),
            subscriptions: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.vars.insert(key.to_string(), value.to_string());
        self
    }

    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.vars.remove(key);
        self
    }

    pub async fn build(&self) -> Result<Application, StartupError> {
        self.build_with_clock(Clock::system()).await
    }

    async fn build_with_clock(&self, clock: Clock) -> Result<Application, StartupError> {
        let mut settings = Settings::from_vars(&self.vars).expect("test settings are valid");
        settings.desks = self.desks.clone();
        settings
            .events
            .subscriptions
            .extend(self.subscriptions.iter().cloned());
        let options = ServeOptions {
            clock,
            ..ServeOptions::default()
        };
        Application::build(settings, options).await
    }

    /// Starts icbridge on these upstreams. The outbox worker does not run by itself:
    /// tests drive it with `app.worker.run_once()`.
    pub async fn spawn(self) -> TestApp {
        // Time stands still in the app, starting now, until the test moves it: retries,
        // leases and expiries come due when the test says so, not after a sleep.
        let clock = Clock::manual(Clock::system().now_ms());
        let app = self
            .build_with_clock(clock.clone())
            .await
            .expect("icbridge starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let worker = app.outbox_worker();
        let desk = app.desk();
        let bridge = app.bridge();
        tokio::spawn(app.run_until_stopped());
        let db = open_db(&self.vars["DATABASE_URL"]).await;
        TestApp {
            address,
            http: reqwest::Client::new(),
            broker: self.broker,
            webex: self.webex,
            connect: self.connect,
            worker,
            desk,
            bridge,
            clock,
            db,
            database_url: self.vars["DATABASE_URL"].clone(),
            vars: self.vars,
            desks: self.desks,
            subscriptions: self.subscriptions,
            _database: self.database,
        }
    }
}

/// A second instance of an app: the same settings, upstreams and database, a clock of its
/// own set to the same time.
pub struct OtherInstance {
    pub worker: OutboxWorker,
    pub desk: Desk,
    pub bridge: Bridge,
    pub clock: Clock,
}

impl TestApp {
    pub async fn another_instance(&self) -> OtherInstance {
        let mut settings = Settings::from_vars(&self.vars).expect("test settings are valid");
        settings.desks = self.desks.clone();
        settings
            .events
            .subscriptions
            .extend(self.subscriptions.iter().cloned());
        let clock = Clock::manual(self.clock.now_ms());
        let options = ServeOptions {
            clock: clock.clone(),
            ..ServeOptions::default()
        };
        let app = Application::build(settings, options)
            .await
            .expect("a second instance starts");
        let worker = app.outbox_worker();
        let desk = app.desk();
        let bridge = app.bridge();
        tokio::spawn(app.run_until_stopped());
        OtherInstance {
            worker,
            desk,
            bridge,
            clock,
        }
    }
}

pub async fn spawn_app(db: TestDb) -> TestApp {
    Upstreams::start(db).await.spawn().await
}

/// An app that sends customers their replies itself (`ICB_REPLY_MODE=connect`), its broker
/// and Webex answering; Webex Connect answers as each test mounts.
pub async fn spawn_replying_app(db: TestDb) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("REPLY_MODE", "connect");
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    app
}

impl TestApp {
    /// `GET /metrics`, as Prometheus reads it.
    pub async fn metrics_page(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The OpenAPI document the app serves.
    pub async fn openapi(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/openapi.json", self.address))
            .send()
            .await;
        response.unwrap().json().await.unwrap()
    }

    /// Posts a body the way a flow's HTTP Request node does (bearer token).
    pub async fn post_flow(&self, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/webhooks/connect", self.address))
            .bearer_auth(FLOW_TOKEN)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Posts a body the way an Outbound Webhook with a secret does (X-Hub-Signature).
    pub async fn post_signed(&self, body: &str) -> reqwest::Response {
        self.post_with_signature(body, &sign_sha256(body.as_bytes()))
            .await
    }

    pub async fn post_with_signature(&self, body: &str, signature: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/webhooks/connect", self.address))
            .header("X-Hub-Signature", signature)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// The texts of a conversation's transcript, in its order, from the admin API (the app
    /// must have `ADMIN_TOKEN` set to [`ADMIN_TOKEN`]).
    pub async fn transcript(&self, conversation_id: &str) -> Vec<String> {
        let response = admin(
            self,
            reqwest::Method::GET,
            &format!("/api/conversations/{conversation_id}"),
        )
        .await;
        assert_eq!(response.status(), 200);
        let detail: Value = response.json().await.unwrap();
        detail["transcript"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["text"].as_str().unwrap().to_string())
            .collect()
    }

    /// Where one of icbridge's own links (`…/j/<code>`, on any base) leads now: the
    /// redirect's target, or the status of the page shown instead.
    pub async fn own_link_target(&self, url: &str) -> Result<String, u16> {
        let code = url.rsplit_once("/j/").expect("an own link").1;
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}/j/{code}", self.address))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            302 => Ok(response.headers()["location"].to_str().unwrap().to_string()),
            status => Err(status),
        }
    }

    /// Requests the broker received.
    pub async fn broker_requests(&self) -> Vec<wiremock::Request> {
        self.broker.received_requests().await.unwrap()
    }

    pub async fn webex_posts(&self) -> Vec<Value> {
        self.webex
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method == wiremock::http::Method::POST && r.url.path() == "/v1/messages")
            .map(|r| r.body_json().unwrap())
            .collect()
    }
}

/// The WhatsApp messages (`channels.OTT-Messaging.wa`) Webex Connect received after the
/// first one (a conversation's guest link), in order.
pub async fn whatsapp_after_the_link(app: &TestApp) -> Vec<Value> {
    app.connect
        .received_requests()
        .await
        .unwrap()
        .iter()
        .skip(1)
        .map(|r| r.body_json::<Value>().unwrap()["channels"]["OTT-Messaging"]["wa"].clone())
        .collect()
}

/// Webex Connect queues every WhatsApp message like `fixtures/connect-whatsapp-send-ok.json`.
pub async fn mount_whatsapp_queued(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/resources/v1/messaging"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("connect-whatsapp-send-ok.json"), "application/json"),
        )
        .mount(server)
        .await;
}

/// Webex Connect accepts every SMS like `fixtures/connect-sms-send-accepted.json`.
pub async fn mount_sms_accepted(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/v1/sms/messages"))
        .respond_with(ResponseTemplate::new(202).set_body_raw(
            fixture("connect-sms-send-accepted.json"),
            "application/json",
        ))
        .mount(server)
        .await;
}

/// The texts Webex Connect was asked to send, in order: each request body's field at
/// `pointer` (`/content` for SMS, `/channels/OTT-Messaging/wa/text/body` for WhatsApp).
pub async fn connect_texts(app: &TestApp, pointer: &str) -> Vec<String> {
    app.connect
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            let body: Value = r.body_json().ok()?;
            Some(body.pointer(pointer)?.as_str()?.to_string())
        })
        .collect()
}

/// Webex lists the bot's group spaces like `fixtures/webex-rooms.json`.
pub async fn mount_webex_rooms(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v1/rooms"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("webex-rooms.json"), "application/json"),
        )
        .mount(server)
        .await;
}

/// The broker answers like `fixtures/ic-joseencrypt-short.json` (or `-long.json`).
/// The broker's answer with a meeting's links (`ic-joseencrypt-short.json`), after `delay_ms`.
pub fn slow_broker_answer(delay_ms: u64) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_delay(std::time::Duration::from_millis(delay_ms))
        .set_body_raw(fixture("ic-joseencrypt-short.json"), "application/json")
}

/// The broker answers every call with a meeting's links, after `delay_ms`.
pub async fn mount_slow_broker(server: &MockServer, delay_ms: u64) {
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .respond_with(slow_broker_answer(delay_ms))
        .mount(server)
        .await;
}

pub async fn mount_broker(server: &MockServer, fixture_name: &str) {
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(fixture(fixture_name), "application/json"),
        )
        .mount(server)
        .await;
}

/// Webex accepts every message like `fixtures/webex-message-created-response.json`.
pub async fn mount_webex_messages(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("webex-message-created-response.json"),
            "application/json",
        ))
        .mount(server)
        .await;
}

pub const SHORT_GUEST_URL: &str = "https://instant.webex.com/visit/ckmNR7I";
pub const SHORT_HOST_URL: &str = "https://instant.webex.com/visit/oCVp2LD";

/// The real `icbridge serve` as a child process, for crash and shutdown tests.
pub struct RunningBinary {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub logs: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Starts `icbridge serve` with these settings (keys without `ICB_`) and waits until it
/// listens.
pub async fn spawn_binary(vars: &BTreeMap<String, String>) -> RunningBinary {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_icbridge"));
    command
        .arg("serve")
        .env_clear()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in vars {
        command.env(format!("ICB_{key}"), value);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let address = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            logs.lock().unwrap().push_str(&line);
            logs.lock().unwrap().push('\n');
            if let Some(rest) = line.split("listening on ").nth(1) {
                // Text or JSON logs: the URL ends where its characters end.
                return rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.'))
                    .collect();
            }
        }
        panic!("icbridge exited before listening: {}", logs.lock().unwrap());
    })
    .await
    .expect("icbridge starts listening");
    let sink = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    RunningBinary {
        child,
        address,
        logs,
    }
}

impl RunningBinary {
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.child.wait())
            .await
            .expect("icbridge stops")
            .unwrap()
    }
}

/// Now as RFC 3339, for the `created` of Webex events.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Polls `check` every 20 ms until it holds, for at most `seconds`: for what another task
/// or process does in its own time. Whether it came to hold.
pub async fn eventually<F, Fut>(seconds: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let found = eventually_found(seconds, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    });
    found.await.is_some()
}

/// Polls `probe` every 20 ms until it finds something, for at most `seconds`; what it found.
pub async fn eventually_found<T, F, Fut>(seconds: u64, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An app with the admin API (token [`ADMIN_TOKEN`]) and the console on.
pub async fn admin_and_console_app(db: TestDb) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .set("ADMIN_TOKEN", ADMIN_TOKEN)
        .set("PUBLIC_URL", "https://bridge.example.com")
        .set("OAUTH_CLIENT_ID", "client")
        .set("OAUTH_CLIENT_SECRET", "secret");
    upstreams.spawn().await
}

/// A request to the admin API of an app started with `ADMIN_TOKEN` set to [`ADMIN_TOKEN`].
pub async fn admin(app: &TestApp, verb: reqwest::Method, route: &str) -> reqwest::Response {
    app.http
        .request(verb, format!("{}{route}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

/// Checks the security headers every HTML answer of icbridge carries (`what` names the
/// answer in a failure): HTML, not cached, never sniffed, no referrer, never framed.
pub fn assert_secure_html(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name} header in {headers:?}"))
    };
    assert!(
        header("content-type").starts_with("text/html"),
        "{what}: {headers:?}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header("cache-control"), "no-store", "{what}");
    let policy = header("content-security-policy");
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("base-uri 'none'"),
        "{what}: {policy}"
    );
}
