//! `POST /webhooks/webex`: events from icbridge's Webex webhooks. Verified, recorded and
//! answered at once; the desk handles them in the background.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use tokio::sync::Notify;

use super::{json_error, read_body, BodyError, MAX_BODY_BYTES};
use crate::clock::now_ms;
use crate::desk::WebhookEvent;
use crate::inbound::{AuthError, WebexAuth};
use crate::store::{Store, StoreError};

/// Wakes the desk when an event is recorded.
#[derive(Clone)]
pub struct DeskWake(pub Arc<Notify>);

#[derive(Debug, thiserror::Error)]
pub enum WebexHookError {
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("could not read the body: {0}")]
    Body(String),
    #[error("not a Webex webhook event: {0}")]
    Malformed(String),
    #[error("{0}")]
    Stale(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ResponseError for WebexHookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebexHookError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebexHookError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebexHookError::Body(_) | WebexHookError::Malformed(_) | WebexHookError::Stale(_) => {
                StatusCode::BAD_REQUEST
            }
            WebexHookError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            WebexHookError::Unauthorized(e) => json_error(status, "unauthorized", e),
            WebexHookError::TooLarge => json_error(status, "payload_too_large", self),
            WebexHookError::Body(_) => json_error(status, "bad_request", self),
            WebexHookError::Malformed(_) => json_error(status, "malformed_event", self),
            WebexHookError::Stale(_) => {
                tracing::warn!(error = %self, "Webex event refused: outside the replay window");
                json_error(status, "stale_event", self)
            }
            WebexHookError::Store(e) => {
                tracing::error!(error = %e, "answering 500");
                json_error(status, "internal_error", "internal error")
            }
        }
    }
}

pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    auth: web::Data<WebexAuth>,
    store: web::Data<Store>,
    wake: web::Data<DeskWake>,
) -> Result<HttpResponse, WebexHookError> {
    let body = read_body(&request, payload).await.map_err(|e| match e {
        BodyError::TooLarge => WebexHookError::TooLarge,
        BodyError::Unreadable(reason) => WebexHookError::Body(reason),
    })?;
    auth.verify(request.headers(), &body)?;
    let event: WebhookEvent =
        serde_json::from_slice(&body).map_err(|e| WebexHookError::Malformed(e.to_string()))?;
    if !event.is_handled() {
        return Ok(HttpResponse::Ok().json(json!({"status": "ignored"})));
    }
    if let Some(problem) = event.age_problem(now_ms()) {
        return Err(WebexHookError::Stale(problem));
    }
    let payload = String::from_utf8_lossy(&body);
    let new = store
        .record_webex_event(&event.data.id, &event.resource, &payload, now_ms())
        .await?;
    if new {
        wake.0.notify_one();
    }
    let status = if new { "recorded" } else { "duplicate" };
    Ok(HttpResponse::Ok().json(json!({ "status": status })))
}
