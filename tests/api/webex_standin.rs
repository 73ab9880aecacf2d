//! A stand-in of Webex's messages and webhooks that behaves as Webex documents them, with
//! state: messages posted in a room are listed (`GET /v1/messages`, newest first; in a
//! group space a bot must ask with `mentionedPeople=me`, and gets only those that mention
//! it) and served (`GET /v1/messages/{id}`); the bot's webhooks were registered a month ago
//! and are listed (`GET /v1/webhooks`), re-activated (`PUT /v1/webhooks/{id}`) or created
//! (`POST /v1/webhooks`); an event is pushed only while its webhook is active, and a
//! disabled webhook stays disabled until someone re-activates it.
//! (Sources: `tests/fixtures/vendor/README.md`.)

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::desk::{BOT_ID, EXPERT_ID, WEBHOOK_AGE_MS};
use crate::helpers::*;

/// Where the stand-in's webhooks point, and their secret.
pub const TARGET_URL: &str = "https://bridge.example.com/webhooks/webex";

#[derive(Default)]
struct State {
    messages: Vec<Value>,
    webhooks: Vec<Value>,
    /// The `PUT /v1/webhooks/{id}` bodies received.
    updates: Vec<Value>,
}

#[derive(Clone)]
pub struct WebexStandIn {
    state: Arc<Mutex<State>>,
}

impl WebexStandIn {
    /// Mounts the stand-in on the app's Webex server, with the bot's two webhooks active,
    /// registered a month before the app's now, signed with `secret`.
    pub async fn mount(app: &TestApp, secret: &str) -> Self {
        let registered = icbridge::domain::clock::rfc3339(app.clock.now_ms() - WEBHOOK_AGE_MS);
        let webhooks = [
            ("hook-messages", "icbridge messages", "messages"),
            ("hook-actions", "icbridge card actions", "attachmentActions"),
        ]
        .into_iter()
        .map(|(id, name, resource)| {
            json!({"id": id, "name": name, "targetUrl": TARGET_URL, "resource": resource,
                   "event": "created", "secret": secret, "status": "active",
                   "created": registered, "ownedBy": "creator"})
        })
        .collect();
        let standin = Self {
            state: Arc::new(Mutex::new(State {
                webhooks,
                ..State::default()
            })),
        };
        let server = &app.webex;
        Mock::given(method("GET"))
            .and(path("/v1/messages"))
            .respond_with(standin.responder(list_messages))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex("^/v1/messages/[^/]+$"))
            .respond_with(standin.responder(get_message))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/webhooks"))
            .respond_with(standin.responder(|state, _| {
                ResponseTemplate::new(200).set_body_json(json!({"items": state.webhooks}))
            }))
            .mount(server)
            .await;
        Mock::given(method("PUT"))
            .and(path_regex("^/v1/webhooks/[^/]+$"))
            .respond_with(standin.responder(update_webhook))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/rooms"))
            .and(query_param("type", "direct"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
            .mount(server)
            .await;
        standin
    }

    fn responder(&self, answer: fn(&mut State, &Request) -> ResponseTemplate) -> Responder {
        Responder {
            state: self.state.clone(),
            answer,
        }
    }

    /// An expert writes `text` in the experts' space, mentioning the bot, as a reply in
    /// `thread` (when given), at `at_ms`. Returns the event Webex pushes for it (signed
    /// nowhere yet), or `None` while the messages webhook is disabled: then no event ever
    /// comes.
    pub fn expert_writes(
        &self,
        id: &str,
        text: &str,
        thread: Option<&str>,
        at_ms: i64,
    ) -> Option<String> {
        let created = icbridge::domain::clock::rfc3339(at_ms);
        let mut message = json!({
            "id": id, "roomId": EXPERT_ROOM, "roomType": "group",
            "text": format!("icbridge {text}"), "personId": EXPERT_ID,
            "personEmail": "expert@example.com", "mentionedPeople": [BOT_ID],
            "created": created,
        });
        if let Some(thread) = thread {
            message["parentId"] = json!(thread);
        }
        let mut state = self.state.lock().unwrap();
        state.messages.push(message);
        let hook = state
            .webhooks
            .iter()
            .find(|hook| hook["resource"] == "messages" && hook["status"] == "active")?;
        let mut event = fixture_json("vendor/webex-event-message-created.json");
        for field in ["id", "name", "targetUrl", "status", "created"] {
            event[field] = hook[field].clone();
        }
        event["actorId"] = json!(EXPERT_ID);
        event["data"] = json!({"id": id, "roomId": EXPERT_ROOM, "personId": EXPERT_ID,
                               "personEmail": "expert@example.com", "created": created});
        Some(event.to_string())
    }

    /// Webex disables a webhook (100 deliveries failed within five minutes).
    pub fn disable(&self, resource: &str) {
        let mut state = self.state.lock().unwrap();
        for hook in state.webhooks.iter_mut() {
            if hook["resource"] == resource {
                hook["status"] = json!("inactive");
            }
        }
    }

    /// Someone deleted the bot's webhook for `resource`.
    pub fn remove(&self, resource: &str) {
        let mut state = self.state.lock().unwrap();
        state.webhooks.retain(|hook| hook["resource"] != resource);
    }

    pub fn status_of(&self, resource: &str) -> String {
        let state = self.state.lock().unwrap();
        let hook = state.webhooks.iter().find(|h| h["resource"] == resource);
        hook.unwrap()["status"].as_str().unwrap().to_string()
    }

    /// The bodies of `PUT /v1/webhooks/{id}` received, in order.
    pub fn updates(&self) -> Vec<Value> {
        self.state.lock().unwrap().updates.clone()
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
    answer: fn(&mut State, &Request) -> ResponseTemplate,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        (self.answer)(&mut self.state.lock().unwrap(), request)
    }
}

fn query(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.to_string())
}

fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "message": "The requested resource could not be found.", "trackingId": "standin"
    }))
}

/// `GET /v1/messages?roomId=…`: newest first; a bot in a group space must ask for the
/// messages that mention it.
fn list_messages(state: &mut State, request: &Request) -> ResponseTemplate {
    let Some(room) = query(request, "roomId") else {
        return ResponseTemplate::new(400).set_body_json(json!({"message": "roomId is required"}));
    };
    let mentioned = query(request, "mentionedPeople");
    if room == EXPERT_ROOM && mentioned.as_deref() != Some("me") {
        return ResponseTemplate::new(403).set_body_json(json!({
            "message": "Bots must include mentionedPeople to list messages in group rooms."
        }));
    }
    let mut items: Vec<Value> = state
        .messages
        .iter()
        .filter(|m| m["roomId"] == room.as_str())
        .filter(|m| {
            mentioned.is_none()
                || m["mentionedPeople"]
                    .as_array()
                    .is_some_and(|people| people.contains(&json!(BOT_ID)))
        })
        .cloned()
        .collect();
    items.reverse();
    ResponseTemplate::new(200).set_body_json(json!({ "items": items }))
}

fn get_message(state: &mut State, request: &Request) -> ResponseTemplate {
    let id = request.url.path().rsplit('/').next().unwrap_or_default();
    match state.messages.iter().find(|m| m["id"] == id) {
        Some(message) => ResponseTemplate::new(200).set_body_json(message),
        None => not_found(),
    }
}

/// `PUT /v1/webhooks/{id}`: name and target are required; status may only become active.
fn update_webhook(state: &mut State, request: &Request) -> ResponseTemplate {
    let id = request.url.path().rsplit('/').next().unwrap_or_default();
    let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
    state.updates.push(body.clone());
    if !body["name"].is_string() || !body["targetUrl"].is_string() {
        return ResponseTemplate::new(400)
            .set_body_json(json!({"message": "name and targetUrl are required"}));
    }
    let Some(hook) = state.webhooks.iter_mut().find(|hook| hook["id"] == id) else {
        return not_found();
    };
    for field in ["name", "targetUrl", "secret"] {
        if body[field].is_string() {
            hook[field] = body[field].clone();
        }
    }
    if body["status"] == "active" {
        hook["status"] = json!("active");
    }
    ResponseTemplate::new(200).set_body_json(hook.clone())
}
