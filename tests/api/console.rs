//! The expert console over HTTP: Webex login with state and PKCE, sessions, token refresh,
//! the queue and its CSRF-protected actions.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

pub const CLIENT_ID: &str = "C0ffee-integration-id";
pub const CLIENT_SECRET: &str = "integration-secret-for-tests";
pub const PUBLIC_URL: &str = "https://bridge.example.com";

pub fn user_token() -> String {
    fixture_json("webex-oauth-token.json")["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn refresh_token() -> String {
    fixture_json("webex-oauth-token.json")["refresh_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Webex answers for the expert who logs in.
pub async fn mount_expert_login(webex: &wiremock::MockServer) {
    Mock::given(method("POST"))
        .and(path("/v1/access_token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("webex-oauth-token.json"), "application/json"),
        )
        .mount(webex)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/people/me"))
        .and(header(
            "authorization",
            format!("Bearer {}", user_token()).as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "expert-1", "emails": ["Expert@Example.com"], "displayName": "Erin Expert"
        })))
        .mount(webex)
        .await;
}

async fn console_app(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    console_app_with_desks(db, extra, Vec::new()).await
}

async fn console_app_with_desks(
    db: TestDb,
    extra: &[(&str, &str)],
    desks: Vec<icbridge::desks::DeskConfig>,
) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.desks = desks;
    upstreams
        .set("PUBLIC_URL", PUBLIC_URL)
        .set("OAUTH_CLIENT_ID", CLIENT_ID)
        .set("OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .set("WIDGET_BASE_URL", "https://widgets.example.net/space");
    for (key, value) in extra {
        upstreams.set(key, value);
    }
    let app = upstreams.spawn().await;
    mount_expert_login(&app.webex).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    app
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// A login started in a browser.
struct Login {
    /// The authorize URL's parameters.
    params: HashMap<String, String>,
    /// The `Set-Cookie` of the login's cookie, as the browser got it.
    set_cookie: String,
    /// That cookie as the browser sends it back (`icb_login=…`).
    cookie: String,
}

/// Starts a login in a browser that holds no cookie yet.
async fn start_login(app: &TestApp) -> Login {
    start_login_in(app, None).await
}

/// Starts a login in a browser that sends `cookie` (`name=value`), if any.
async fn start_login_in(app: &TestApp, cookie: Option<&str>) -> Login {
    let mut request = no_redirects().get(format!("{}/console/login", app.address));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/v1/authorize?", app.webex.uri())),
        "{location}"
    );
    let set_cookie = set_cookie_named(&response, "icb_login").expect("the login's cookie");
    Login {
        params: query(&location),
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        set_cookie,
    }
}

/// The `Set-Cookie` of the cookie `name`, if the response sets it.
fn set_cookie_named(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_string())
        .find(|value| value.starts_with(&format!("{name}=")))
}

/// Webex sends a browser back with `code` and `state`; the browser sends `cookie`, if any.
async fn callback(
    app: &TestApp,
    code: &str,
    state: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = no_redirects().get(format!(
        "{}/console/callback?code={code}&state={state}",
        app.address
    ));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.send().await.unwrap()
}

/// Whether any code was exchanged for tokens.
async fn any_code_exchanged(app: &TestApp) -> bool {
    app.webex
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path() == "/v1/access_token")
}

/// Logs in through the stand-ins; returns the session cookie (`icb_console=…`).
pub async fn log_in(app: &TestApp) -> String {
    let login = start_login(app).await;
    let response = callback(app, "the-code", &login.params["state"], Some(&login.cookie)).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console");
    let cookie = set_cookie_named(&response, "icb_console").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

pub async fn get(app: &TestApp, route: &str, cookie: &str) -> reqwest::Response {
    no_redirects()
        .get(format!("{}{route}", app.address))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn csrf_of(app: &TestApp) -> String {
    app.stored().the_console_session().await.csrf_token
}

/// An action on a conversation (`take`, `new-link`, …) from the page, with its CSRF token.
async fn act(app: &TestApp, cookie: &str, id: &str, action: &str) -> reqwest::Response {
    no_redirects()
        .post(format!(
            "{}/console/api/conversations/{id}/{action}",
            app.address
        ))
        .header("Cookie", cookie)
        .header("X-CSRF-Token", csrf_of(app).await)
        .send()
        .await
        .unwrap()
}

db_test! {
    async fn login_redirects_to_webex_with_state_and_pkce(db) {
    let app = console_app(db, &[]).await;
    let params = start_login(&app).await.params;
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["response_type"], "code");
    assert_eq!(
        params["redirect_uri"],
        "https://bridge.example.com/console/callback"
    );
    assert_eq!(params["scope"], "spark:all spark:kms");
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(params["state"].len() >= 40);
    let verifier = app.stored().oauth_login(&params["state"]).await.code_verifier;
    assert_eq!(
        params["code_challenge"],
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    );
    // Every login gets its own state.
    assert_ne!(start_login(&app).await.params["state"], params["state"]);
}
}

db_test! {
    async fn the_callback_exchanges_the_code_server_side_and_starts_a_session(db) {
    let app = console_app(db, &[]).await;
    let login = start_login(&app).await;
    let verifier = app.stored().oauth_login(&login.params["state"]).await.code_verifier;
    let response = callback(&app, "the-code", &login.params["state"], Some(&login.cookie)).await;
    assert_eq!(response.status(), 303);
    let set_cookie = set_cookie_named(&response, "icb_console").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/console"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing: {set_cookie}"
        );
    }

    // The exchange: a form-encoded POST with the secret and the PKCE verifier.
    let exchange = app
        .webex
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/v1/access_token")
        .unwrap();
    assert_eq!(
        exchange.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let form: HashMap<String, String> = url::form_urlencoded::parse(&exchange.body)
        .into_owned()
        .collect();
    assert_eq!(
        form,
        HashMap::from([
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("client_id".to_string(), CLIENT_ID.to_string()),
            ("client_secret".to_string(), CLIENT_SECRET.to_string()),
            ("code".to_string(), "the-code".to_string()),
            (
                "redirect_uri".to_string(),
                "https://bridge.example.com/console/callback".to_string()
            ),
            ("code_verifier".to_string(), verifier),
        ])
    );

    // Tokens stay server-side; the cookie holds only a random id, stored hashed.
    let cookie_value = set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("icb_console=")
        .to_string();
    assert!(!set_cookie.contains(&user_token()));
    let session = app.stored().the_console_session().await;
    let (id_hash, email, access) = (session.id_hash, session.email, session.access_token);
    assert_eq!(
        id_hash,
        hex::encode(Sha256::digest(cookie_value.as_bytes()))
    );
    assert_eq!(email, "expert@example.com");
    assert_eq!(access, user_token());

    // The same state cannot be used twice.
    let replay = callback(&app, "the-code", &login.params["state"], Some(&login.cookie)).await;
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.unwrap().contains("already used"));
}
}

db_test! {
    async fn unknown_missing_and_refused_logins_get_a_clear_page(db) {
    let app = console_app(db, &[]).await;
    let browser = start_login(&app).await.cookie;
    let cases = [
        (
            "/console/callback?code=x&state=never-issued",
            400,
            "unknown, expired or was already used",
        ),
        (
            "/console/callback?code=x",
            400,
            "unknown, expired or was already used",
        ),
        (
            "/console/callback?error=access_denied&state=whatever",
            403,
            "access_denied",
        ),
    ];
    for (route, status, text) in cases {
        let response = no_redirects()
            .get(format!("{}{route}", app.address))
            .header("Cookie", &browser)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{route}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let body = response.text().await.unwrap();
        assert!(body.contains(text), "{route}: {body}");
        assert!(body.contains("Sign in with Webex"));
    }
    assert!(!any_code_exchanged(&app).await, "no code is exchanged without a valid state");
    assert_eq!(app.count("console_sessions").await, 0);
}
}

db_test! {
    async fn a_login_finishes_only_in_the_browser_that_started_it(db) {
    let app = console_app(db, &[]).await;
    // The login's cookie binds it to the browser: short-lived, HttpOnly, SameSite=Lax, and
    // only its hash is stored.
    let attacker = start_login(&app).await;
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/console", "Max-Age=600"] {
        assert!(attacker.set_cookie.contains(attribute), "{attribute} missing: {}", attacker.set_cookie);
    }
    let value = attacker.cookie.trim_start_matches("icb_login=");
    assert!(value.len() >= 40, "{value}");
    let stored = app.stored().oauth_login(&attacker.params["state"]).await.browser_hash;
    assert_eq!(stored, Some(hex::encode(Sha256::digest(value.as_bytes()))));

    // Someone else's browser sent to the attacker's callback (login CSRF): without the
    // cookie, with its own from a login of its own, or with a made-up one, it gets a clear
    // page; no code is exchanged, no session is made, no cookie is set.
    let victim = start_login(&app).await;
    for (cookie, text) in [
        (None, "not started in this browser"),
        (Some(victim.cookie.as_str()), "unknown, expired or was already used"),
        (Some("icb_login=made-up"), "unknown, expired or was already used"),
    ] {
        let response = callback(&app, "attackers-code", &attacker.params["state"], cookie).await;
        assert_eq!(response.status(), 400, "{cookie:?}");
        assert!(response.headers().get("set-cookie").is_none(), "{cookie:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains(text) && page.contains("Sign in with Webex"), "{cookie:?}: {page}");
    }
    // Nor can another browser spend the login with a refusal.
    let refused = no_redirects()
        .get(format!("{}/console/callback?error=access_denied&state={}", app.address, attacker.params["state"]))
        .header("Cookie", &victim.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(!any_code_exchanged(&app).await);
    assert_eq!(app.count("console_sessions").await, 0);

    // The browser that started it still finishes it.
    let response = callback(&app, "the-code", &attacker.params["state"], Some(&attacker.cookie)).await;
    assert_eq!(response.status(), 303);
    assert!(set_cookie_named(&response, "icb_console").is_some());
    assert_eq!(app.count("console_sessions").await, 1);

    // Logins started in several tabs of one browser share its cookie, and each finishes.
    let first = start_login(&app).await;
    let second = start_login_in(&app, Some(&first.cookie)).await;
    assert_eq!(second.cookie, first.cookie);
    for tab in [&second, &first] {
        let response = callback(&app, "the-code", &tab.params["state"], Some(&tab.cookie)).await;
        assert_eq!(response.status(), 303);
    }
    assert_eq!(app.count("console_sessions").await, 3);
}
}

db_test! {
    async fn the_allow_list_keeps_others_out(db) {
    let app = console_app(db, &[("CONSOLE_ALLOWED", "boss@example.org, @other.example")]).await;
    let login = start_login(&app).await;
    let response = callback(&app, "c", &login.params["state"], Some(&login.cookie)).await;
    assert_eq!(response.status(), 403);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("expert@example.com may not use this console"));
    assert_eq!(app.count("console_sessions").await, 0);

    let app = console_app(db, &[("CONSOLE_ALLOWED", "@EXAMPLE.com")]).await;
    log_in(&app).await;
    assert_eq!(app.count("console_sessions").await, 1);
}
}

db_test! {
    async fn the_console_page_has_the_widget_and_a_strict_policy(db) {
    let app = console_app(db, &[]).await;
    let cookie = log_in(&app).await;
    let response = get(&app, "/console", &cookie).await;
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("script-src 'self' https://widgets.example.net;"),
        "{policy}"
    );
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("object-src 'none'"),
        "{policy}"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"<script src="https://widgets.example.net/space/bundle.js"></script>"#));
    assert!(page
        .contains(r#"<link rel="stylesheet" href="https://widgets.example.net/space/main.css">"#));
    assert!(page.contains("Erin Expert"));
    let config: Value = serde_json::from_str(
        page.split(r#"<script id="console-config" type="application/json">"#)
            .nth(1)
            .unwrap()
            .split("</script>")
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config["destinationId"], EXPERT_ROOM);
    assert_eq!(config["destinationType"], "spaceId");
    assert_eq!(config["accessToken"], user_token());
    assert_eq!(config["csrf"], csrf_of(&app).await);

    // Without a session: to the login.
    let anonymous = no_redirects()
        .get(format!("{}/console", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/console/login");
    let api = no_redirects()
        .get(format!("{}/console/api/queue", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
}
}

db_test! {
    async fn the_queue_lists_open_conversations(db) {
    let app = console_app(db, &[]).await;
    let cookie = log_in(&app).await;
    let empty: Value = get(&app, "/console/api/queue", &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["conversations"], json!([]), "no conversation yet");
    let answer: Value = app
        .post_signed(&fixture("connect-whatsapp-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    let queue: Value = get(&app, "/console/api/queue", &cookie)
        .await
        .json()
        .await
        .unwrap();
    let item = &queue["conversations"][0];
    assert_eq!(item["id"], answer["conversationId"]);
    assert_eq!(item["channel"], "WhatsApp");
    assert_eq!(item["customer"], "+1415•••0142");
    assert_eq!(item["customerName"], "Alice Example");
    assert_eq!(
        item["lastMessage"],
        "Hello, can I get a video call with an advisor?"
    );
    // With ICB_PUBLIC_URL, the host link is icbridge's own, leading to the meeting's.
    let host_url = item["hostUrl"].as_str().unwrap();
    assert!(host_url.starts_with(&format!("{PUBLIC_URL}/j/")), "{host_url}");
    assert_eq!(app.own_link_target(host_url).await, Ok(SHORT_HOST_URL.to_string()));
    assert_eq!(item["linkExpiresAt"], answer["expiresAt"]);
    assert_eq!(item["desk"], "default");
    assert_eq!(
        item["waitingSince"],
        icbridge::domain::clock::rfc3339(app.clock.now_ms())
    );
    assert_eq!(item["assignee"], Value::Null);
    assert_eq!(queue["tokenGeneration"], 1);
    // Not opened yet: the host's visit above is not the customer's. Then the customer opens it.
    assert_eq!(item["linkOpenedAt"], Value::Null);
    let guest_url = answer["guestUrl"].as_str().unwrap();
    assert_eq!(app.own_link_target(guest_url).await, Ok(SHORT_GUEST_URL.to_string()));
    let queue: Value = get(&app, "/console/api/queue", &cookie).await.json().await.unwrap();
    assert_eq!(
        queue["conversations"][0]["linkOpenedAt"],
        icbridge::domain::clock::rfc3339(app.clock.now_ms())
    );

    // A new link a minute later: the row shows the new meeting's links, its expiry, and
    // that its guest link is not opened yet (the first one's opening was another link's).
    app.clock.set(app.clock.now_ms() + 60_000);
    let id = answer["conversationId"].as_str().unwrap();
    let renewed = act(&app, &cookie, id, "new-link").await;
    assert_eq!(renewed.json::<Value>().await.unwrap(), json!({"status": "created"}));
    let queue: Value = get(&app, "/console/api/queue", &cookie).await.json().await.unwrap();
    let row = &queue["conversations"][0];
    let new_host_url = row["hostUrl"].as_str().unwrap();
    assert!(new_host_url.starts_with(&format!("{PUBLIC_URL}/j/")), "{new_host_url}");
    assert_ne!(new_host_url, host_url);
    assert_eq!(row["linkOpenedAt"], Value::Null);
    let expiries: Vec<i64> =
        sqlx::query_scalar("SELECT expires_at FROM meetings ORDER BY expires_at DESC")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(expiries.len(), 2);
    assert!(expiries[0] > expiries[1], "{expiries:?}");
    assert_eq!(row["linkExpiresAt"], icbridge::domain::clock::rfc3339(expiries[0]));

    // A follow-up becomes the conversation's last message.
    let follow_up = r#"{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"Are you there?","messageId":"f-1"}"#;
    assert_eq!(app.post_flow(follow_up).await.status(), 200);
    let queue: Value = get(&app, "/console/api/queue", &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue["conversations"][0]["lastMessage"], "Are you there?");

    // Opening a row reads its transcript.
    let id = answer["conversationId"].as_str().unwrap();
    let shown: Value = get(&app, &format!("/console/api/conversations/{id}"), &cookie)
        .await
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = shown["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Hello, can I get a video call with an advisor?", "Are you there?"]);
    assert_eq!(get(&app, "/console/api/conversations/nope", &cookie).await.status(), 404);
    assert_eq!(get(&app, &format!("/console/api/conversations/{id}"), "icb_console=forged").await.status(), 401);
}
}

db_test! {
    async fn actions_need_the_pages_csrf_token(db) {
    let app = console_app(db, &[]).await;
    let cookie = log_in(&app).await;
    let answer: Value = app
        .post_signed(&fixture("connect-sms-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    let id = answer["conversationId"].as_str().unwrap();
    let post = |action: &str, token: Option<String>| {
        let mut request = no_redirects()
            .post(format!(
                "{}/console/api/conversations/{id}/{action}",
                app.address
            ))
            .header("Cookie", &cookie);
        if let Some(token) = token {
            request = request.header("X-CSRF-Token", token);
        }
        request.send()
    };
    assert_eq!(post("close", None).await.unwrap().status(), 403);
    assert_eq!(
        post("close", Some("forged".into())).await.unwrap().status(),
        403
    );
    assert_eq!(app.stored().the_conversation().await.state, "open");

    let csrf = csrf_of(&app).await;
    // Take and release, as the signed-in expert.
    let taken = post("take", Some(csrf.clone())).await.unwrap();
    assert_eq!(taken.json::<Value>().await.unwrap(), json!({"status": "taken"}));
    let queue: Value = get(&app, "/console/api/queue", &cookie).await.json().await.unwrap();
    assert_eq!(queue["conversations"][0]["assignee"], "expert@example.com");
    assert_eq!(queue["conversations"][0]["takenByMe"], true);
    let again = post("take", Some(csrf.clone())).await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap(), json!({"status": "already_yours"}));
    let released = post("release", Some(csrf.clone())).await.unwrap();
    assert_eq!(released.json::<Value>().await.unwrap(), json!({"status": "released"}));
    let new_link = post("new-link", Some(csrf.clone())).await.unwrap();
    assert_eq!(
        new_link.json::<Value>().await.unwrap(),
        json!({"status": "created"})
    );
    assert_eq!(app.count("meetings").await, 2);
    let closed = post("close", Some(csrf.clone())).await.unwrap();
    assert_eq!(
        closed.json::<Value>().await.unwrap(),
        json!({"status": "closed"})
    );
    let closed_by = app.stored().the_conversation().await.closed_by;
    assert_eq!(closed_by.as_deref(), Some("expert@example.com"));
    let queue: Value = get(&app, "/console/api/queue", &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue["conversations"], json!([]));
}
}

db_test! {
    async fn tokens_about_to_expire_are_refreshed_keeping_the_refresh_token(db) {
    let app = console_app(db, &[]).await;
    let cookie = log_in(&app).await;
    Mock::given(method("POST"))
        .and(path("/v1/access_token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "refreshed-access-token", "expires_in": 1_209_599
        })))
        .expect(1)
        .mount(&app.webex)
        .await;
    // Aged on purpose: the session's access token expired two weeks later.
    sqlx::query("UPDATE console_sessions SET access_expires_at = access_expires_at - 1209000000")
        .execute(&app.db)
        .await
        .unwrap();
    let queue: Value = get(&app, "/console/api/queue", &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        queue["tokenGeneration"], 2,
        "the page re-initialises the widget"
    );
    let widget: Value = get(&app, "/console/api/widget", &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(widget["accessToken"], "refreshed-access-token");

    let refresh = app
        .webex
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/v1/access_token")
        .last()
        .unwrap();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&refresh.body)
        .into_owned()
        .collect();
    assert_eq!(
        form,
        HashMap::from([
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("client_id".to_string(), CLIENT_ID.to_string()),
            ("client_secret".to_string(), CLIENT_SECRET.to_string()),
            ("refresh_token".to_string(), refresh_token()),
        ])
    );
    let session = app.stored().the_console_session().await;
    let (access, refresh_kept) = (session.access_token, session.refresh_token);
    assert_eq!(access, "refreshed-access-token");
    assert_eq!(
        refresh_kept,
        refresh_token(),
        "no new refresh token came back: the old one is kept"
    );
}
}

db_test! {
    async fn invalid_grant_ends_the_session_and_sends_the_expert_to_login(db) {
    let app = console_app(db, &[]).await;
    let cookie = log_in(&app).await;
    Mock::given(method("POST"))
        .and(path("/v1/access_token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "The refresh token provided is expired, revoked, malformed, or invalid."
        })))
        .mount(&app.webex)
        .await;
    // Aged on purpose: the session's access token has expired.
    sqlx::query("UPDATE console_sessions SET access_expires_at = 0")
        .execute(&app.db)
        .await
        .unwrap();
    let page = get(&app, "/console", &cookie).await;
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/console/login");
    assert_eq!(app.count("console_sessions").await, 0);
    assert_eq!(get(&app, "/console/api/queue", &cookie).await.status(), 401);
}
}

db_test! {
    async fn logout_deletes_the_session(db) {
    let app = console_app(db, &[]).await;
    let cookie = log_in(&app).await;
    let forged = no_redirects()
        .post(format!("{}/console/logout", app.address))
        .header("Cookie", &cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(app.count("console_sessions").await, 1);
    let response = no_redirects()
        .post(format!("{}/console/logout", app.address))
        .header("Cookie", &cookie)
        .form(&[("csrf", csrf_of(&app).await)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(app.count("console_sessions").await, 0);
    assert_eq!(get(&app, "/console", &cookie).await.status(), 303);
}
}

db_test! {
    async fn without_oauth_settings_the_console_says_what_to_set(db) {
    let app = spawn_app(db).await;
    let response = no_redirects()
        .get(format!("{}/console/login", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_secure_html(&response, "console not configured");
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("ICB_OAUTH_CLIENT_ID"));

    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("OAUTH_CLIENT_ID", CLIENT_ID);
    let error = upstreams
        .build()
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        error.contains("ICB_PUBLIC_URL") && error.contains("ICB_OAUTH_CLIENT_SECRET"),
        "{error}"
    );
}
}

db_test! {
    async fn the_console_marks_a_customer_waiting_out_of_hours_and_take_makes_the_meeting(db) {
    // The only desk is open from 08:00 to 18:00 in Berlin; 21:00 there now.
    let clinic = icbridge::desks::DeskConfig {
        name: "clinic".into(),
        room_id: Some(EXPERT_ROOM.into()),
        default: true,
        timezone: Some("Europe/Berlin".into()),
        hours: vec!["mon-sun 08:00-18:00".into()],
        ..Default::default()
    };
    let app = console_app_with_desks(db, &[("EXPERT_ROOM_ID", "")], vec![clinic]).await;
    app.clock.set(icbridge::domain::clock::parse_rfc3339("2027-03-27T20:00:00Z").unwrap());
    let answer: Value = app.post_signed(&fixture("connect-sms-mo.json")).await.json().await.unwrap();
    assert_eq!(answer["open"], false);
    let id = answer["conversationId"].as_str().unwrap().to_string();
    let cookie = log_in(&app).await;
    let queue: Value = get(&app, "/console/api/queue", &cookie).await.json().await.unwrap();
    let row = &queue["conversations"][0];
    assert_eq!((row["outOfHours"].clone(), row["hostUrl"].clone(), row["desk"].clone()), (json!(true), Value::Null, json!("clinic")));

    let taken = act(&app, &cookie, &id, "take").await;
    assert_eq!(taken.json::<Value>().await.unwrap(), json!({"status": "taken"}));
    assert_eq!(app.broker_requests().await.len(), 1);
    let queue: Value = get(&app, "/console/api/queue", &cookie).await.json().await.unwrap();
    let row = &queue["conversations"][0];
    assert_eq!(row["outOfHours"], false);
    let host_url = row["hostUrl"].as_str().unwrap();
    assert_eq!(app.own_link_target(host_url).await, Ok(SHORT_HOST_URL.to_string()));
    assert_eq!(row["assignee"], "expert@example.com");
}
}
