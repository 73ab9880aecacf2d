//! Conversations and their meetings: the broker request, the links, reuse and renewal.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::*;

/// The app's clock, in Unix seconds.
fn unix_now(app: &TestApp) -> i64 {
    app.clock.now_ms() / 1000
}

db_test! {
    async fn the_broker_request_is_exactly_the_documented_body(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .set("LINK_TTL", "2h")
        .set("VERTICAL", "hc")
        .set("HOST_LOGIN", "true");
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let before = unix_now(&app);
    let answer: Value = app
        .post_signed(&fixture("connect-sms-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    let after = unix_now(&app);

    let requests = app.broker_requests().await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.url.path(), "/api/v2/joseencrypt");
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {BOT_TOKEN}")
    );
    assert_eq!(request.headers["content-type"], "application/json");
    let body: Value = request.body_json().unwrap();
    let sub = body["jwt"]["sub"].as_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(sub).is_ok(),
        "sub must be a fresh UUID: {sub}"
    );
    let exp = body["jwt"]["exp"].as_i64().unwrap();
    assert!(
        (before + 7200..=after + 7200).contains(&exp),
        "exp = now + ICB_LINK_TTL: {exp}"
    );
    assert_eq!(
        body,
        json!({
            "aud": "a4d886b0-979f-4e2c-a958-3e8c14605e51",
            "jwt": {"sub": sub, "exp": exp},
            "provideShortUrls": true,
            "verticalType": "hc",
            "loginUrlForHost": true,
            "numHost": 1,
            "numGuest": 1,
        })
    );
    // The phone number never goes to the broker (it would be visible inside the link).
    assert!(!String::from_utf8_lossy(&request.body).contains("4155550123"));

    // What is stored: the sub, both links, the expiry the broker was given.
    let meeting = app.stored().the_meeting().await;
    assert_eq!(meeting.sub, sub);
    assert_eq!(meeting.host_url, SHORT_HOST_URL);
    assert_eq!(meeting.guest_url, SHORT_GUEST_URL);
    assert_eq!(meeting.expires_at / 1000, exp);
    let expected_expiry = time::OffsetDateTime::from_unix_timestamp(exp)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(answer["expiresAt"], expected_expiry);
}
}

db_test! {
    async fn links_are_built_for_every_mode(db) {
    let host_cipher = fixture_json("ic-joseencrypt-long.json")["host"][0]["cipher"]
        .as_str()
        .unwrap()
        .to_string();
    let guest_cipher = fixture_json("ic-joseencrypt-long.json")["guest"][0]["cipher"]
        .as_str()
        .unwrap()
        .to_string();
    let long = |vertical: &str, page: &str, cipher: &str| {
        format!("https://instant.webex.com/{vertical}/v1/{page}?int=jose&v=1&data={cipher}")
    };
    let cases = [
        (
            "true",
            "gen",
            "ic-joseencrypt-short.json",
            SHORT_HOST_URL.to_string(),
            SHORT_GUEST_URL.to_string(),
        ),
        (
            "true",
            "hc",
            "ic-joseencrypt-short.json",
            SHORT_HOST_URL.to_string(),
            SHORT_GUEST_URL.to_string(),
        ),
        (
            "false",
            "gen",
            "ic-joseencrypt-long.json",
            long("gen", "login", &host_cipher),
            long("gen", "talk", &guest_cipher),
        ),
        (
            "false",
            "hc",
            "ic-joseencrypt-long.json",
            long("hc", "login", &host_cipher),
            long("hc", "talk", &guest_cipher),
        ),
    ];
    for (short, vertical, broker_fixture, host_url, guest_url) in cases {
        let mut upstreams = Upstreams::start(db).await;
        upstreams.set("SHORT_URLS", short).set("VERTICAL", vertical);
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, broker_fixture).await;
        let answer: Value = app
            .post_flow(&fixture("flow-whatsapp.json"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            answer["guestUrl"], guest_url,
            "short={short} vertical={vertical}"
        );
        let meeting = app.stored().the_meeting().await;
        assert_eq!(meeting.host_url, host_url, "short={short} vertical={vertical}");
        assert_eq!(meeting.guest_url, guest_url, "short={short} vertical={vertical}");
        let sent: Value = app.broker_requests().await[0].body_json().unwrap();
        assert_eq!(sent["provideShortUrls"], short == "true");
        assert_eq!(sent["verticalType"], vertical);
    }
}
}

db_test! {
    async fn later_messages_reuse_the_meeting_without_calling_the_broker(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let first: Value = app
        .post_flow(&fixture("flow-sms.json"))
        .await
        .json()
        .await
        .unwrap();
    let follow_up = r#"{"channel":"sms","from":"+14155550123","to":"56263","text":"are you there?","messageId":"0044_78263740002"}"#;
    let second: Value = app.post_flow(follow_up).await.json().await.unwrap();
    assert_eq!(second["conversationId"], first["conversationId"]);
    assert_eq!(second["meetingId"], first["meetingId"]);
    assert_eq!(second["guestUrl"], first["guestUrl"]);
    assert_eq!(second["expiresAt"], first["expiresAt"]);
    assert_eq!(first["created"], true);
    assert_eq!(second["created"], false);
    assert_eq!(app.broker_requests().await.len(), 1);
    // Both messages stored and linked to the conversation; one notification, and the
    // second message goes to the experts' thread.
    assert_eq!(app.stored().counts().await, (2, 1, 1, 2));
    let kinds: Vec<String> = app.stored().outbox().await.into_iter().map(|row| row.kind).collect();
    assert_eq!(kinds, ["expert_notification", "expert_notice"]);
    let messages = app.stored().messages().await;
    let linked = messages
        .iter()
        .filter(|m| m.conversation_id.as_deref() == first["conversationId"].as_str())
        .count();
    assert_eq!(linked, 2);
}
}

db_test! {
    async fn a_meeting_about_to_expire_is_replaced_in_the_same_conversation(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let first: Value = app
        .post_flow(&fixture("flow-sms.json"))
        .await
        .json()
        .await
        .unwrap();

    // Links that run out in 4 minutes are too close to expiry to hand out (limit: 5): the
    // meeting is aged on purpose.
    let in_four_minutes = (unix_now(&app) + 240) * 1000;
    sqlx::query("UPDATE meetings SET expires_at = $1")
        .bind(in_four_minutes)
        .execute(&app.db)
        .await
        .unwrap();
    let follow_up =
        r#"{"channel":"sms","from":"+14155550123","to":"56263","text":"link?","messageId":"m-2"}"#;
    let second: Value = app.post_flow(follow_up).await.json().await.unwrap();
    assert_eq!(second["conversationId"], first["conversationId"]);
    assert_ne!(second["meetingId"], first["meetingId"]);
    assert_eq!(second["created"], true);
    assert_eq!(app.broker_requests().await.len(), 2);
    let subs: BTreeSet<String> = app.stored().meetings().await.into_iter().map(|m| m.sub).collect();
    assert_eq!(subs.len(), 2, "each meeting gets a fresh sub");
    // The expert is told about the new host link too.
    assert_eq!(app.stored().counts().await, (2, 1, 2, 2));

    // Six minutes left is still fine: reused (aged on purpose again).
    let third =
        r#"{"channel":"sms","from":"+14155550123","to":"56263","text":"ok","messageId":"m-3"}"#;
    sqlx::query("UPDATE meetings SET expires_at = $1 WHERE id = $2")
        .bind((unix_now(&app) + 360) * 1000)
        .bind(second["meetingId"].as_str())
        .execute(&app.db)
        .await
        .unwrap();
    let third: Value = app.post_flow(third).await.json().await.unwrap();
    assert_eq!(third["meetingId"], second["meetingId"]);
    assert_eq!(app.broker_requests().await.len(), 2);
}
}

db_test! {
    async fn a_conversation_is_per_channel_customer_and_business_address(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let bodies = [
        r#"{"channel":"sms","from":"+14155550123","to":"56263","text":"a"}"#,
        r#"{"channel":"sms","from":"+14155550123","to":"56264","text":"b"}"#,
        r#"{"channel":"sms","from":"+14155550199","to":"56263","text":"c"}"#,
        r#"{"channel":"whatsapp","from":"14155550123","to":"56263","text":"d"}"#,
        r#"{"channel":"sms","from":"1 (415) 555-0123","to":"56263","text":"same as a"}"#,
    ];
    let mut conversations = BTreeSet::new();
    for body in bodies {
        let answer: Value = app.post_flow(body).await.json().await.unwrap();
        conversations.insert(answer["conversationId"].as_str().unwrap().to_string());
    }
    assert_eq!(conversations.len(), 4);
    assert_eq!(app.broker_requests().await.len(), 4);
}
}

db_test! {
    async fn the_reply_template_is_used(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set(
        "REPLY_TEMPLATE",
        "Hi! Your advisor is waiting: {guest_url} (valid 1h)",
    );
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let answer: Value = app
        .post_flow(&fixture("flow-sms.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["reply"],
        format!("Hi! Your advisor is waiting: {SHORT_GUEST_URL} (valid 1h)")
    );
}
}
