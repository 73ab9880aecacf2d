//! HTTP endpoints, one module each; thin: they translate between HTTP and the bridge.

pub mod admin;
pub mod appointments;
pub mod connect_webhook;
pub mod console;
pub mod health;
pub mod html;
pub mod links;
pub mod media;
pub mod openapi;
pub mod request_log;
pub mod webex_webhook;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::store::StoreError;

/// Webhook bodies above this are refused before they are read to the end.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub enum BodyError {
    TooLarge,
    Unreadable(String),
}

/// Reads a raw body (signatures are checked over the exact bytes), refusing it as soon as
/// it passes [`MAX_BODY_BYTES`].
pub async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::BytesMut, BodyError> {
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(BodyError::TooLarge);
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error body every endpoint uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code, e.g. `invalid_message`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// `{"status": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    pub status: String,
}

impl StatusBody {
    pub fn new(status: &str) -> Self {
        Self {
            status: status.to_string(),
        }
    }
}

/// The JSON error body every endpoint uses: `{"error": "<machine code>", "message": "..."}`.
pub fn json_error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": code, "message": message.to_string() }))
}

/// How long a caller is asked to wait when the database is busy.
const BUSY_RETRY_AFTER_SECONDS: u64 = 1;

/// `503` with `Retry-After` for a database that did not answer in time: nothing was
/// acknowledged, and the same request can succeed a moment later.
pub fn busy_response(error: &StoreError) -> HttpResponse {
    tracing::warn!(%error, "answering 503: the database is busy");
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_busy",
        "the database is busy; nothing was changed, retry in a moment",
    );
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(BUSY_RETRY_AFTER_SECONDS),
    );
    response
}

pub async fn not_found() -> HttpResponse {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Gives actix's `405 Method Not Allowed` (which names the allowed methods in `Allow` but
/// has no body) the JSON error body every other error has, keeping its headers (`Allow`, and
/// those a scope adds to all its answers).
pub async fn json_method_not_allowed(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};

    let response = next.call(request).await?;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return Ok(response.map_into_left_body());
    }
    let headers = response.headers().clone();
    let (request, _) = response.into_parts();
    let mut answer = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        match headers.get(ALLOW).and_then(|methods| methods.to_str().ok()) {
            Some(methods) => format!("this endpoint answers {methods}"),
            None => "this endpoint does not answer this method".to_string(),
        },
    );
    for (name, value) in headers.iter() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(actix_web::dev::ServiceResponse::new(request, answer).map_into_right_body())
}
