//! Webex Connect's stand-in: its SMS API and its WhatsApp messaging API.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{refusal, SandboxState};
use crate::domain::clock::{rfc3339, Clock};

pub(super) async fn connect_sms(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let to = body["to"].as_str().unwrap_or_default().to_string();
    let text = body["content"].as_str().unwrap_or_default().to_string();
    let id = state.record("sms", to, text, body.0.clone());
    HttpResponse::Accepted().json(json!({
        "acceptedTime": rfc3339(Clock::system().now_ms()), "messageId": id, "correlationId": body["correlationId"],
    }))
}

pub(super) async fn connect_messaging(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let to = body["destination"][0]["waid"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let text = whatsapp_summary(&body);
    let id = state.record("whatsapp", to, text, body.0.clone());
    HttpResponse::Ok()
        .json(json!({"response": [{"code": "1001", "transid": id, "description": "Queued"}]}))
}

/// What a WhatsApp request says, in a line: its text, `[template <id>: <variables>]`,
/// `[document care-plan.pdf <link>] caption`, or a question with its buttons,
/// `How was it? [Good | OK | Poor]`.
fn whatsapp_summary(body: &Value) -> String {
    if let Some(template) = body["message"]["template"].as_str() {
        return format!("[template {template}: {}]", body["message"]["parameters"]);
    }
    let wa = &body["channels"]["OTT-Messaging"]["wa"];
    let kind = wa["type"].as_str().unwrap_or_default();
    match kind {
        "text" => wa["text"]["body"].as_str().unwrap_or_default().to_string(),
        "reply" => {
            let reply = &wa["reply"];
            let titles: Vec<&str> = reply["action"]["buttons"]
                .as_array()
                .map(|buttons| {
                    buttons
                        .iter()
                        .filter_map(|b| b["reply"]["title"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} [{}]",
                reply["body"]["text"].as_str().unwrap_or_default(),
                titles.join(" | ")
            )
        }
        _ => {
            let media = &wa[kind];
            let caption = media["caption"].as_str().unwrap_or_default();
            format!(
                "[{kind} {}] {caption}",
                media["url"].as_str().unwrap_or_default()
            )
            .trim_end()
            .to_string()
        }
    }
}
