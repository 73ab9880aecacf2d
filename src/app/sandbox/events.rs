//! A receiver of icbridge's events, as a customer's CRM or EMR would run one: it verifies
//! each request's Standard Webhooks signature with the secrets of the subscriptions that
//! point at it, and lists what it got (and whether it verified) in `/sandbox/messages`
//! (its `events`, apart from the messages sent to customers and experts).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::SandboxState;

/// The secret of the subscription the sandbox adds when none is configured (shown in the
/// banner: a receiver of one's own can use it too).
pub const SANDBOX_EVENTS_SECRET: &str = "whsec_c2FuZGJveC1ldmVudHMtc2VjcmV0LWZvci10ZXN0cw==";

pub(super) async fn receive(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Bytes,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verified = state
        .event_secrets
        .iter()
        .any(|secret| secret.verifies(&id, &timestamp, &body, &signature));
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.events.lock().expect("not poisoned").push(json!({
        "webhookId": id, "webhookTimestamp": timestamp, "verified": verified, "body": event,
    }));
    if verified {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::Unauthorized().json(json!({"error": "the signature does not verify"}))
    }
}
