//! `POST /webhooks/connect`: messages and receipts from Webex Connect.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use super::{
    busy_response, json_error, read_body, BodyError, ErrorBody, StatusBody, MAX_BODY_BYTES,
};
use crate::bridge::{Bridge, BridgeError, MessageReply};
use crate::domain::metrics::Metrics;
use crate::domain::Channel;
use crate::routes::inbound::{self, AuthError, ConnectAuth, Inbound, PayloadError};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("could not read the body: {0}")]
    Body(String),
    #[error("{0}")]
    Payload(#[from] PayloadError),
    #[error("{0}")]
    Bridge(#[from] BridgeError),
}

impl IntakeError {
    /// The metrics label of a refused request.
    fn outcome(&self) -> &'static str {
        match self {
            IntakeError::Unauthorized(_) => "unauthorized",
            IntakeError::TooLarge => "too_large",
            IntakeError::Body(_) => "bad_request",
            IntakeError::Payload(e) if e.is_malformed() => "malformed",
            IntakeError::Payload(_) => "invalid",
            IntakeError::Bridge(BridgeError::RateLimited { .. }) => "rate_limited",
            IntakeError::Bridge(
                BridgeError::Upstream(_)
                | BridgeError::MeetingUnavailable
                | BridgeError::Paused { .. },
            ) => "upstream_unavailable",
            IntakeError::Bridge(BridgeError::Store(e)) if e.is_busy() => "database_busy",
            IntakeError::Bridge(
                BridgeError::Store(_)
                | BridgeError::UnknownConversation(_)
                | BridgeError::UnknownDelivery(_)
                | BridgeError::UnknownSubscription(_)
                | BridgeError::InvalidNumber(_),
            ) => "error",
        }
    }
}

impl ResponseError for IntakeError {
    fn status_code(&self) -> StatusCode {
        match self {
            IntakeError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IntakeError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::Body(_) => StatusCode::BAD_REQUEST,
            IntakeError::Payload(e) if e.is_malformed() => StatusCode::BAD_REQUEST,
            IntakeError::Payload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            IntakeError::Bridge(
                BridgeError::Upstream(_)
                | BridgeError::MeetingUnavailable
                | BridgeError::Paused { .. },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            IntakeError::Bridge(BridgeError::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
            IntakeError::Bridge(BridgeError::Store(e)) if e.is_busy() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IntakeError::Bridge(
                BridgeError::Store(_)
                | BridgeError::UnknownConversation(_)
                | BridgeError::UnknownDelivery(_)
                | BridgeError::UnknownSubscription(_)
                | BridgeError::InvalidNumber(_),
            ) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            IntakeError::Unauthorized(e) => json_error(status, "unauthorized", e),
            IntakeError::TooLarge => json_error(status, "payload_too_large", self),
            IntakeError::Body(_) => json_error(status, "bad_request", self),
            IntakeError::Payload(e) if e.is_malformed() => json_error(status, "malformed_json", e),
            IntakeError::Payload(e) => json_error(status, "invalid_message", e),
            IntakeError::Bridge(
                e @ (BridgeError::Upstream(_) | BridgeError::MeetingUnavailable),
            ) => {
                tracing::warn!(error = %e, "answering 503: no meeting could be created");
                json_error(
                    status,
                    "upstream_unavailable",
                    "the video service is not available right now; the message is kept, retry later",
                )
            }
            IntakeError::Bridge(e @ BridgeError::Paused { retry_after }) => {
                tracing::warn!(error = %e, "answering 503: the broker asked to wait");
                let mut response = json_error(
                    status,
                    "upstream_unavailable",
                    "the video service asked to wait; the message is kept, retry later",
                );
                response.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(retry_after.as_secs().max(1)),
                );
                response
            }
            IntakeError::Bridge(BridgeError::RateLimited { retry_after }) => {
                let seconds = retry_after.as_secs().max(1);
                HttpResponse::build(status)
                    .insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()))
                    .json(json!({
                        "error": "rate_limited",
                        "message": "this customer opened too many meetings in the last hour",
                        "retryAfter": seconds,
                    }))
            }
            IntakeError::Bridge(BridgeError::Store(e)) if e.is_busy() => busy_response(e),
            IntakeError::Bridge(
                e @ (BridgeError::Store(_)
                | BridgeError::UnknownConversation(_)
                | BridgeError::UnknownDelivery(_)
                | BridgeError::UnknownSubscription(_)
                | BridgeError::InvalidNumber(_)),
            ) => {
                tracing::error!(error = %e, "answering 500");
                json_error(status, "internal_error", "internal error")
            }
        }
    }
}

/// Webex Connect checks that the URL answers when a webhook is saved.
#[utoipa::path(head, operation_id = "check_connect_webhook", path = "/webhooks/connect", tag = "webhooks",
    responses((status = 200, description = "the URL works")))]
pub async fn head() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// A message or a delivery receipt from Webex Connect: a flow's HTTP Request body
/// (`Authorization: Bearer ICB_CONNECT_WEBHOOK_TOKEN`), or an Outbound Webhook event
/// (`X-Hub-Signature`: hex HMAC-SHA256 of the body with `ICB_CONNECT_WEBHOOK_SECRET`).
#[utoipa::path(post, operation_id = "receive_connect_webhook", path = "/webhooks/connect", tag = "webhooks",
    security(("webhookToken" = []), ("hubSignature" = [])),
    request_body(content = FlowMessage,
        description = "a flow's body as below, an Outbound Webhook SMS (`oa`) or WhatsApp (`waid`) event, or a delivery receipt (`deliveryInfoNotification`)"),
    responses(
        (status = 200, body = MessageReply, description = "a message's answer; receipts and other events: `{\"status\":\"recorded\"|\"ignored\"}`"),
        (status = 400, body = ErrorBody, description = "the body is not UTF-8 JSON"),
        (status = 401, body = ErrorBody, description = "missing or wrong token or signature"),
        (status = 413, body = ErrorBody, description = "body over 64 KiB"),
        (status = 422, body = ErrorBody, description = "valid JSON that is not a message icbridge understands; names the field"),
        (status = 429, body = ErrorBody, description = "the customer's hourly limit of new meetings (`Retry-After`)"),
        (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "no meeting could be made, or the database is busy; the message is kept (`Retry-After` when busy)")))]
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    auth: web::Data<ConnectAuth>,
    bridge: web::Data<Bridge>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, IntakeError> {
    let mut channel = "unknown";
    let result = handle(&request, payload, &auth, &bridge, &mut channel).await;
    let outcome = match &result {
        Ok((outcome, _)) => *outcome,
        Err(error) => error.outcome(),
    };
    metrics.intake(channel, outcome);
    result.map(|(_, response)| response)
}

/// Handles one request; says what became of it (for the metrics) and, once known, on
/// which channel.
async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    auth: &ConnectAuth,
    bridge: &Bridge,
    channel: &mut &'static str,
) -> Result<(&'static str, HttpResponse), IntakeError> {
    let body = read_body(request, payload).await.map_err(|e| match e {
        BodyError::TooLarge => IntakeError::TooLarge,
        BodyError::Unreadable(reason) => IntakeError::Body(reason),
    })?;
    auth.verify(request.headers(), &body)?;
    match inbound::parse(&body)? {
        Inbound::Message(message) => {
            *channel = message.key.channel.as_str();
            let reply = bridge.handle_message(&message).await?;
            Ok(("answered", HttpResponse::Ok().json(reply)))
        }
        Inbound::Receipt(receipt) => {
            *channel = match receipt.channel.as_deref().and_then(Channel::parse) {
                Some(known) => known.as_str(),
                None => "unknown",
            };
            bridge
                .handle_receipt(&receipt, &String::from_utf8_lossy(&body))
                .await?;
            Ok((
                "receipt",
                HttpResponse::Ok().json(StatusBody::new("recorded")),
            ))
        }
        Inbound::Ignored => Ok((
            "ignored",
            HttpResponse::Ok().json(StatusBody::new("ignored")),
        )),
    }
}

/// The body a flow's HTTP Request node posts (see the README for the flow variables).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the accepted body; parsing is in `inbound::payload`.
#[schema(example = json!({"channel": "whatsapp", "from": "14155550142", "to": "a_155054536910425280",
    "text": "Hello", "messageId": "wamid.1", "name": "Alice Example"}))]
pub struct FlowMessage {
    /// `sms` or `whatsapp`.
    #[schema(value_type = crate::domain::names::ChannelName)]
    channel: String,
    /// The customer: an E.164 number (SMS) or a WhatsApp id.
    #[schema(pattern = r"^\+?[1-9][0-9]{6,14}$")]
    from: String,
    /// The business number or WhatsApp app id the customer wrote to.
    to: Option<String>,
    /// The message; may be empty, at most 4096 characters.
    #[schema(max_length = 4096)]
    text: String,
    /// The sender's message id, for deduplication.
    #[schema(rename = "messageId")]
    message_id: Option<String>,
    /// The customer's name, if the flow knows it.
    name: Option<String>,
    /// Files sent with the message (WhatsApp), at most 10.
    #[schema(max_items = 10)]
    attachments: Option<Vec<FlowAttachment>>,
    /// A place the customer shared.
    location: Option<FlowLocation>,
}

/// A customer's file: an `https` link, its type (one WhatsApp carries), a caption.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FlowAttachment {
    url: String,
    #[schema(rename = "mimeType")]
    mime_type: String,
    caption: Option<String>,
}

/// A shared place; coordinates as numbers or text.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FlowLocation {
    latitude: f64,
    longitude: f64,
    name: Option<String>,
    address: Option<String>,
}
