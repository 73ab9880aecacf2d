//! Events for the systems of record: Standard Webhooks to each subscription's receiver,
//! verified here by an implementation of the specification's signature of our own (not
//! icbridge's), checked first against the specification's published test vector.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A receiver's secret (`whsec_` and 32 bytes, base64).
pub const RECEIVER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

/// The Standard Webhooks signature, as a receiver computes it: HMAC-SHA256 with the
/// base64-decoded secret (without `whsec_`) over `id.timestamp.body`, base64.
pub fn standard_signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[test]
fn the_verifier_agrees_with_the_specifications_test_vector() {
    assert_eq!(
        standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            r#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

/// An event as a receiver got it, its signature verified.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub timestamp: i64,
    pub body: Value,
}

impl Received {
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap()
    }
}

/// A receiver: a local server that answers `200`, and reads back what it got, each
/// request's signature checked with [`standard_signature`].
pub struct Receiver {
    pub server: MockServer,
    pub secret: &'static str,
}

impl Receiver {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        Self {
            server,
            secret: RECEIVER_SECRET,
        }
    }

    pub async fn accept(&self) {
        Mock::given(method("POST"))
            .and(path("/events"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&self.server)
            .await;
    }

    pub fn url(&self) -> url::Url {
        format!("{}/events", self.server.uri()).parse().unwrap()
    }

    pub fn subscription(&self, name: &str) -> Subscription {
        Subscription {
            name: name.into(),
            url: self.url(),
            secret: WebhookSecret::parse(self.secret).unwrap(),
            events: Vec::new(),
            desks: None,
            include: Includes::default(),
        }
    }

    /// Every request received, in order, each verified, and its body checked against the
    /// OpenAPI document's schema of its type.
    pub async fn received(&self) -> Vec<Received> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .map(|request| {
                let header = |name: &str| request.headers[name].to_str().unwrap().to_string();
                let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
                let body = String::from_utf8(request.body.clone()).unwrap();
                assert_eq!(
                    header("webhook-signature"),
                    standard_signature(self.secret, &id, &timestamp, &body),
                    "the signature of {id} verifies"
                );
                assert_eq!(header("content-type"), "application/json");
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_documented(&body);
                Received {
                    webhook_id: id,
                    timestamp: timestamp.parse().unwrap(),
                    body,
                }
            })
            .collect()
    }

    pub async fn types(&self) -> Vec<String> {
        self.received()
            .await
            .iter()
            .map(|r| r.kind().to_string())
            .collect()
    }
}

/// An app whose broker and Webex answer, with one subscription to `receiver`.
pub async fn app_with(db: TestDb, subscriptions: Vec<Subscription>) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("ADMIN_TOKEN", ADMIN_TOKEN);
    upstreams.subscriptions = subscriptions;
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    app
}

/// Runs the worker until nothing is due.
pub async fn deliver_all(app: &TestApp) {
    while app.worker.run_once().await.unwrap() > 0 {}
}

db_test! {
    async fn a_new_conversation_reaches_the_receiver_signed_in_order_without_personal_data(db) {
    let receiver = Receiver::start().await;
    receiver.accept().await;
    let app = app_with(db, vec![receiver.subscription("crm")]).await;
    let answer: Value = app
        .post_signed(&fixture("connect-sms-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    deliver_all(&app).await;

    let received = receiver.received().await;
    assert_eq!(
        receiver.types().await,
        ["conversation.opened", "message.received", "meeting.created"]
    );
    let conversation = answer["conversationId"].as_str().unwrap();
    let now_s = icbridge::domain::clock::Clock::system().now_ms() / 1000;
    for event in &received {
        assert!(event.webhook_id.starts_with("evt_"));
        // The attempt's real time (receivers allow ±5 minutes), whatever the app's clock.
        assert!((event.timestamp - now_s).abs() <= 300, "signed at the attempt's time");
        assert_eq!(event.body["data"]["conversation_id"], conversation);
        assert_eq!(event.body["data"]["desk"], "default");
    }
    assert_eq!(received[0].body["data"]["customer"], "+1415•••0123");
    assert_eq!(received[0].body["data"]["channel"], "sms");
    let message = &received[1].body["data"];
    assert_eq!(message["direction"], "inbound");
    assert_eq!(message["author"], "customer");
    assert!(message.get("text").is_none(), "no text unless included: {message}");
    assert!(!received[1].body.to_string().contains("14155550123"));
    let meeting = &received[2].body["data"];
    assert!(meeting["meeting_id"].is_string());
    assert!(meeting.get("links").is_none(), "no links unless included: {meeting}");
    // Each event once.
    let ids: std::collections::HashSet<_> = received.iter().map(|r| &r.webhook_id).collect();
    assert_eq!(ids.len(), 3);
}
}

db_test! {
    async fn included_texts_numbers_and_links_are_sent_to_the_subscription_that_asks(db) {
    let receiver = Receiver::start().await;
    receiver.accept().await;
    let mut subscription = receiver.subscription("emr");
    subscription.include = Includes {
        texts: true,
        customer_number: true,
        links: true,
        ..Includes::default()
    };
    let app = app_with(db, vec![subscription]).await;
    app.post_signed(&fixture("connect-sms-mo.json")).await;
    deliver_all(&app).await;

    let received = receiver.received().await;
    assert_eq!(received[0].body["data"]["customer"], "+14155550123");
    let sent_text = fixture_json("connect-sms-mo.json")["message"].clone();
    assert!(received[1].body["data"]["text"].is_string());
    assert_eq!(received[1].body["data"]["text"], sent_text);
    assert!(received[2].body["data"]["links"]["guest"].is_string());
    assert!(received[2].body["data"]["links"]["host"].is_string());
}
}

db_test! {
    async fn a_follow_up_is_an_event_and_a_receiver_down_holds_back_no_customer(db) {
    let receiver = Receiver::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&receiver.server)
        .await;
    receiver.accept().await;
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("EVENTS_RETRY_SCHEDULE", "1m");
    upstreams.subscriptions = vec![receiver.subscription("crm")];
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;

    app.post_signed(&fixture("connect-sms-mo.json")).await;
    app.worker.run_once().await.unwrap();
    // The experts' notification went out; the first event failed and holds back only the
    // conversation's other events.
    assert_eq!(app.webex_posts().await.len(), 1);
    assert_eq!(receiver.server.received_requests().await.unwrap().len(), 1);
    deliver_all(&app).await;
    assert_eq!(receiver.server.received_requests().await.unwrap().len(), 1);

    // An hour later the receiver is back: everything arrives, in order, each once.
    app.clock.advance(std::time::Duration::from_secs(3600));
    deliver_all(&app).await;
    let requests = receiver.server.received_requests().await.unwrap();
    let ids: Vec<String> = requests
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
        .collect();
    // The failed attempt and the retry carry the same id, and each attempt is signed at its
    // real time: a receiver's ±5 minutes accept the retry an hour later.
    assert_eq!(ids[0], ids[1]);
    let real_now = icbridge::domain::clock::Clock::system().now_ms() / 1000;
    for attempt in receiver.received().await {
        assert!((attempt.timestamp - real_now).abs() <= 300, "{attempt:?}");
    }
    let delivered: Vec<Value> = requests[1..]
        .iter()
        .map(|r| r.body_json::<Value>().unwrap()["type"].clone())
        .collect();
    assert_eq!(
        delivered,
        [json!("conversation.opened"), json!("message.received"), json!("meeting.created")]
    );
}
}

/// Checks an event's body against the schema the OpenAPI document's `webhooks` give its
/// type: types, `const`, `enum`, required and (undocumented) properties, date-times.
pub fn assert_documented(body: &Value) {
    let document = icbridge::routes::openapi::full_document();
    let kind = body["type"].as_str().expect("a type");
    let operation = &document["webhooks"][kind]["post"];
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{kind} is documented");
    if let Err(problem) = conforms(&document, schema, body, "body") {
        panic!("{kind} does not match the OpenAPI document: {problem}\n{body:#}");
    }
}

fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return conforms(
            document,
            &document["components"]["schemas"][name],
            value,
            at,
        );
    }
    let type_of = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !allowed.is_empty() && !allowed.contains(&type_of(value)) {
        return Err(format!("{at}: {} is not {allowed:?}", type_of(value)));
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            return Err(format!("{at}: {value} is not {constant}"));
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            return Err(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if schema["format"] == "date-time" && value.is_string() {
        let text = value.as_str().unwrap();
        if !(text.len() >= 20 && text.as_bytes()[10] == b'T' && text.ends_with('Z')) {
            return Err(format!("{at}: {text} is not an RFC 3339 time"));
        }
    }
    if let Value::Object(fields) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !fields.contains_key(name) {
                return Err(format!("{at}: {name} is missing"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, field) in fields {
                let Some(property) = properties.get(name) else {
                    return Err(format!("{at}: {name} is not documented"));
                };
                conforms(document, property, field, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, element) in items.iter().enumerate() {
            conforms(document, item, element, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

db_test! {
    async fn a_receiver_that_asks_to_wait_is_left_alone_and_holds_back_no_other_subscription(db) {
    let slow = Receiver::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .up_to_n_times(1)
        .mount(&slow.server)
        .await;
    slow.accept().await;
    let other = Receiver::start().await;
    other.accept().await;
    let app = app_with(db, vec![slow.subscription("crm"), other.subscription("emr")]).await;
    app.post_signed(&fixture("connect-sms-mo.json")).await;
    deliver_all(&app).await;

    // The other receiver got everything; the one that asked to wait was asked once.
    assert_eq!(
        other.types().await,
        ["conversation.opened", "message.received", "meeting.created"]
    );
    assert_eq!(slow.server.received_requests().await.unwrap().len(), 1);
    // Not before the time it asked for, even for another conversation's events.
    let mut second = fixture_json("connect-sms-mo.json");
    second["oa"] = "14155550999".into();
    second["tid"] = "another-message".into();
    app.post_signed(&second.to_string()).await;
    app.clock.advance(std::time::Duration::from_secs(119));
    deliver_all(&app).await;
    assert_eq!(slow.server.received_requests().await.unwrap().len(), 1);
    assert_eq!(other.received().await.len(), 6);

    app.clock.advance(std::time::Duration::from_secs(2));
    deliver_all(&app).await;
    let received = slow.received().await;
    // The refused event again (same id), then the rest: each conversation's in order.
    assert_eq!(received.len(), 7, "{received:#?}");
    assert_eq!(
        received.iter().filter(|r| r.webhook_id == received[0].webhook_id).count(),
        2
    );
    let mut conversations: Vec<String> = received
        .iter()
        .map(|r| r.body["data"]["conversation_id"].as_str().unwrap().to_string())
        .collect();
    conversations.dedup();
    for conversation in &conversations {
        let types: Vec<&str> = received[1..]
            .iter()
            .filter(|r| r.body["data"]["conversation_id"] == conversation.as_str())
            .map(|r| r.kind())
            .collect();
        assert_eq!(types, ["conversation.opened", "message.received", "meeting.created"]);
    }
    let metrics = app.metrics_page().await;
    assert!(
        metrics.contains(
            "icbridge_events_emitted_total{subscription=\"crm\",type=\"conversation.opened\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "icbridge_events_sent_total{subscription=\"emr\",type=\"meeting.created\"} 2"
    ));
    assert!(metrics.contains("icbridge_event_delivery_failures_total{subscription=\"crm\"} 1"));
    assert!(metrics.contains("icbridge_event_oldest_undelivered_seconds 0"));
}
}

db_test! {
    async fn without_subscriptions_no_event_is_stored_or_queued(db) {
    let app = app_with(db, Vec::new()).await;
    app.post_signed(&fixture("connect-sms-mo.json")).await;
    deliver_all(&app).await;
    assert!(app
        .stored()
        .outbox()
        .await
        .iter()
        .all(|row| row.kind != "event"));
    // No one would receive them: not kept (a message's text would be stored twice).
    assert_eq!(app.stored().count("events").await, 0);
}
}

db_test! {
    async fn the_admin_api_lists_event_deliveries_as_their_own_kind(db) {
    let receiver = Receiver::start().await;
    receiver.accept().await;
    let app = app_with(db, vec![receiver.subscription("crm")]).await;
    app.post_signed(&fixture("connect-sms-mo.json")).await;
    deliver_all(&app).await;
    let response = admin(&app, reqwest::Method::GET, "/api/outbox").await;
    assert_eq!(response.status(), 200);
    let listed: Value = response.json().await.unwrap();
    let rows: Vec<&Value> = listed["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["kind"] != "expert_notification")
        .collect();
    assert_eq!(rows.len(), 3, "{listed}");
    for row in rows {
        assert_eq!(row["kind"], "event");
        assert_eq!(row["state"], "sent");
        assert!(row["upstreamId"].as_str().unwrap().starts_with("evt_"), "{row}");
    }
}
}
