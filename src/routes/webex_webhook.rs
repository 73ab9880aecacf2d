//! `POST /webhooks/webex`: events from icbridge's Webex webhooks. Verified, recorded and
//! answered at once; the desk handles them in the background. Webex does not send an event
//! again, whatever the answer: `2xx` once it is recorded; when it cannot be, an error, and
//! the desk's catch-up finds the message later.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::{
    busy_response, json_error, read_body, BodyError, ErrorBody, StatusBody, MAX_BODY_BYTES,
};
use crate::bridge::BridgeError;
use crate::experts::{Desk, Received, WebhookEvent};
use crate::routes::inbound::{AuthError, WebexAuth};

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
    /// The database could not record it (the bridge's `Store` error).
    #[error(transparent)]
    Database(#[from] BridgeError),
}

impl ResponseError for WebexHookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebexHookError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebexHookError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebexHookError::Body(_) | WebexHookError::Malformed(_) | WebexHookError::Stale(_) => {
                StatusCode::BAD_REQUEST
            }
            WebexHookError::Database(e) if e.is_busy() => StatusCode::SERVICE_UNAVAILABLE,
            WebexHookError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            WebexHookError::Database(e) if e.is_busy() => busy_response(e),
            WebexHookError::Database(e) => {
                tracing::error!(error = %e, "answering 500");
                json_error(status, "internal_error", "internal error")
            }
        }
    }
}

/// An event of icbridge's Webex webhooks (`messages`, `attachmentActions`), signed with
/// `X-Spark-Signature` (hex HMAC-SHA1 of the body with `ICB_WEBEX_WEBHOOK_SECRET`).
#[utoipa::path(post, operation_id = "receive_webex_webhook", path = "/webhooks/webex", tag = "webhooks",
    security(("sparkSignature" = [])),
    request_body(content = serde_json::Value, description = "a Webex webhook event"),
    responses(
        (status = 200, body = StatusBody, description = "`recorded`, `duplicate` or `ignored`"),
        (status = 400, body = ErrorBody, description = "not an event, or one outside the replay window (`stale_event`)"),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "the database is busy (`Retry-After`)")))]
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    auth: web::Data<WebexAuth>,
    desk: web::Data<Desk>,
) -> Result<HttpResponse, WebexHookError> {
    let body = read_body(&request, payload).await.map_err(|e| match e {
        BodyError::TooLarge => WebexHookError::TooLarge,
        BodyError::Unreadable(reason) => WebexHookError::Body(reason),
    })?;
    auth.verify(request.headers(), &body)?;
    // From here the event is Webex's own. Webex documents no redelivery: one that cannot be
    // taken is looked for by the next catch-up (a message), or its presser is told (a card
    // press, which cannot be looked up later).
    let event: WebhookEvent = serde_json::from_slice(&body).map_err(|e| {
        desk.catch_up_soon();
        WebexHookError::Malformed(e.to_string())
    })?;
    let received = desk.receive(&event, &String::from_utf8_lossy(&body)).await;
    let received = received.inspect_err(|error| {
        tracing::warn!(%error, resource = %event.resource, "a Webex event could not be recorded; catching up soon");
        desk.catch_up_soon();
        desk.press_not_taken(&event);
    })?;
    let status = match received {
        Received::Recorded => "recorded",
        Received::Duplicate => "duplicate",
        Received::Ignored => "ignored",
        Received::Stale(problem) => return Err(WebexHookError::Stale(problem)),
    };
    Ok(HttpResponse::Ok().json(StatusBody::new(status)))
}
