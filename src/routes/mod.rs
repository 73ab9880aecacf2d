//! HTTP endpoints, one module each; thin: they translate between HTTP and the bridge.

pub mod connect_webhook;
pub mod health;

use actix_web::{http::StatusCode, HttpResponse};
use serde_json::json;

/// The JSON error body every endpoint uses: `{"error": "<machine code>", "message": "..."}`.
pub fn json_error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": code, "message": message.to_string() }))
}

pub async fn not_found() -> HttpResponse {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
