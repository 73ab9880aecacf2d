//! `serve --sandbox`: stand-ins of the Instant Connect broker, Webex and Webex Connect,
//! served by icbridge itself under `/sandbox/…`. The real HTTP clients call them over HTTP,
//! so the sandbox exercises the same code as production, with no credentials at all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::bridge::Bridge;
use crate::domain::clock::{rfc3339, Clock};
use crate::experts::Desk;
use crate::routes::html::plain_page;
use crate::routes::{self, json_error};

/// The bearer token the sandbox accepts on `/webhooks/connect` when none is configured.
pub const SANDBOX_WEBHOOK_TOKEN: &str = "sandbox-token";
/// The secret of the Webex stand-in's webhooks when `ICB_WEBEX_WEBHOOK_SECRET` is not set.
pub const SANDBOX_WEBEX_WEBHOOK_SECRET: &str = "sandbox-webex-webhook-secret";
/// The credentials icbridge's clients present to the stand-ins.
pub const SANDBOX_UPSTREAM_TOKEN: &str = "sandbox-upstream-token";
pub const SANDBOX_EXPERT_ROOM: &str = "sandbox-experts-room";
pub const SANDBOX_OAUTH_CLIENT: &str = "sandbox-oauth-client";
/// The access token the OAuth stand-in gives the expert who "logs in".
const SANDBOX_EXPERT_TOKEN: &str = "sandbox-expert-access-token";
const BOT_ID: &str = "sandbox-bot";
const EXPERT_ID: &str = "sandbox-expert";
const EXPERT_EMAIL: &str = "expert@sandbox.example";
/// The admin API's token in the sandbox unless `ICB_ADMIN_TOKEN` is set.
pub const SANDBOX_ADMIN_TOKEN: &str = "sandbox-admin-token";
/// The approved WhatsApp template the sandbox uses unless `ICB_WHATSAPP_TEMPLATE` is set.
pub const SANDBOX_TEMPLATE: &str = "sandbox_followup";
/// The file an expert attaches with `"file": true` (`POST /sandbox/expert-reply`).
const SAMPLE_PDF_NAME: &str = "care-plan.pdf";
const SAMPLE_PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n\
2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n\
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\n\
trailer<</Root 1 0 R>>\n%%EOF\n";

/// Something icbridge sent to a stand-in, as listed by `GET /sandbox/messages`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMessage {
    /// `webex`, `sms` or `whatsapp`.
    pub via: &'static str,
    /// Room id, person email, phone number or WhatsApp id.
    pub to: String,
    pub text: String,
    pub id: String,
    pub sent_at: String,
    /// The request body as received.
    pub request: Value,
}

#[derive(Default)]
pub struct SandboxState {
    /// The Webex stand-in's address as icbridge's client calls it (files' links).
    webex_api: String,
    sent: Mutex<Vec<SentMessage>>,
    /// Short code -> (role, meeting subject).
    links: Mutex<HashMap<String, (&'static str, String)>>,
    /// Experts' messages made with `POST /sandbox/expert-reply`, by id, as Webex serves them.
    expert_texts: Mutex<HashMap<String, Value>>,
    /// The bot's webhooks, as `GET /webhooks` lists them: registered long before the
    /// sandbox started, as in production.
    webhooks: Mutex<Vec<Value>>,
}

/// When the stand-in's webhooks were registered: a month before the sandbox started (a
/// Webex event's top-level `created` is its webhook's).
const WEBHOOKS_REGISTERED_DAYS_BEFORE: i64 = 30;

impl SandboxState {
    /// `webhook_target`: where the bot's webhooks point; `webhook_secret`: their secret.
    pub fn new(webex_api: &url::Url, webhook_target: &str, webhook_secret: &str) -> Self {
        let registered =
            rfc3339(Clock::system().now_ms() - WEBHOOKS_REGISTERED_DAYS_BEFORE * 24 * 3_600_000);
        let webhooks = crate::experts::webhooks::EXPECTED
            .iter()
            .map(|(name, resource)| {
                json!({
                    "id": format!("sandbox-webhook-{resource}"), "name": name,
                    "targetUrl": webhook_target, "resource": resource, "event": "created",
                    "secret": webhook_secret, "status": "active", "created": registered,
                    "ownedBy": "creator",
                })
            })
            .collect();
        Self {
            webex_api: webex_api.as_str().trim_end_matches('/').to_string(),
            webhooks: Mutex::new(webhooks),
            ..Self::default()
        }
    }

    /// The webhook of `resource`, if the bot has one.
    fn webhook(&self, resource: &str) -> Option<Value> {
        self.webhooks
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|hook| hook["resource"] == resource)
            .cloned()
    }

    fn record(&self, via: &'static str, to: String, text: String, request: Value) -> String {
        let id = Uuid::new_v4().to_string();
        self.sent.lock().expect("not poisoned").push(SentMessage {
            via,
            to,
            text,
            id: id.clone(),
            sent_at: rfc3339(Clock::system().now_ms()),
            request,
        });
        id
    }
}

/// Mounts the stand-ins. `state` is created once per process and shared by every HTTP
/// worker, so what one worker records, all list.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<SandboxState>) {
    cfg.app_data(state).service(
        web::scope("/sandbox")
            .route("/messages", routes::get().to(list_sent))
            .route("/ic/api/v2/joseencrypt", web::post().to(joseencrypt))
            .route("/visit/{code}", routes::get().to(visit))
            .route("/webex/v1/people/me", routes::get().to(webex_me))
            .route("/webex/v1/rooms", routes::get().to(webex_rooms))
            .route("/webex/v1/messages", web::post().to(webex_post_message))
            .route("/webex/v1/messages", routes::get().to(webex_list_messages))
            .route(
                "/webex/v1/messages/{id}",
                routes::get().to(webex_get_message),
            )
            .route("/webex/v1/webhooks", routes::get().to(webex_webhooks))
            .route("/webex/v1/webhooks", web::post().to(webex_create_webhook))
            .route(
                "/webex/v1/webhooks/{id}",
                web::put().to(webex_update_webhook),
            )
            .route("/disable-webhook", web::post().to(disable_webhook))
            .route("/check-webhooks", web::post().to(check_webhooks))
            .route("/webex/v1/memberships", routes::get().to(webex_memberships))
            .route("/webex/v1/contents/{id}", routes::get().to(webex_content))
            .route("/expert-reply", web::post().to(expert_reply))
            .route("/clock", web::post().to(move_clock))
            .route("/webex/v1/authorize", routes::get().to(oauth_authorize))
            .route("/webex/v1/access_token", web::post().to(oauth_token))
            .route("/connect-sms/v1/sms/messages", web::post().to(connect_sms))
            .route(
                "/connect/resources/v1/messaging",
                web::post().to(connect_messaging),
            )
            // Long-mode links; only the two verticals, so no stand-in's path is taken.
            .route(
                "/{vertical:gen|hc}/v1/{page:login|talk}",
                routes::get().to(long_link),
            ),
    );
}

async fn list_sent(state: web::Data<SandboxState>) -> HttpResponse {
    let sent = state.sent.lock().expect("not poisoned").clone();
    HttpResponse::Ok().json(json!({ "messages": sent }))
}

/// Accepts what the real upstreams accept: a bearer token, or Webex Connect's `key` header.
/// `Some(401)` when the request has no credentials.
fn refusal(request: &HttpRequest) -> Option<HttpResponse> {
    let headers = request.headers();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if bearer || headers.contains_key("key") {
        None
    } else {
        Some(json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The request requires a valid access token.",
        ))
    }
}

/// The broker: hands out short codes that open a local page, or long links to the same.
async fn joseencrypt(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let Some(sub) = body["jwt"]["sub"].as_str().filter(|s| !s.is_empty()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "jwt.sub is required",
        );
    };
    let short_urls = body["provideShortUrls"].as_bool().unwrap_or(false);
    let mut links = state.links.lock().expect("not poisoned");
    let mut link = |role: &'static str| {
        let short: String = Uuid::new_v4().simple().to_string()[..7].to_string();
        links.insert(short.clone(), (role, sub.to_string()));
        let cipher = format!("sandbox.{role}.{short}");
        if short_urls {
            json!({"cipher": cipher, "short": short})
        } else {
            json!({"cipher": cipher})
        }
    };
    // As many links of each role as asked for (the broker's defaults: one each).
    let count = |field: &str| body[field].as_u64().unwrap_or(1).min(25);
    let hosts: Vec<Value> = (0..count("numHost")).map(|_| link("host")).collect();
    let guests: Vec<Value> = (0..count("numGuest")).map(|_| link("guest")).collect();
    let mut answer = json!({"host": hosts, "guest": guests});
    if short_urls {
        let base = format!("{}/sandbox/visit/", origin(&request));
        answer["baseUrl"] = json!(base);
    }
    HttpResponse::Ok().json(answer)
}

fn origin(request: &HttpRequest) -> String {
    let info = request.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

async fn visit(path: web::Path<String>, state: web::Data<SandboxState>) -> HttpResponse {
    let code = path.into_inner();
    let found = state
        .links
        .lock()
        .expect("not poisoned")
        .get(&code)
        .cloned();
    match found {
        Some((role, sub)) => meeting_page(role, &sub),
        None => plain_page(StatusCode::NOT_FOUND).body("<!doctype html><title>Unknown link</title><p>This sandbox link is unknown (links live as long as the sandbox process).</p>"),
    }
}

async fn long_link(
    path: web::Path<(String, String)>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let (_vertical, page) = path.into_inner();
    let role = if page == "login" { "host" } else { "guest" };
    let data = query.get("data").map(String::as_str).unwrap_or("");
    meeting_page(role, data)
}

fn meeting_page(role: &str, meeting: &str) -> HttpResponse {
    let meeting = html_escape(meeting);
    plain_page(StatusCode::OK).body(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>icbridge sandbox meeting</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>Sandbox meeting</h1><p>You opened the <strong>{role}</strong> link of meeting <code>{meeting}</code>.</p>\
         <p>In production this link opens Webex Instant Connect.</p></body></html>"
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Webex's login page, approving at once: back to the console with a code and the state.
async fn oauth_authorize(query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let (Some(redirect_uri), Some(state)) = (query.get("redirect_uri"), query.get("state")) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri and state are required",
        );
    };
    let mut target = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "redirect_uri is not a URL",
            )
        }
    };
    target
        .query_pairs_mut()
        .append_pair("code", "sandbox-code")
        .append_pair("state", state);
    HttpResponse::Found()
        .insert_header(("Location", target.to_string()))
        .finish()
}

async fn oauth_token() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "access_token": SANDBOX_EXPERT_TOKEN, "expires_in": 1_209_599,
        "refresh_token": "sandbox-refresh-token", "refresh_token_expires_in": 7_776_000,
        "token_type": "Bearer", "scope": "spark:all spark:kms"
    }))
}

async fn webex_me(request: HttpRequest) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let expert = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.ends_with(SANDBOX_EXPERT_TOKEN));
    if expert {
        return HttpResponse::Ok().json(json!({
            "id": "sandbox-expert", "emails": ["expert@sandbox.example"], "displayName": "Sandbox Expert", "type": "person"
        }));
    }
    HttpResponse::Ok().json(json!({
        "id": BOT_ID, "emails": ["icbridge-sandbox@webex.bot"], "displayName": "icbridge sandbox bot", "type": "bot"
    }))
}

async fn webex_rooms(
    request: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    // The sandbox's bot has no direct rooms.
    if query.get("type").map(String::as_str) == Some("direct") {
        return HttpResponse::Ok().json(json!({"items": []}));
    }
    HttpResponse::Ok().json(json!({"items": [{"id": SANDBOX_EXPERT_ROOM, "title": "Sandbox experts", "type": "group"}]}))
}

async fn webex_post_message(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let to = ["roomId", "toPersonEmail", "toPersonId"]
        .iter()
        .find_map(|key| body[*key].as_str())
        .unwrap_or_default()
        .to_string();
    let text = body["markdown"]
        .as_str()
        .or(body["text"].as_str())
        .unwrap_or_default()
        .to_string();
    let id = state.record("webex", to.clone(), text, body.0.clone());
    HttpResponse::Ok().json(json!({
        "id": id, "roomId": to, "personId": BOT_ID, "personEmail": "icbridge-sandbox@webex.bot",
        "created": rfc3339(Clock::system().now_ms()), "parentId": body["parentId"],
    }))
}

async fn connect_sms(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let to = body["to"].as_str().unwrap_or_default().to_string();
    let text = body["content"].as_str().unwrap_or_default().to_string();
    let id = state.record("sms", to, text, body.0.clone());
    HttpResponse::Accepted().json(json!({
        "acceptedTime": rfc3339(Clock::system().now_ms()), "messageId": id, "correlationId": body["correlationId"],
    }))
}

async fn connect_messaging(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let to = body["destination"][0]["waid"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let text = whatsapp_summary(&body);
    let id = state.record("whatsapp", to, text, body.0.clone());
    HttpResponse::Ok()
        .json(json!({"response": [{"code": "1001", "transid": id, "description": "Queued"}]}))
}

/// What a WhatsApp request says, in a line: its text, `[template <id>: <variables>]`,
/// `[document care-plan.pdf <link>] caption`, or a question with its buttons,
/// `How was it? [Good | OK | Poor]`.
fn whatsapp_summary(body: &Value) -> String {
    if let Some(template) = body["message"]["template"].as_str() {
        return format!("[template {template}: {}]", body["message"]["parameters"]);
    }
    let wa = &body["channels"]["OTT-Messaging"]["wa"];
    let kind = wa["type"].as_str().unwrap_or_default();
    match kind {
        "text" => wa["text"]["body"].as_str().unwrap_or_default().to_string(),
        "reply" => {
            let reply = &wa["reply"];
            let titles: Vec<&str> = reply["action"]["buttons"]
                .as_array()
                .map(|buttons| {
                    buttons
                        .iter()
                        .filter_map(|b| b["reply"]["title"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} [{}]",
                reply["body"]["text"].as_str().unwrap_or_default(),
                titles.join(" | ")
            )
        }
        _ => {
            let media = &wa[kind];
            let caption = media["caption"].as_str().unwrap_or_default();
            format!(
                "[{kind} {}] {caption}",
                media["url"].as_str().unwrap_or_default()
            )
            .trim_end()
            .to_string()
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpertReply {
    /// The conversation whose thread the expert answers in.
    conversation_id: String,
    #[serde(default)]
    text: String,
    /// Attach the sandbox's sample PDF.
    #[serde(default)]
    file: bool,
}

#[derive(serde::Deserialize)]
struct DisableWebhook {
    /// `messages` or `attachmentActions`.
    resource: String,
}

/// An expert answers in a conversation's thread, as if in Webex: the Webex stand-in keeps
/// the message, and the desk gets the webhook event Webex would send.
async fn expert_reply(
    state: web::Data<SandboxState>,
    bridge: web::Data<Bridge>,
    desk: web::Data<Desk>,
    body: web::Json<ExpertReply>,
) -> HttpResponse {
    let conversation = match bridge.conversation(&body.conversation_id).await {
        Ok(Some(conversation)) => conversation,
        Ok(None) => {
            return json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no conversation with that id",
            )
        }
        Err(error) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "database_busy", error),
    };
    let Some(thread) = conversation.thread_message_id.clone() else {
        return json_error(
            StatusCode::CONFLICT,
            "no_thread",
            "the conversation's notification has not been delivered yet; try again in a moment",
        );
    };
    let id = format!("sandbox-expert-message-{}", Uuid::new_v4().simple());
    let files: Vec<String> = if body.file {
        vec![format!("{}/contents/{SAMPLE_PDF_NAME}", state.webex_api)]
    } else {
        Vec::new()
    };
    let now = rfc3339(bridge.clock().now_ms());
    state.expert_texts.lock().expect("not poisoned").insert(
        id.clone(),
        json!({
            "id": id, "roomId": SANDBOX_EXPERT_ROOM, "roomType": "group", "text": body.text,
            "parentId": thread, "files": files, "personId": EXPERT_ID,
            "personEmail": EXPERT_EMAIL, "created": now,
        }),
    );
    // Webex delivers the event only while the webhook is active (and never again).
    let Some(hook) = state
        .webhook(crate::experts::RESOURCE_MESSAGES)
        .filter(|hook| hook["status"] == "active")
    else {
        return HttpResponse::Accepted().json(json!({
            "status": "lost", "messageId": id,
            "why": "the messages webhook is not active: Webex delivers no event (icbridge finds the message when it catches up)",
        }));
    };
    // As Webex sends it: the top level is the webhook (its `created` is when it was
    // registered); the message's own time is `data.created`.
    let event = json!({
        "id": hook["id"], "name": hook["name"], "targetUrl": hook["targetUrl"],
        "resource": "messages", "event": "created", "orgId": "sandbox-org",
        "createdBy": BOT_ID, "appId": "sandbox-app", "ownedBy": "creator", "status": "active",
        "created": hook["created"], "actorId": EXPERT_ID,
        "data": {"id": id, "roomId": SANDBOX_EXPERT_ROOM, "roomType": "group",
                 "personId": EXPERT_ID, "personEmail": EXPERT_EMAIL, "parentId": thread, "created": now},
    });
    let payload = event.to_string();
    let parsed = match serde_json::from_str(&payload) {
        Ok(parsed) => parsed,
        Err(error) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", error),
    };
    match desk.receive(&parsed, &payload).await {
        Ok(_) => HttpResponse::Accepted().json(json!({"status": "recorded", "messageId": id})),
        Err(error) => {
            desk.catch_up_soon();
            json_error(StatusCode::SERVICE_UNAVAILABLE, "database_busy", error)
        }
    }
}

/// `GET /messages?roomId=…`: the experts' messages of a room, newest first. In a group
/// space a bot must ask for those that mention it (`mentionedPeople=me`); the sandbox's
/// experts always mention the bot.
async fn webex_list_messages(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let Some(room) = query.get("roomId") else {
        return json_error(StatusCode::BAD_REQUEST, "bad_request", "roomId is required");
    };
    if room == SANDBOX_EXPERT_ROOM && query.get("mentionedPeople").map(String::as_str) != Some("me")
    {
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Bots must include mentionedPeople to list messages in group rooms.",
        );
    }
    let mut items: Vec<Value> = state
        .expert_texts
        .lock()
        .expect("not poisoned")
        .values()
        .filter(|message| message["roomId"] == room.as_str())
        .cloned()
        .collect();
    items.sort_by(|a, b| b["created"].as_str().cmp(&a["created"].as_str()));
    HttpResponse::Ok().json(json!({ "items": items }))
}

async fn webex_webhooks(request: HttpRequest, state: web::Data<SandboxState>) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let items = state.webhooks.lock().expect("not poisoned").clone();
    HttpResponse::Ok().json(json!({ "items": items }))
}

async fn webex_create_webhook(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let mut hook = body.0;
    hook["id"] = json!(format!("sandbox-webhook-{}", Uuid::new_v4().simple()));
    hook["status"] = json!("active");
    hook["created"] = json!(rfc3339(Clock::system().now_ms()));
    state
        .webhooks
        .lock()
        .expect("not poisoned")
        .push(hook.clone());
    HttpResponse::Ok().json(hook)
}

/// `PUT /webhooks/{id}`: name, target, secret and status can change (only to `active`).
async fn webex_update_webhook(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let mut hooks = state.webhooks.lock().expect("not poisoned");
    let Some(hook) = hooks.iter_mut().find(|hook| hook["id"] == path.as_str()) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource could not be found.",
        );
    };
    for field in ["name", "targetUrl", "secret"] {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            hook[field] = value.clone();
        }
    }
    if body["status"] == "active" {
        hook["status"] = json!("active");
    }
    HttpResponse::Ok().json(hook.clone())
}

/// Runs icbridge's webhook check now (it runs every minute anyway): a disabled webhook is
/// re-activated, and what it missed is caught up.
async fn check_webhooks(desk: web::Data<Desk>) -> HttpResponse {
    match desk.watch_webhooks().await {
        Ok(reports) => HttpResponse::Ok().json(json!({
            "webhooks": reports
                .iter()
                .map(|report| json!({"resource": report.resource, "state": report.state.to_string()}))
                .collect::<Vec<_>>(),
        })),
        Err(error) => json_error(StatusCode::BAD_GATEWAY, "upstream_unavailable", error),
    }
}

/// Disables a webhook, as Webex does after 100 failed deliveries within five minutes.
async fn disable_webhook(
    state: web::Data<SandboxState>,
    body: web::Json<DisableWebhook>,
) -> HttpResponse {
    let mut hooks = state.webhooks.lock().expect("not poisoned");
    match hooks
        .iter_mut()
        .find(|hook| hook["resource"] == body.resource.as_str())
    {
        Some(hook) => {
            hook["status"] = json!("inactive");
            HttpResponse::Ok().json(hook.clone())
        }
        None => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no webhook of that resource",
        ),
    }
}

async fn webex_get_message(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    match state
        .expert_texts
        .lock()
        .expect("not poisoned")
        .get(path.as_str())
    {
        Some(message) => HttpResponse::Ok().json(message),
        None => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource could not be found.",
        ),
    }
}

/// The sandbox's expert is a member of the experts' space; nobody else is.
async fn webex_memberships(
    request: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let member = query.get("personId").map(String::as_str) == Some(EXPERT_ID);
    let items = if member {
        vec![
            json!({"id": "sandbox-membership", "roomId": SANDBOX_EXPERT_ROOM,
                    "personId": EXPERT_ID, "personEmail": EXPERT_EMAIL}),
        ]
    } else {
        Vec::new()
    };
    HttpResponse::Ok().json(json!({ "items": items }))
}

/// The sample PDF, as Webex serves a message's file (only with a token).
async fn webex_content(request: HttpRequest, path: web::Path<String>) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    if path.as_str() != SAMPLE_PDF_NAME {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource could not be found.",
        );
    }
    HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{SAMPLE_PDF_NAME}\""),
        ))
        .body(SAMPLE_PDF)
}

#[derive(serde::Deserialize)]
struct MoveClock {
    /// `48h`, `2days`, ...
    advance: Option<String>,
    /// A desk's name: to the time it next opens.
    until_opening: Option<String>,
}

/// Moves the sandbox's clock ahead, to see what happens a day or two later (WhatsApp's
/// 24-hour window, expired links) or when a desk opens; the conversations that waited for
/// an opening desk are handed over at once.
async fn move_clock(bridge: web::Data<Bridge>, body: web::Json<MoveClock>) -> HttpResponse {
    let clock = bridge.clock();
    let now = clock.now_ms();
    let by = match (&body.advance, &body.until_opening) {
        (Some(advance), None) => match humantime::parse_duration(advance) {
            Ok(by) => by,
            Err(_) => {
                return json_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_duration",
                    "`advance` must be a duration such as `48h` or `2days`",
                )
            }
        },
        (None, Some(name)) => {
            let Some(desk) = bridge.desks().find(name) else {
                return json_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_desk",
                    "`until_opening` must name a configured desk",
                );
            };
            match desk.out_of_hours(now).and_then(|closed| closed.opens_at) {
                Some(opens_at) => Duration::from_millis((opens_at - now).max(0) as u64),
                None => Duration::ZERO,
            }
        }
        _ => {
            return json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "give `advance` (a duration such as `48h`) or `until_opening` (a desk's name)",
            )
        }
    };
    if !clock.is_movable() {
        return json_error(
            StatusCode::CONFLICT,
            "clock_fixed",
            "this clock cannot be moved",
        );
    }
    clock.advance(by);
    let handed_over = match bridge.release_waiting().await {
        Ok(count) => count,
        Err(error) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "store", error),
    };
    HttpResponse::Ok().json(json!({"now": rfc3339(clock.now_ms()), "handedOver": handed_over}))
}
