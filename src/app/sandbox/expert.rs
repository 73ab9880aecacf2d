//! What happens in Webex beyond icbridge's calls: an expert answers in a thread, Webex
//! disables a webhook; and running icbridge's webhook check at once.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;
use uuid::Uuid;

use super::{SandboxState, BOT_ID, EXPERT_EMAIL, EXPERT_ID, SAMPLE_PDF_NAME, SANDBOX_EXPERT_ROOM};
use crate::bridge::Bridge;
use crate::domain::clock::rfc3339;
use crate::experts::Desk;
use crate::routes::json_error;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExpertReply {
    /// The conversation whose thread the expert answers in.
    conversation_id: String,
    #[serde(default)]
    text: String,
    /// Attach the sandbox's sample PDF.
    #[serde(default)]
    file: bool,
}

#[derive(serde::Deserialize)]
pub(super) struct DisableWebhook {
    /// `messages` or `attachmentActions`.
    resource: String,
}

/// An expert answers in a conversation's thread, as if in Webex: the Webex stand-in keeps
/// the message, and the desk gets the webhook event Webex would send.
pub(super) async fn expert_reply(
    state: web::Data<SandboxState>,
    bridge: web::Data<Bridge>,
    desk: web::Data<Desk>,
    body: web::Json<ExpertReply>,
) -> HttpResponse {
    let conversation = match bridge.conversation(&body.conversation_id).await {
        Ok(Some(conversation)) => conversation,
        Ok(None) => {
            return json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no conversation with that id",
            )
        }
        Err(error) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "database_busy", error),
    };
    let Some(thread) = conversation.thread_message_id.clone() else {
        return json_error(
            StatusCode::CONFLICT,
            "no_thread",
            "the conversation's notification has not been delivered yet; try again in a moment",
        );
    };
    let id = format!("sandbox-expert-message-{}", Uuid::new_v4().simple());
    let files: Vec<String> = if body.file {
        vec![format!("{}/contents/{SAMPLE_PDF_NAME}", state.webex_api)]
    } else {
        Vec::new()
    };
    let now = rfc3339(bridge.clock().now_ms());
    state.expert_texts.lock().expect("not poisoned").insert(
        id.clone(),
        json!({
            "id": id, "roomId": SANDBOX_EXPERT_ROOM, "roomType": "group", "text": body.text,
            "parentId": thread, "files": files, "personId": EXPERT_ID,
            "personEmail": EXPERT_EMAIL, "created": now,
        }),
    );
    // Webex delivers the event only while the webhook is active (and never again).
    let Some(hook) = state
        .webhook(crate::experts::RESOURCE_MESSAGES)
        .filter(|hook| hook["status"] == "active")
    else {
        return HttpResponse::Accepted().json(json!({
            "status": "lost", "messageId": id,
            "why": "the messages webhook is not active: Webex delivers no event (icbridge finds the message when it catches up)",
        }));
    };
    // As Webex sends it: the top level is the webhook (its `created` is when it was
    // registered); the message's own time is `data.created`.
    let event = json!({
        "id": hook["id"], "name": hook["name"], "targetUrl": hook["targetUrl"],
        "resource": "messages", "event": "created", "orgId": "sandbox-org",
        "createdBy": BOT_ID, "appId": "sandbox-app", "ownedBy": "creator", "status": "active",
        "created": hook["created"], "actorId": EXPERT_ID,
        "data": {"id": id, "roomId": SANDBOX_EXPERT_ROOM, "roomType": "group",
                 "personId": EXPERT_ID, "personEmail": EXPERT_EMAIL, "parentId": thread, "created": now},
    });
    let payload = event.to_string();
    let parsed = match serde_json::from_str(&payload) {
        Ok(parsed) => parsed,
        Err(error) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", error),
    };
    match desk.receive(&parsed, &payload).await {
        Ok(_) => HttpResponse::Accepted().json(json!({"status": "recorded", "messageId": id})),
        Err(error) => {
            desk.catch_up_soon();
            json_error(StatusCode::SERVICE_UNAVAILABLE, "database_busy", error)
        }
    }
}

/// Runs icbridge's webhook check now (it runs every minute anyway): a disabled webhook is
/// re-activated, and what it missed is caught up.
pub(super) async fn check_webhooks(desk: web::Data<Desk>) -> HttpResponse {
    match desk.watch_webhooks().await {
        Ok(reports) => HttpResponse::Ok().json(json!({
            "webhooks": reports
                .iter()
                .map(|report| json!({"resource": report.resource, "state": report.state.to_string()}))
                .collect::<Vec<_>>(),
        })),
        Err(error) => json_error(StatusCode::BAD_GATEWAY, "upstream_unavailable", error),
    }
}

/// Disables a webhook, as Webex does after 100 failed deliveries within five minutes.
pub(super) async fn disable_webhook(
    state: web::Data<SandboxState>,
    body: web::Json<DisableWebhook>,
) -> HttpResponse {
    let mut hooks = state.webhooks.lock().expect("not poisoned");
    match hooks
        .iter_mut()
        .find(|hook| hook["resource"] == body.resource.as_str())
    {
        Some(hook) => {
            hook["status"] = json!("inactive");
            HttpResponse::Ok().json(hook.clone())
        }
        None => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no webhook of that resource",
        ),
    }
}
