//! The Webex API's stand-in: the bot, the experts' space, messages, webhooks, files, and
//! the OAuth login of the console.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    refusal, SandboxState, BOT_ID, EXPERT_EMAIL, EXPERT_ID, SAMPLE_PDF, SAMPLE_PDF_NAME,
    SANDBOX_EXPERT_ROOM, SANDBOX_EXPERT_TOKEN,
};
use crate::domain::clock::{rfc3339, Clock};
use crate::routes::json_error;

/// Webex's login page, approving at once: back to the console with a code and the state.
pub(super) async fn oauth_authorize(query: web::Query<HashMap<String, String>>) -> HttpResponse {
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

pub(super) async fn oauth_token() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "access_token": SANDBOX_EXPERT_TOKEN, "expires_in": 1_209_599,
        "refresh_token": "sandbox-refresh-token", "refresh_token_expires_in": 7_776_000,
        "token_type": "Bearer", "scope": "spark:all spark:kms"
    }))
}

pub(super) async fn webex_me(request: HttpRequest) -> HttpResponse {
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

pub(super) async fn webex_rooms(
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

pub(super) async fn webex_post_message(
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

/// `GET /messages?roomId=…`: the experts' messages of a room, newest first. In a group
/// space a bot must ask for those that mention it (`mentionedPeople=me`); the sandbox's
/// experts always mention the bot.
pub(super) async fn webex_list_messages(
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

pub(super) async fn webex_webhooks(
    request: HttpRequest,
    state: web::Data<SandboxState>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let items = state.webhooks.lock().expect("not poisoned").clone();
    HttpResponse::Ok().json(json!({ "items": items }))
}

pub(super) async fn webex_create_webhook(
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
pub(super) async fn webex_update_webhook(
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

pub(super) async fn webex_get_message(
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
pub(super) async fn webex_memberships(
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
pub(super) async fn webex_content(request: HttpRequest, path: web::Path<String>) -> HttpResponse {
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
