//! `serve --sandbox`: stand-ins of the Instant Connect broker, Webex and Webex Connect,
//! served by icbridge itself under `/sandbox/…`. The real HTTP clients call them over HTTP,
//! so the sandbox exercises the same code as production, with no credentials at all.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::clock::{rfc3339, Clock};
use crate::routes::json_error;

/// The bearer token the sandbox accepts on `/webhooks/connect` when none is configured.
pub const SANDBOX_WEBHOOK_TOKEN: &str = "sandbox-token";
/// The credentials icbridge's clients present to the stand-ins.
pub const SANDBOX_UPSTREAM_TOKEN: &str = "sandbox-upstream-token";
pub const SANDBOX_EXPERT_ROOM: &str = "sandbox-experts-room";
pub const SANDBOX_OAUTH_CLIENT: &str = "sandbox-oauth-client";
/// The access token the OAuth stand-in gives the expert who "logs in".
const SANDBOX_EXPERT_TOKEN: &str = "sandbox-expert-access-token";
const BOT_ID: &str = "sandbox-bot";

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
    sent: Mutex<Vec<SentMessage>>,
    /// Short code -> (role, meeting subject).
    links: Mutex<HashMap<String, (&'static str, String)>>,
}

impl SandboxState {
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
            .route("/messages", web::get().to(list_sent))
            .route("/ic/api/v2/joseencrypt", web::post().to(joseencrypt))
            .route("/visit/{code}", web::get().to(visit))
            .route("/webex/v1/people/me", web::get().to(webex_me))
            .route("/webex/v1/rooms", web::get().to(webex_rooms))
            .route("/webex/v1/messages", web::post().to(webex_post_message))
            .route("/webex/v1/authorize", web::get().to(oauth_authorize))
            .route("/webex/v1/access_token", web::post().to(oauth_token))
            .route("/connect/v1/sms/messages", web::post().to(connect_sms))
            .route(
                "/connect/resources/v1/messaging",
                web::post().to(connect_messaging),
            )
            // Long-mode links; only the two verticals, so no stand-in's path is taken.
            .route(
                "/{vertical:gen|hc}/v1/{page:login|talk}",
                web::get().to(long_link),
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
    let mut answer = json!({"host": [link("host")], "guest": [link("guest")]});
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
        None => HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body("<!doctype html><title>Unknown link</title><p>This sandbox link is unknown (links live as long as the sandbox process).</p>"),
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
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
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

async fn webex_rooms(request: HttpRequest) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
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
    let text = body["channels"]["OTT-Messaging"]["wa"]["text"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = state.record("whatsapp", to, text, body.0.clone());
    HttpResponse::Ok()
        .json(json!({"response": [{"code": "1001", "transid": id, "description": "Queued"}]}))
}
