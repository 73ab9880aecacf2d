//! The admin API under `/api/`: `Authorization: Bearer ICB_ADMIN_TOKEN`; off when unset.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::json_error;
use crate::bridge::Bridge;
use crate::clock::{self, now_ms};
use crate::store::{ConversationInfo, OutboxRow, OutboxState, Store, StoreError};

/// The admin token, if the admin API is on.
#[derive(Clone)]
pub struct AdminToken(pub Option<SecretString>);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/conversations").route(web::get().to(list_conversations)))
        .service(web::resource("/api/conversations/{id}").route(web::get().to(show_conversation)))
        .service(
            web::resource("/api/conversations/{id}/close")
                .route(web::post().to(close_conversation)),
        )
        .service(web::resource("/api/outbox").route(web::get().to(list_outbox)))
        .service(web::resource("/api/outbox/{id}/retry").route(web::post().to(retry_outbox)));
}

/// The answer to a request that may not use the admin API; `None` when it may.
fn refusal(request: &HttpRequest, token: &AdminToken) -> Option<HttpResponse> {
    let Some(expected) = &token.0 else {
        return Some(json_error(
            StatusCode::NOT_FOUND,
            "admin_api_off",
            "the admin API is off: set ICB_ADMIN_TOKEN",
        ));
    };
    let given = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = given.is_some_and(|given| {
        let given = Sha256::digest(given.as_bytes());
        bool::from(given.ct_eq(&Sha256::digest(expected.expose_secret().as_bytes())))
    });
    if valid {
        None
    } else {
        Some(json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong Authorization: Bearer <ICB_ADMIN_TOKEN>",
        ))
    }
}

fn internal(error: StoreError) -> HttpResponse {
    tracing::error!(error = %error, "admin API: database error");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error",
    )
}

pub fn conversation_json(c: &ConversationInfo) -> Value {
    json!({
        "id": c.id,
        "channel": c.key.channel.as_str(),
        "customer": c.key.customer.masked(),
        "customerName": c.customer_name,
        "businessAddress": c.key.business.as_str(),
        "state": if c.open { "open" } else { "closed" },
        "createdAt": clock::rfc3339(c.created_at),
        "linkExpiresAt": c.links_expire_at.map(clock::rfc3339),
        "threadMessageId": c.thread_message_id,
    })
}

/// An outbox row without its payload (which holds message texts and numbers).
pub fn outbox_json(row: &OutboxRow) -> Value {
    json!({
        "id": row.id,
        "kind": row.kind,
        "conversationId": row.conversation_id,
        "state": row.state,
        "attempts": row.attempts,
        "nextAttemptAt": clock::rfc3339(row.next_attempt_at),
        "lastError": row.last_error,
        "upstreamId": row.upstream_id,
        "createdAt": clock::rfc3339(row.created_at),
    })
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

fn limit(query: &ListQuery) -> i64 {
    query.limit.unwrap_or(100).clamp(1, 1000)
}

async fn list_conversations(
    request: HttpRequest,
    token: web::Data<AdminToken>,
    query: web::Query<ListQuery>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request, &token) {
        return refused;
    }
    let state = match query.state.as_deref() {
        None | Some("all") => None,
        Some(state @ ("open" | "closed")) => Some(state),
        Some(other) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("state must be open, closed or all, not {other:?}"),
            )
        }
    };
    match bridge.store().conversations(state, limit(&query)).await {
        Ok(list) => {
            let items: Vec<Value> = list.iter().map(conversation_json).collect();
            HttpResponse::Ok().json(json!({ "conversations": items }))
        }
        Err(error) => internal(error),
    }
}

async fn show_conversation(
    request: HttpRequest,
    token: web::Data<AdminToken>,
    path: web::Path<String>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request, &token) {
        return refused;
    }
    match conversation_detail(bridge.store(), &path.into_inner()).await {
        Ok(Some(body)) => HttpResponse::Ok().json(body),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "not_found", "no such conversation"),
        Err(error) => internal(error),
    }
}

/// A conversation with its meetings and transcript, as the API and the CLI show it.
pub async fn conversation_detail(store: &Store, id: &str) -> Result<Option<Value>, StoreError> {
    let Some(conversation) = store.conversation(id).await? else {
        return Ok(None);
    };
    let meetings = store.meetings_of(id).await?;
    let transcript = store.transcript(id).await?;
    let mut body = conversation_json(&conversation);
    body["meetings"] = meetings
        .iter()
        .map(|m| {
            json!({"id": m.id, "hostUrl": m.host_url, "guestUrl": m.guest_url,
                   "expiresAt": clock::rfc3339(m.expires_at), "createdAt": clock::rfc3339(m.created_at)})
        })
        .collect();
    body["transcript"] = transcript
        .iter()
        .map(|t| json!({"author": t.author, "authorEmail": t.author_email, "text": t.text, "at": clock::rfc3339(t.at)}))
        .collect();
    Ok(Some(body))
}

async fn close_conversation(
    request: HttpRequest,
    token: web::Data<AdminToken>,
    path: web::Path<String>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request, &token) {
        return refused;
    }
    let id = path.into_inner();
    let conversation = match bridge.store().conversation(&id).await {
        Ok(Some(conversation)) => conversation,
        Ok(None) => return json_error(StatusCode::NOT_FOUND, "not_found", "no such conversation"),
        Err(error) => return internal(error),
    };
    match bridge.close(&conversation, "an administrator").await {
        Ok(true) => HttpResponse::Ok().json(json!({"status": "closed"})),
        Ok(false) => HttpResponse::Ok().json(json!({"status": "already_closed"})),
        Err(error) => internal(error),
    }
}

async fn list_outbox(
    request: HttpRequest,
    token: web::Data<AdminToken>,
    query: web::Query<ListQuery>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request, &token) {
        return refused;
    }
    let state = match query.state.as_deref() {
        None | Some("all") => None,
        Some(raw) => match OutboxState::parse(raw) {
            Some(state) => Some(state),
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("state must be pending, sent, dead or all, not {raw:?}"),
                )
            }
        },
    };
    match bridge.store().list_outbox(state, limit(&query)).await {
        Ok(rows) => {
            let items: Vec<Value> = rows.iter().map(outbox_json).collect();
            HttpResponse::Ok().json(json!({ "outbox": items }))
        }
        Err(error) => internal(error),
    }
}

async fn retry_outbox(
    request: HttpRequest,
    token: web::Data<AdminToken>,
    path: web::Path<i64>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request, &token) {
        return refused;
    }
    let id = path.into_inner();
    match bridge.store().revive_outbox(id, now_ms()).await {
        Ok(()) => {
            bridge.wake_outbox();
            HttpResponse::Ok().json(json!({"status": "pending", "id": id}))
        }
        Err(StoreError::NotFound { .. }) => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no pending or dead outbox row with this id",
        ),
        Err(error) => internal(error),
    }
}
