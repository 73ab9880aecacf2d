//! The experts' side in Webex: the webhook, relays both ways, commands and card buttons.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use icbridge::delivery::BATCH;

use crate::helpers::*;

pub const WEBEX_SECRET: &str = "webex-webhook-secret-for-tests";
pub const BOT_ID: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ib3Q";
pub const EXPERT_ID: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9leHBlcnQtMDAwMQ";
pub const EXPERT_DM_ROOM: &str = "direct-room-with-expert";

pub fn thread_id() -> String {
    fixture_json("webex-message-created-response.json")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn spark_signature(body: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(WEBEX_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub async fn desk_app(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    desk_app_with_desks(db, extra, Vec::new()).await
}

/// A desk app with `[[desk]]` entries beside the default desk.
pub async fn desk_app_with_desks(
    db: TestDb,
    extra: &[(&str, &str)],
    desks: Vec<icbridge::desks::DeskConfig>,
) -> TestApp {
    desk_app_subscribed(db, extra, desks, Vec::new()).await
}

/// A desk app whose events go to `subscriptions`.
pub async fn desk_app_subscribed(
    db: TestDb,
    extra: &[(&str, &str)],
    desks: Vec<icbridge::desks::DeskConfig>,
    subscriptions: Vec<Subscription>,
) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.desks = desks;
    upstreams.subscriptions = subscriptions;
    upstreams.set("WEBEX_WEBHOOK_SECRET", WEBEX_SECRET);
    for (key, value) in extra {
        upstreams.set(key, value);
    }
    for key in extra.iter().filter(|(_, v)| v.is_empty()).map(|(k, _)| *k) {
        upstreams.unset(key);
    }
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    Mock::given(method("GET"))
        .and(path("/v1/people/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": BOT_ID, "displayName": "icbridge", "emails": ["icbridge@webex.bot"]
        })))
        .mount(&app.webex)
        .await;
    // The expert is a member of the experts' space; nobody else is.
    Mock::given(method("GET"))
        .and(path("/v1/memberships"))
        .and(query_param("roomId", EXPERT_ROOM))
        .and(query_param("personId", EXPERT_ID))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [{
            "id": "membership-1", "roomId": EXPERT_ROOM, "personId": EXPERT_ID,
            "personEmail": "expert@example.com"
        }]})))
        .mount(&app.webex)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/memberships"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(&app.webex)
        .await;
    mount_whatsapp_queued(&app.connect).await;
    app
}

/// A WhatsApp conversation whose notification was delivered: its thread exists.
pub async fn open_conversation(app: &TestApp) -> Value {
    let answer: Value = app
        .post_signed(&fixture("connect-whatsapp-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    app.worker.run_once().await.unwrap();
    answer
}

pub async fn post_webex(app: &TestApp, body: &str, signature: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/webhooks/webex", app.address))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("X-Spark-Signature", signature);
    }
    request.send().await.unwrap()
}

/// When the tests' webhooks were registered: a month ago. A Webex event's top-level
/// `created` is its webhook's registration, never the event's own time.
pub const WEBHOOK_AGE_MS: i64 = 30 * 24 * 3_600_000;

/// The event as Webex sends it at `now_ms`: the message's or press's own time in
/// `data.created`, the webhook's registration (a month before) at the top level.
pub fn as_sent_at(body: &str, now_ms: i64) -> String {
    let mut event: Value = serde_json::from_str(body).unwrap();
    event["created"] = json!(icbridge::domain::clock::rfc3339(now_ms - WEBHOOK_AGE_MS));
    event["data"]["created"] = json!(icbridge::domain::clock::rfc3339(now_ms));
    event.to_string()
}

/// The event as Webex would send it now.
pub fn created_now(body: &str) -> String {
    as_sent_at(body, icbridge::domain::clock::Clock::system().now_ms())
}

/// Delivers an event as Webex does, signed, at the app's now (events whose `data.created`
/// is older than an hour are refused), on a webhook registered a month ago.
pub async fn deliver_event(app: &TestApp, body: &str) -> Value {
    let body = as_sent_at(body, app.clock.now_ms());
    let response = post_webex(app, &body, Some(&spark_signature(&body))).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// An expert's message as Webex would announce and serve it.
pub async fn expert_message(
    app: &TestApp,
    id: &str,
    text: &str,
    parent: Option<&str>,
    room: &str,
) -> String {
    let room_type = if room == EXPERT_DM_ROOM {
        "direct"
    } else {
        "group"
    };
    let mut message = json!({
        "id": id, "roomId": room, "roomType": room_type, "text": text,
        "personId": EXPERT_ID, "personEmail": "expert@example.com", "created": "2026-11-20T15:03:10.000Z"
    });
    if let Some(parent) = parent {
        message["parentId"] = json!(parent);
    }
    Mock::given(method("GET"))
        .and(path(format!("/v1/messages/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(&message))
        .mount(&app.webex)
        .await;
    let mut event = fixture_json("webex-webhook-message-created.json");
    event["data"]["id"] = json!(id);
    event["data"]["roomId"] = json!(room);
    match parent {
        Some(parent) => event["data"]["parentId"] = json!(parent),
        None => {
            event["data"].as_object_mut().unwrap().remove("parentId");
        }
    }
    event.to_string()
}

/// Bot messages posted after the first notification.
pub async fn bot_posts_after_notification(app: &TestApp) -> Vec<Value> {
    app.webex_posts().await.into_iter().skip(1).collect()
}

db_test! {
    async fn the_webex_webhook_checks_its_signature_before_anything_else(db) {
    let app = desk_app(db, &[]).await;
    let body = created_now(&fixture("webex-webhook-message-created.json"));
    assert_eq!(post_webex(&app, &body, None).await.status(), 401);
    assert_eq!(post_webex(&app, &body, Some("00ff")).await.status(), 401);
    let other_body = body.replace("expert@example.com", "evil@example.com");
    let response = post_webex(&app, &other_body, Some(&spark_signature(&body))).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "unauthorized"
    );
    assert_eq!(app.count("webex_events").await, 0);
    // Upper-case hex is a different string but the same signature.
    let response = post_webex(&app, &body, Some(&spark_signature(&body).to_uppercase())).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.count("webex_events").await, 1);
}
}

db_test! {
    async fn without_a_secret_the_webex_webhook_refuses_everything(db) {
    let app = spawn_app(db).await;
    let body = fixture("webex-webhook-message-created.json");
    let response = post_webex(&app, &body, Some(&spark_signature(&body))).await;
    assert_eq!(response.status(), 401);
    let message = response.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("ICB_WEBEX_WEBHOOK_SECRET"), "{message}");
}
}

db_test! {
    async fn an_experts_reply_in_the_thread_reaches_the_customer(db) {
    let app = desk_app(db, &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let answer = open_conversation(&app).await;
    let event = fixture("webex-webhook-message-created.json");
    let message = fixture_json("webex-message.json");
    Mock::given(method("GET"))
        .and(path(format!(
            "/v1/messages/{}",
            message["id"].as_str().unwrap()
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(&message))
        .expect(1)
        .mount(&app.webex)
        .await;

    assert_eq!(
        deliver_event(&app, &event).await,
        json!({"status": "recorded"})
    );
    // Webex repeats the delivery: handled once.
    assert_eq!(
        deliver_event(&app, &event).await,
        json!({"status": "duplicate"})
    );
    assert_eq!(app.desk.run_once().await.unwrap(), 1);
    assert_eq!(app.desk.run_once().await.unwrap(), 0);
    app.worker.run_once().await.unwrap();

    let sent = app.connect.received_requests().await.unwrap();
    let relay: Value = sent.last().unwrap().body_json().unwrap();
    let relay_row: i64 =
        app.stored().newest_reply_id().await;
    assert_eq!(
        relay,
        json!({
            "deliverychannel": "whatsapp",
            "appid": "a_155054536910425280",
            "destination": [{"waid": ["14155550142"]}],
            "channels": {"OTT-Messaging": {"wa": {
                "type": "text",
                "text": {"body": "Thanks Alice, I am joining the call now"},
                "preview_url": "true",
            }}},
            "correlationid": format!("icb-{relay_row}"),
            "callbackData": answer["conversationId"],
        })
    );
    // In the transcript, as the expert's.
    let messages = app.stored().messages().await;
    let expert = messages.iter().find(|m| m.author == "expert").expect("the expert's message");
    assert_eq!(
        (expert.author.as_str(), expert.author_email.as_deref()),
        ("expert", Some("expert@example.com"))
    );
    assert_eq!(expert.body, "Thanks Alice, I am joining the call now");
    assert_eq!(
        app.transcript(answer["conversationId"].as_str().unwrap()).await,
        [
            "Hello, can I get a video call with an advisor?",
            "Thanks Alice, I am joining the call now"
        ]
    );
    // The bot says nothing in the thread.
    assert!(bot_posts_after_notification(&app).await.is_empty());
}
}

db_test! {
    async fn later_customer_messages_appear_in_the_thread(db) {
    let app = desk_app(db, &[]).await;
    open_conversation(&app).await;
    let follow_up = r#"{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"I'm in the *waiting* room","messageId":"f-1"}"#;
    assert_eq!(app.post_flow(follow_up).await.status(), 200);
    app.worker.run_once().await.unwrap();
    assert_eq!(
        bot_posts_after_notification(&app).await,
        vec![json!({
            "roomId": EXPERT_ROOM,
            "parentId": thread_id(),
            "markdown": "**Customer:**\n\n> I'm in the \\*waiting\\* room",
        })]
    );
}
}

db_test! {
    async fn a_message_sent_with_its_notification_goes_into_the_thread(db) {
    let app = desk_app(db, &[]).await;
    // Both are queued before the worker runs: the relay is claimed before its thread
    // exists, and is sent after the notification that opens it.
    app.post_signed(&fixture("connect-whatsapp-mo.json")).await;
    let follow_up = r#"{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"hello?","messageId":"f-1"}"#;
    assert_eq!(app.post_flow(follow_up).await.status(), 200);
    assert_eq!(app.worker.run_once().await.unwrap(), 2);
    assert_eq!(
        bot_posts_after_notification(&app).await,
        vec![json!({
            "roomId": EXPERT_ROOM,
            "parentId": thread_id(),
            "markdown": "**Customer:**\n\n> hello?",
        })]
    );
}
}

db_test! {
    async fn a_customer_message_waits_for_its_thread(db) {
    let app = desk_app(db, &[("RETRY_SCHEDULE", "1ms,1ms")]).await;
    app.webex.reset().await;
    // Webex is down when the notification is first tried.
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&app.webex)
        .await;
    mount_webex_messages(&app.webex).await;
    app.post_signed(&fixture("connect-whatsapp-mo.json")).await;
    app.worker.run_once().await.unwrap();
    let follow_up = r#"{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"hello?","messageId":"f-1"}"#;
    app.post_flow(follow_up).await;
    for _ in 0..5 {
        app.clock.advance(std::time::Duration::from_millis(3));
        app.worker.run_once().await.unwrap();
    }
    let posts = app.webex_posts().await;
    let relay = posts
        .iter()
        .find(|p| p["markdown"].as_str().unwrap().starts_with("**Customer:**"))
        .unwrap();
    assert_eq!(relay["parentId"], thread_id());
}
}

db_test! {
    async fn the_bots_own_messages_are_ignored(db) {
    let app = desk_app(db, &[]).await;
    open_conversation(&app).await;
    let mut event = fixture_json("webex-webhook-message-created.json");
    event["data"]["personId"] = json!(BOT_ID);
    event["actorId"] = json!(BOT_ID);
    deliver_event(&app, &event.to_string()).await;
    assert_eq!(app.desk.run_once().await.unwrap(), 1);
    let fetched = app
        .webex
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path().starts_with("/v1/messages/"));
    assert!(!fetched, "the bot's own message is not even fetched");
    assert_eq!(app.count("outbox").await, 1, "only the first notification");
}
}

db_test! {
    async fn without_the_connect_api_the_bot_says_relaying_is_not_configured(db) {
    let app = desk_app(db, &[("CONNECT_API_URL", ""), ("CONNECT_SERVICE_KEY", "")]).await;
    open_conversation(&app).await;
    let event = expert_message(
        &app,
        "m-1",
        "icbridge Hello Alice",
        Some(&thread_id()),
        EXPERT_ROOM,
    )
    .await;
    deliver_event(&app, &event).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
    let posts = bot_posts_after_notification(&app).await;
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["roomId"], EXPERT_ROOM);
    assert_eq!(posts[0]["parentId"], thread_id());
    assert!(posts[0]["markdown"]
        .as_str()
        .unwrap()
        .starts_with("Relaying to the customer is not configured"));
    assert_eq!(app.stored().messages().await.iter().filter(|m| m.author == "expert").count(), 0);
}
}

db_test! {
    async fn help_and_unknown_input_are_answered_where_they_were_asked(db) {
    let app = desk_app(db, &[]).await;
    for (id, text) in [("m-help", "help"), ("m-what", "what can you do")] {
        let event = expert_message(&app, id, text, None, EXPERT_DM_ROOM).await;
        deliver_event(&app, &event).await;
    }
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
    let posts = app.webex_posts().await;
    assert_eq!(posts.len(), 2);
    for post in &posts {
        assert_eq!(post["roomId"], EXPERT_DM_ROOM);
        assert!(post.get("parentId").is_none());
    }
    // Answers outside a conversation are independent deliveries, sent side by side: in
    // either order.
    let answers: Vec<&str> = posts.iter().map(|p| p["markdown"].as_str().unwrap()).collect();
    for start in ["I connect customers", "I did not understand that."] {
        assert!(
            answers.iter().any(|answer| answer.starts_with(start)),
            "{start}: {answers:?}"
        );
    }
}
}

db_test! {
    async fn list_shows_open_conversations_masked(db) {
    let app = desk_app(db, &[]).await;
    open_conversation(&app).await;
    let event = expert_message(&app, "m-list", "icbridge list", None, EXPERT_ROOM).await;
    deliver_event(&app, &event).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
    let posts = bot_posts_after_notification(&app).await;
    let text = posts[0]["markdown"].as_str().unwrap();
    assert!(text.starts_with("**Open conversations (1)**"), "{text}");
    assert!(
        text.contains(
            "- WhatsApp · +1415•••0142 (Alice Example) · opened just now · links valid until"
        ),
        "{text}"
    );
    assert!(!text.contains("14155550142"));
}
}

db_test! {
    async fn close_in_the_thread_closes_and_the_next_message_opens_a_new_conversation(db) {
    let app = desk_app(db, &[]).await;
    let first = open_conversation(&app).await;
    let event = expert_message(
        &app,
        "m-close",
        "icbridge close",
        Some(&thread_id()),
        EXPERT_ROOM,
    )
    .await;
    deliver_event(&app, &event).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
    let closed = app.stored().conversation(first["conversationId"].as_str().unwrap()).await;
    assert_eq!(
        (closed.state.as_str(), closed.closed_by.as_deref()),
        ("closed", Some("expert@example.com"))
    );
    let posts = bot_posts_after_notification(&app).await;
    assert_eq!(posts[0]["parentId"], thread_id());
    assert_eq!(
        posts[0]["markdown"],
        "Conversation closed by expert@example.com. The customer's next message opens a new one."
    );

    let next = r#"{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"me again","messageId":"f-2"}"#;
    let second: Value = app.post_flow(next).await.json().await.unwrap();
    assert_ne!(second["conversationId"], first["conversationId"]);
    assert_eq!(second["created"], true);
    assert_eq!(app.broker_requests().await.len(), 2);

    // Closing again, or relaying to a closed conversation, says so.
    let event = expert_message(
        &app,
        "m-late",
        "icbridge are you still there?",
        Some(&thread_id()),
        EXPERT_ROOM,
    )
    .await;
    deliver_event(&app, &event).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
    // Sent concurrently with the new conversation's notification: look for it.
    let refusal = app.webex_posts().await.into_iter().find(|p| {
        p["markdown"]
            .as_str()
            .unwrap()
            .starts_with("This conversation is closed")
    });
    assert_eq!(
        refusal.expect("the bot says it is closed")["parentId"],
        thread_id()
    );
}
}

db_test! {
    async fn new_link_in_the_thread_makes_a_meeting_and_tells_both_sides(db) {
    let app = desk_app(db, &[("REPLY_MODE", "connect")]).await;
    let first = open_conversation(&app).await;
    // A minute later, the expert asks for a new link.
    app.clock.advance(std::time::Duration::from_secs(60));
    app.broker.reset().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "host": [{"cipher": "h", "short": "NewHost"}], "guest": [{"cipher": "g", "short": "NewGst1"}],
            "baseUrl": "https://instant.webex.com/visit/"
        })))
        .expect(1)
        .mount(&app.broker)
        .await;
    let event = expert_message(
        &app,
        "m-new",
        "icbridge new link",
        Some(&thread_id()),
        EXPERT_ROOM,
    )
    .await;
    deliver_event(&app, &event).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();

    let meetings = app.stored().meetings().await;
    assert_eq!(meetings.len(), 2);
    let newest = meetings.iter().max_by_key(|m| m.expires_at).unwrap();
    let (newest_guest, newest_host) = (newest.guest_url.clone(), newest.host_url.clone());
    assert_eq!(newest_guest, "https://instant.webex.com/visit/NewGst1");
    assert_eq!(newest_host, "https://instant.webex.com/visit/NewHost");
    let posts = bot_posts_after_notification(&app).await;
    assert_eq!(posts[0]["parentId"], thread_id());
    let text = posts[0]["markdown"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("New meeting: **[Join as host]({newest_host})**")),
        "{text}"
    );
    assert!(text.contains("The customer was sent the new guest link."));
    let to_customer: Value = app
        .connect
        .received_requests()
        .await
        .unwrap()
        .last()
        .unwrap()
        .body_json()
        .unwrap();
    assert_eq!(
        to_customer["channels"]["OTT-Messaging"]["wa"]["text"]["body"],
        format!("Join your video consultation: {newest_guest}")
    );
    // The customer's next message gets the new link.
    let next = r#"{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"ok","messageId":"f-3"}"#;
    let answer: Value = app.post_flow(next).await.json().await.unwrap();
    assert_eq!(answer["guestUrl"], newest_guest);
    assert_eq!(answer["conversationId"], first["conversationId"]);
}
}

db_test! {
    async fn close_and_new_link_outside_a_thread_explain_where_they_work(db) {
    let app = desk_app(db, &[]).await;
    let event = expert_message(&app, "m-x", "close", None, EXPERT_DM_ROOM).await;
    deliver_event(&app, &event).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
    let posts = app.webex_posts().await;
    assert!(posts[0]["markdown"]
        .as_str()
        .unwrap()
        .contains("work in a conversation's thread"));
}
}

pub async fn press(app: &TestApp, action_id: &str, action: &str) {
    press_in(app, action_id, action, EXPERT_ROOM).await
}

/// A press of a button of the conversation's card, as seen in `room`.
pub async fn press_in(app: &TestApp, action_id: &str, action: &str, room: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/v1/attachment/actions/{action_id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": action_id, "type": "submit", "messageId": thread_id(), "roomId": room,
            "personId": EXPERT_ID, "inputs": {"action": action}, "created": "2026-11-20T15:05:00.000Z"
        })))
        .mount(&app.webex)
        .await;
    let event = json!({
        "id": "hook-2", "name": "icbridge card actions", "resource": "attachmentActions", "event": "created",
        "actorId": EXPERT_ID,
        "data": {"id": action_id, "type": "submit", "messageId": thread_id(), "personId": EXPERT_ID, "roomId": room}
    });
    deliver_event(app, &event.to_string()).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
}

db_test! {
    async fn the_cards_close_button_closes_the_conversation(db) {
    let app = desk_app(db, &[]).await;
    open_conversation(&app).await;
    press(&app, "action-close", "close").await;
    assert_eq!(app.stored().the_conversation().await.state, "closed");
    let posts = bot_posts_after_notification(&app).await;
    assert_eq!(posts[0]["parentId"], thread_id());
    assert!(posts[0]["markdown"]
        .as_str()
        .unwrap()
        .starts_with(&format!("Conversation closed by {EXPERT_ID}")));
}
}

db_test! {
    async fn the_cards_new_link_button_makes_a_new_meeting(db) {
    let app = desk_app(db, &[]).await;
    open_conversation(&app).await;
    press(&app, "action-new", "new_link").await;
    assert_eq!(app.count("meetings").await, 2);
    assert_eq!(app.broker_requests().await.len(), 2);
    let posts = bot_posts_after_notification(&app).await;
    assert!(posts[0]["markdown"]
        .as_str()
        .unwrap()
        .starts_with("New meeting:"));
}
}

#[tokio::test]
async fn webex_register_creates_the_webhooks_once() {
    use std::sync::{Arc, Mutex};
    use wiremock::{Request, Respond};

    /// A tiny stateful stand-in of `/v1/webhooks`.
    #[derive(Clone, Default)]
    struct Hooks(Arc<Mutex<Vec<Value>>>);
    impl Respond for Hooks {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let mut hooks = self.0.lock().unwrap();
            match request.method.as_str() {
                "GET" => ResponseTemplate::new(200).set_body_json(json!({"items": *hooks})),
                "POST" => {
                    let mut hook: Value = request.body_json().unwrap();
                    hook["id"] = json!(format!("hook-{}", hooks.len() + 1));
                    hook["status"] = json!("active");
                    hooks.push(hook.clone());
                    ResponseTemplate::new(200).set_body_json(hook)
                }
                _ => {
                    let id = request.url.path().rsplit('/').next().unwrap().to_string();
                    let update: Value = request.body_json().unwrap();
                    let hook = hooks.iter_mut().find(|h| h["id"] == id).unwrap();
                    hook["targetUrl"] = update["targetUrl"].clone();
                    ResponseTemplate::new(200).set_body_json(hook.clone())
                }
            }
        }
    }

    let webex = wiremock::MockServer::start().await;
    let hooks = Hooks::default();
    Mock::given(path("/v1/webhooks"))
        .respond_with(hooks.clone())
        .mount(&webex)
        .await;
    Mock::given(method("PUT"))
        .respond_with(hooks.clone())
        .mount(&webex)
        .await;
    let vars = |url: &str| {
        vec![
            ("WEBEX_TOKEN", "bot".to_string()),
            ("WEBEX_API_URL", format!("{}/v1", webex.uri())),
            ("WEBEX_WEBHOOK_SECRET", WEBEX_SECRET.to_string()),
            ("PUBLIC_URL", url.to_string()),
        ]
    };
    let run = |url: &'static str| {
        let vars = vars(url);
        async move {
            let output = crate::cli::icbridge(&["webex", "register"], &vars).await;
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };

    let first = run("https://bridge.example.com").await;
    assert_eq!(first.matches("created   ").count(), 2, "{first}");
    let stored = hooks.0.lock().unwrap().clone();
    assert_eq!(stored.len(), 2);
    let resources: Vec<&str> = stored
        .iter()
        .map(|h| h["resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["messages", "attachmentActions"]);
    for hook in &stored {
        assert_eq!(
            hook["targetUrl"],
            "https://bridge.example.com/webhooks/webex"
        );
        assert_eq!(hook["event"], "created");
        assert_eq!(hook["secret"], WEBEX_SECRET);
    }

    let second = run("https://bridge.example.com").await;
    assert_eq!(second.matches("unchanged ").count(), 2, "{second}");
    assert_eq!(hooks.0.lock().unwrap().len(), 2, "nothing created twice");

    let moved = run("https://new.example.com/").await;
    assert_eq!(moved.matches("updated   ").count(), 2, "{moved}");
    assert_eq!(hooks.0.lock().unwrap().len(), 2);
    assert!(hooks
        .0
        .lock()
        .unwrap()
        .iter()
        .all(|h| h["targetUrl"] == "https://new.example.com/webhooks/webex"));
}

/// A customer's first message and `count` follow-ups ("message 1", ...): one notification
/// and `count` relays queued.
async fn open_conversation_with_follow_ups(app: &TestApp, count: usize) {
    app.post_signed(&fixture("connect-whatsapp-mo.json")).await;
    for n in 1..=count {
        let follow_up = format!(
            r#"{{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"message {n}","messageId":"f-{n}"}}"#
        );
        assert_eq!(app.post_flow(&follow_up).await.status(), 200);
    }
}

/// The outbox rows in `state`: id, attempts and lease.
async fn outbox_rows(app: &TestApp, state: &str) -> Vec<(i64, i64, Option<i64>)> {
    let rows = app.stored().outbox_in_state(state).await.into_iter();
    rows.map(|row| (row.id, row.attempts, row.leased_until))
        .collect()
}

/// The follow-ups' relays the bot posted, as `open_conversation_with_follow_ups` sent them,
/// all under the conversation's thread.
async fn assert_relayed_in_order_under_the_thread(app: &TestApp, count: usize) {
    let posts = bot_posts_after_notification(app).await;
    let texts: Vec<&str> = posts
        .iter()
        .map(|p| p["markdown"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=count)
        .map(|n| format!("**Customer:**\n\n> message {n}"))
        .collect();
    assert_eq!(texts, expected);
    assert!(posts.iter().all(|p| p["parentId"] == thread_id()));
}

db_test! {
    async fn a_conversations_rows_go_out_in_order_across_claims(db) {
    let app = desk_app(db, &[]).await;
    open_conversation_with_follow_ups(&app, BATCH + 6).await;
    // A claim takes at most a batch: the rest of the conversation follows in the next.
    assert_eq!(app.worker.run_once().await.unwrap(), BATCH);
    assert_eq!(app.worker.run_once().await.unwrap(), 7);
    assert_eq!(app.worker.run_once().await.unwrap(), 0);
    assert_eq!(outbox_rows(&app, "sent").await.len(), BATCH + 7);
    assert_relayed_in_order_under_the_thread(&app, BATCH + 6).await;
}
}

db_test! {
    async fn a_row_waiting_for_its_retry_holds_back_only_its_own_conversation(db) {
    let app = desk_app(db, &[("RETRY_SCHEDULE", "1s")]).await;
    open_conversation(&app).await;
    // Webex refuses the next message once (a 500): relay 1 waits for its retry, and relay
    // 2 may not overtake it, while another conversation's rows go out.
    app.webex.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(wiremock::matchers::body_string_contains("message 1"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&app.webex)
        .await;
    mount_webex_messages(&app.webex).await;
    for n in 1..=2 {
        let follow_up = format!(
            r#"{{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"message {n}","messageId":"f-{n}"}}"#
        );
        assert_eq!(app.post_flow(&follow_up).await.status(), 200);
    }
    let other = r#"{"channel":"sms","from":"+14155550199","to":"56263","text":"other customer"}"#;
    assert_eq!(app.post_flow(other).await.status(), 200);
    assert_eq!(app.worker.run_once().await.unwrap(), 3);
    let posts = app.webex_posts().await;
    assert_eq!(posts.len(), 2, "the failed relay and the other conversation's notification");
    // The two conversations are sent side by side, in no particular order.
    assert!(posts
        .iter()
        .any(|p| p["markdown"].as_str().unwrap().contains("other customer")));
    let pending = outbox_rows(&app, "pending").await;
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].1, 1, "relay 1 was tried once");
    assert_eq!(pending[1].1, 0, "relay 2 was put back untried");
    // Nothing is due until the retry is.
    assert_eq!(app.worker.run_once().await.unwrap(), 0);
    app.clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(app.worker.run_once().await.unwrap(), 2);
    let relays: Vec<String> = app.webex_posts().await[2..]
        .iter()
        .map(|p| p["markdown"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(relays, ["**Customer:**\n\n> message 1", "**Customer:**\n\n> message 2"]);
}
}

db_test! {
    async fn a_slow_answer_holds_back_only_its_own_conversation(db) {
    let app = desk_app(db, &[]).await;
    app.webex.reset().await;
    // Webex takes 20 s to answer the notification of one conversation.
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(wiremock::matchers::body_string_contains("slow customer"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("webex-message-created-response.json"), "application/json")
                .set_delay(std::time::Duration::from_secs(20)),
        )
        .mount(&app.webex)
        .await;
    mount_webex_messages(&app.webex).await;
    let slow = r#"{"channel":"sms","from":"+14155550101","to":"56263","text":"slow customer"}"#;
    let quick = r#"{"channel":"sms","from":"+14155550102","to":"56263","text":"quick customer"}"#;
    assert_eq!(app.post_flow(slow).await.status(), 200);
    let mut sending = app.worker.sending();
    assert_eq!(sending.start_due().await.unwrap(), 1);
    assert_eq!(app.post_flow(quick).await.status(), 200);
    // The running worker claims the new row while the slow one is still being sent...
    assert_eq!(sending.start_due().await.unwrap(), 1);
    // ...and records it as soon as it is sent.
    let started = std::time::Instant::now();
    assert_eq!(sending.finish_some().await.unwrap(), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let rows = app.stored().outbox().await;
    assert_eq!(rows[0].state, "pending", "the slow one is still being sent");
    assert_eq!(rows[1].state, "sent");
    assert!(rows[1].payload.contains("quick customer"));
}
}

db_test! {
    async fn a_stopping_worker_records_what_it_was_sending(db) {
    let app = desk_app(db, &[]).await;
    open_conversation_with_follow_ups(&app, 3).await;
    app.webex.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("webex-message-created-response.json"), "application/json")
                .set_delay(std::time::Duration::from_millis(50)),
        )
        .mount(&app.webex)
        .await;
    // Stopped before it starts: it sends nothing.
    let (stop, stopped) = tokio::sync::watch::channel(true);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    app.worker.clone().run(wake.clone(), stopped).await;
    assert_eq!(outbox_rows(&app, "sent").await.len(), 0);
    // Stopped while sending: what it sent is recorded before it returns.
    let mut sending = app.worker.sending();
    assert_eq!(sending.start_due().await.unwrap(), 4);
    drop(stop);
    while sending.is_busy() {
        sending.finish_some().await.unwrap();
    }
    assert_eq!(outbox_rows(&app, "sent").await.len(), 4);
    assert!(outbox_rows(&app, "pending").await.is_empty());
}
}
