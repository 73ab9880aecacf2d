//! `serve --sandbox`: stand-ins of the Instant Connect broker, Webex and Webex Connect,
//! served by icbridge itself under `/sandbox/…`. The real HTTP clients call them over HTTP,
//! so the sandbox exercises the same code as production, with no credentials at all.

//!
//! Only the `serve` command names the sandbox: it hands start-up a [`Sandbox`], a
//! [`Layer`] that points the settings at the stand-ins (`wiring`) and mounts them.
//! One file per stand-in: `broker`, `webex`, `connect`; `expert` plays the people
//! and events of Webex; `clock` moves the sandbox's time.

mod broker;
mod clock;
mod connect;
mod events;
mod expert;
mod webex;
mod wiring;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::layer::Layer;
use crate::app::settings::Settings;
use crate::domain::clock::{rfc3339, Clock};
use crate::routes::{self, json_error};

/// The bearer token the sandbox accepts on `/webhooks/connect` when none is configured.
pub const SANDBOX_WEBHOOK_TOKEN: &str = "sandbox-token";
/// The secret of the Webex stand-in's webhooks when `ICB_WEBEX_WEBHOOK_SECRET` is not set.
pub const SANDBOX_WEBEX_WEBHOOK_SECRET: &str = "sandbox-webex-webhook-secret";
/// The credentials icbridge's clients present to the stand-ins.
pub const SANDBOX_UPSTREAM_TOKEN: &str = "sandbox-upstream-token";
pub const SANDBOX_EXPERT_ROOM: &str = "sandbox-experts-room";
pub const SANDBOX_OAUTH_CLIENT: &str = "sandbox-oauth-client";
/// The access token the OAuth stand-in gives the expert who "logs in".
const SANDBOX_EXPERT_TOKEN: &str = "sandbox-expert-access-token";
const BOT_ID: &str = "sandbox-bot";
const EXPERT_ID: &str = "sandbox-expert";
const EXPERT_EMAIL: &str = "expert@sandbox.example";
/// The admin API's token in the sandbox unless `ICB_ADMIN_TOKEN` is set.
pub const SANDBOX_ADMIN_TOKEN: &str = "sandbox-admin-token";
/// The approved WhatsApp template the sandbox uses unless `ICB_WHATSAPP_TEMPLATE` is set.
pub const SANDBOX_TEMPLATE: &str = "sandbox_followup";
/// The file an expert attaches with `"file": true` (`POST /sandbox/expert-reply`).
const SAMPLE_PDF_NAME: &str = "care-plan.pdf";
const SAMPLE_PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n\
2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n\
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\n\
trailer<</Root 1 0 R>>\n%%EOF\n";

/// The sandbox as `serve --sandbox` adds it: the stand-ins, and the settings that use them.
#[derive(Default)]
pub struct Sandbox {
    /// Created by [`Layer::prepare`], once the stand-ins' addresses are known.
    state: Option<web::Data<SandboxState>>,
    /// What the sample curl and the admin API take, when the sandbox chose them.
    hints: wiring::Hints,
}

impl Layer for Sandbox {
    fn prepare(&mut self, settings: &mut Settings, address: SocketAddr) {
        self.hints = wiring::use_stand_ins(settings, address);
        self.state = Some(web::Data::new(wiring::state(settings)));
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        let state = self.state.clone().expect("the sandbox is prepared first");
        configure(cfg, state);
    }

    fn banner(&self, address: SocketAddr) -> Option<String> {
        Some(wiring::banner(&self.hints, address))
    }
}

/// Something icbridge sent to a stand-in, as listed by `GET /sandbox/messages`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMessage {
    /// `webex`, `sms` or `whatsapp`.
    pub via: &'static str,
    /// Room id, person email, phone number or WhatsApp id.
    pub to: String,
    pub text: String,
    pub id: String,
    pub sent_at: String,
    /// The request body as received.
    pub request: Value,
}

#[derive(Default)]
pub struct SandboxState {
    /// The Webex stand-in's address as icbridge's client calls it (files' links).
    webex_api: String,
    sent: Mutex<Vec<SentMessage>>,
    /// Short code -> (role, meeting subject).
    links: Mutex<HashMap<String, (&'static str, String)>>,
    /// Experts' messages made with `POST /sandbox/expert-reply`, by id, as Webex serves them.
    expert_texts: Mutex<HashMap<String, Value>>,
    /// The bot's webhooks, as `GET /webhooks` lists them: registered long before the
    /// sandbox started, as in production.
    webhooks: Mutex<Vec<Value>>,
    /// What `/sandbox/events` received, in order (listed apart from the messages sent).
    events: Mutex<Vec<Value>>,
    /// The secrets of the event subscriptions whose receiver is `/sandbox/events`.
    event_secrets: Vec<crate::domain::events::WebhookSecret>,
}

/// When the stand-in's webhooks were registered: a month before the sandbox started (a
/// Webex event's top-level `created` is its webhook's).
const WEBHOOKS_REGISTERED_DAYS_BEFORE: i64 = 30;

impl SandboxState {
    /// `webhook_target`: where the bot's webhooks point; `webhook_secret`: their secret.
    pub fn new(webex_api: &url::Url, webhook_target: &str, webhook_secret: &str) -> Self {
        let registered =
            rfc3339(Clock::system().now_ms() - WEBHOOKS_REGISTERED_DAYS_BEFORE * 24 * 3_600_000);
        let webhooks = crate::experts::webhooks::EXPECTED
            .iter()
            .map(|(name, resource)| {
                json!({
                    "id": format!("sandbox-webhook-{resource}"), "name": name,
                    "targetUrl": webhook_target, "resource": resource, "event": "created",
                    "secret": webhook_secret, "status": "active", "created": registered,
                    "ownedBy": "creator",
                })
            })
            .collect();
        Self {
            webex_api: webex_api.as_str().trim_end_matches('/').to_string(),
            webhooks: Mutex::new(webhooks),
            ..Self::default()
        }
    }

    /// The webhook of `resource`, if the bot has one.
    fn webhook(&self, resource: &str) -> Option<Value> {
        self.webhooks
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|hook| hook["resource"] == resource)
            .cloned()
    }

    fn record(&self, via: &'static str, to: String, text: String, request: Value) -> String {
        let id = Uuid::new_v4().to_string();
        self.sent.lock().expect("not poisoned").push(SentMessage {
            via,
            to,
            text,
            id: id.clone(),
            sent_at: rfc3339(Clock::system().now_ms()),
            request,
        });
        id
    }
}

/// Mounts the stand-ins. `state` is created once per process and shared by every HTTP
/// worker, so what one worker records, all list.
fn configure(cfg: &mut web::ServiceConfig, state: web::Data<SandboxState>) {
    cfg.app_data(state).service(
        web::scope("/sandbox")
            .route("/messages", routes::get().to(list_sent))
            .route("/events", web::post().to(events::receive))
            .route(
                "/ic/api/v2/joseencrypt",
                web::post().to(broker::joseencrypt),
            )
            .route("/visit/{code}", routes::get().to(broker::visit))
            .route("/webex/v1/people/me", routes::get().to(webex::webex_me))
            .route("/webex/v1/rooms", routes::get().to(webex::webex_rooms))
            .route(
                "/webex/v1/messages",
                web::post().to(webex::webex_post_message),
            )
            .route(
                "/webex/v1/messages",
                routes::get().to(webex::webex_list_messages),
            )
            .route(
                "/webex/v1/messages/{id}",
                routes::get().to(webex::webex_get_message),
            )
            .route(
                "/webex/v1/webhooks",
                routes::get().to(webex::webex_webhooks),
            )
            .route(
                "/webex/v1/webhooks",
                web::post().to(webex::webex_create_webhook),
            )
            .route(
                "/webex/v1/webhooks/{id}",
                web::put().to(webex::webex_update_webhook),
            )
            .route("/disable-webhook", web::post().to(expert::disable_webhook))
            .route("/check-webhooks", web::post().to(expert::check_webhooks))
            .route(
                "/webex/v1/memberships",
                routes::get().to(webex::webex_memberships),
            )
            .route(
                "/webex/v1/contents/{id}",
                routes::get().to(webex::webex_content),
            )
            .route("/expert-reply", web::post().to(expert::expert_reply))
            .route("/clock", web::post().to(clock::move_clock))
            .route(
                "/webex/v1/authorize",
                routes::get().to(webex::oauth_authorize),
            )
            .route("/webex/v1/access_token", web::post().to(webex::oauth_token))
            .route(
                "/connect-sms/v1/sms/messages",
                web::post().to(connect::connect_sms),
            )
            .route(
                "/connect/resources/v1/messaging",
                web::post().to(connect::connect_messaging),
            )
            // Long-mode links; only the two verticals, so no stand-in's path is taken.
            .route(
                "/{vertical:gen|hc}/v1/{page:login|talk}",
                routes::get().to(broker::long_link),
            ),
    );
}

async fn list_sent(state: web::Data<SandboxState>) -> HttpResponse {
    let sent = state.sent.lock().expect("not poisoned").clone();
    let events = state.events.lock().expect("not poisoned").clone();
    HttpResponse::Ok().json(json!({ "messages": sent, "events": events }))
}

/// Accepts what the real upstreams accept: a bearer token, or Webex Connect's `key` header.
/// `Some(401)` when the request has no credentials.
fn refusal(request: &HttpRequest) -> Option<HttpResponse> {
    let headers = request.headers();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if bearer || headers.contains_key("key") {
        None
    } else {
        Some(json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The request requires a valid access token.",
        ))
    }
}
