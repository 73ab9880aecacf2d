//! `POST /webhooks/connect`: messages and receipts from Webex Connect.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use super::{json_error, read_body, BodyError, MAX_BODY_BYTES};
use crate::bridge::{Bridge, BridgeError};
use crate::domain::Channel;
use crate::inbound::{self, AuthError, ConnectAuth, Inbound, PayloadError};
use crate::metrics::Metrics;

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
            IntakeError::Bridge(BridgeError::Upstream(_) | BridgeError::MeetingUnavailable) => {
                "upstream_unavailable"
            }
            IntakeError::Bridge(BridgeError::Store(_)) => "error",
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
            IntakeError::Bridge(BridgeError::Upstream(_) | BridgeError::MeetingUnavailable) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IntakeError::Bridge(BridgeError::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
            IntakeError::Bridge(BridgeError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
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
            IntakeError::Bridge(BridgeError::Store(e)) => {
                tracing::error!(error = %e, "answering 500");
                json_error(status, "internal_error", "internal error")
            }
        }
    }
}

/// `HEAD /webhooks/connect`: Webex Connect checks the URL answers when a webhook is saved.
pub async fn head() -> HttpResponse {
    HttpResponse::Ok().finish()
}

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
                HttpResponse::Ok().json(json!({"status": "recorded"})),
            ))
        }
        Inbound::Ignored => Ok((
            "ignored",
            HttpResponse::Ok().json(json!({"status": "ignored"})),
        )),
    }
}
