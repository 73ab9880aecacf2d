//! HTTP endpoints, one module each; thin: they translate between HTTP and the bridge.

pub mod admin;
pub mod appointments;
pub mod connect_webhook;
pub mod console;
mod event_docs;
pub mod events;
pub mod health;
pub mod html;
pub mod inbound;
pub mod links;
pub mod media;
pub mod openapi;
pub mod params;
pub mod proxies;
pub mod request_log;
pub mod responses;
pub mod webex_webhook;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// A route for `GET` that answers `HEAD` too, with the same status and headers and no body
/// (the server leaves the body out): HTTP asks servers to take `HEAD` wherever they take
/// `GET`. Every `GET` route is mounted with it (`web::get` is refused by clippy.toml).
pub fn get() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

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
pub fn busy_response(error: &impl std::fmt::Display) -> HttpResponse {
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

/// How the framework's extractors refuse a request, registered once for the whole app:
/// with the JSON error body every endpoint uses. A query or path parameter that does not
/// parse, or a body that is JSON but not what the endpoint takes, is `422 invalid` (the
/// message names the parameter or field); a body that is not JSON at all is `400
/// invalid_json`; a body of another type `415`; one over [`MAX_BODY_BYTES`] `413`.
pub fn extractor_errors(cfg: &mut web::ServiceConfig) {
    use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError};

    let query = web::QueryConfig::default().error_handler(|error, _| {
        let message = match &error {
            QueryPayloadError::Deserialize(reason) => reason.to_string(),
            other => other.to_string(),
        };
        refused(error, StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    });
    let path = web::PathConfig::default().error_handler(|error, request| {
        let reason = match &error {
            PathError::Deserialize(reason) => reason.to_string(),
            other => other.to_string(),
        };
        let names: Vec<String> = request
            .match_info()
            .iter()
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        let message = format!("path parameter {}: {reason}", names.join(" or "));
        refused(error, StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    });
    let json = web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|error, _| {
            let (status, code, message) = match &error {
                JsonPayloadError::ContentType => not_of_type("JSON", "application/json"),
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => too_large(),
                JsonPayloadError::Deserialize(reason) if reason.is_data() => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    reason.to_string(),
                ),
                JsonPayloadError::Deserialize(reason) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("the body is not JSON: {reason}"),
                ),
                other => (StatusCode::BAD_REQUEST, "bad_request", other.to_string()),
            };
            refused(error, status, code, message)
        });
    let form = web::FormConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|error, _| {
            let (status, code, message) = match &error {
                UrlencodedError::ContentType => {
                    not_of_type("a form", "application/x-www-form-urlencoded")
                }
                UrlencodedError::Overflow { .. } => too_large(),
                UrlencodedError::Parse(reason) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    reason.to_string(),
                ),
                other => (StatusCode::BAD_REQUEST, "bad_request", other.to_string()),
            };
            refused(error, status, code, message)
        });
    cfg.app_data(query)
        .app_data(path)
        .app_data(json)
        .app_data(form);
}

/// A refusal: its status, its code and its message.
type Refusal = (StatusCode, &'static str, String);

fn not_of_type(what: &str, content_type: &str) -> Refusal {
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("the body must be {what} (Content-Type: {content_type})"),
    )
}

fn too_large() -> Refusal {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// An extractor's refusal as the JSON error body.
fn refused(
    error: impl std::fmt::Debug + std::fmt::Display + 'static,
    status: StatusCode,
    code: &str,
    message: impl std::fmt::Display,
) -> actix_web::Error {
    actix_web::error::InternalError::from_response(error, json_error(status, code, message)).into()
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
