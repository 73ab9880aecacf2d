//! Every accepted payload shape becomes the same stored message and the same answer.

use serde_json::{json, Value};

use crate::helpers::*;

/// (fixture, how it is posted, channel, customer, business, message id)
const SHAPES: &[(&str, bool, &str, &str, &str, &str)] = &[
    (
        "flow-sms.json",
        false,
        "sms",
        "+14155550123",
        "56263",
        "0044_78263740001",
    ),
    (
        "flow-whatsapp.json",
        false,
        "whatsapp",
        "14155550142",
        "a_155054536910425280",
        "wamid.HBgLMTQxNTU1NTAxNDIVAgASGBQzQTM0Q0ZBRDQ3OEMxQjg4",
    ),
    (
        "connect-sms-mo.json",
        true,
        "sms",
        "+14155550123",
        "56263",
        "0044_78263740001",
    ),
    (
        "connect-whatsapp-mo.json",
        true,
        "whatsapp",
        "14155550142",
        "a_155054536910425280",
        "wamid.HBgLMTQxNTU1NTAxNDIVAgASGBQzQTM0Q0ZBRDQ3OEMxQjg4",
    ),
];

db_test! {
    async fn every_fixture_shape_opens_a_conversation_with_a_meeting(db) {
    for &(name, signed, channel, customer, business, message_id) in SHAPES {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        let body = fixture(name);
        let response = if signed {
            app.post_signed(&body).await
        } else {
            app.post_flow(&body).await
        };
        assert_eq!(response.status(), 200, "{name}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["guestUrl"], SHORT_GUEST_URL, "{name}");
        assert_eq!(
            answer["reply"],
            format!("Join your video consultation: {SHORT_GUEST_URL}"),
            "{name}"
        );
        assert_eq!(answer["created"], true, "{name}");
        let keys: Vec<&str> = answer
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "conversationId",
                "created",
                "expiresAt",
                "guestUrl",
                "meetingId",
                "open",
                "reply"
            ],
            "{name}"
        );

        let message = app.stored().the_message().await;
        let text = fixture_json(name);
        let expected_text = text.get("text").or(text.get("message")).unwrap();
        assert_eq!(message.channel, channel, "{name}");
        assert_eq!(message.customer, customer, "{name}");
        assert_eq!(message.business, business, "{name}");
        assert_eq!(message.external_id.unwrap(), message_id, "{name}");
        assert_eq!(&message.body, expected_text, "{name}");
        assert_eq!(
            message.conversation_id.unwrap(),
            answer["conversationId"],
            "{name}"
        );
        assert_eq!(message.meeting_id.unwrap(), answer["meetingId"], "{name}");

        let conversation = app.stored().the_conversation().await;
        assert_eq!(conversation.customer, customer, "{name}");
        assert_eq!(conversation.state, "open", "{name}");
    }
}
}

db_test! {
    async fn whatsapp_profile_name_is_kept_with_the_conversation(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    assert_eq!(
        app.post_signed(&fixture("connect-whatsapp-mo.json"))
            .await
            .status(),
        200
    );
    let name = app.stored().the_conversation().await.customer_name;
    assert_eq!(name.as_deref(), Some("Alice Example"));
}
}

db_test! {
    async fn unknown_extra_fields_are_ignored(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let mut body = fixture_json("flow-sms.json");
    body["somethingNew"] = json!({"nested": [1, 2, 3]});
    body["priority"] = json!(7);
    let response = app.post_flow(&body.to_string()).await;
    assert_eq!(response.status(), 200);
}
}

db_test! {
    async fn delivery_receipts_are_recorded_and_update_the_matching_reply(db) {
    let app = spawn_app(db).await;
    let response = app
        .post_signed(&fixture("connect-delivery-receipt.json"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "recorded"})
    );
    let receipts = app.stored().receipts().await;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    let receipt = &receipts[0];
    assert_eq!(receipt.correlation_id.as_deref(), Some("out-1"));
    assert_eq!(
        receipt.transid.as_deref(),
        Some("7c1e2f0a-5b7d-4d6e-9a51-3f1b2c4d5e6f")
    );
    assert_eq!(receipt.code.as_deref(), Some("7500"));
    assert_eq!(receipt.status.as_deref(), Some("delivered"));
    assert_eq!(receipt.channel.as_deref(), Some("whatsapp"));
    // A receipt is not a message.
    assert_eq!(app.stored().counts().await, (0, 0, 0, 0));
}
}

db_test! {
    async fn other_whatsapp_events_are_ignored_without_storing_anything(db) {
    let app = spawn_app(db).await;
    let mut body = fixture_json("connect-whatsapp-mo.json");
    body["event"] = json!("READ");
    let response = app.post_signed(&body.to_string()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ignored"})
    );
    assert_eq!(app.stored().counts().await, (0, 0, 0, 0));
}
}

db_test! {
    async fn head_answers_200_for_the_webhook_url_check(db) {
    let app = spawn_app(db).await;
    let response = app
        .http
        .head(format!("{}/webhooks/connect", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
}

db_test! {
    async fn health_endpoints_answer(db) {
    let app = spawn_app(db).await;
    for endpoint in ["healthz", "readyz"] {
        let response = app
            .http
            .get(format!("{}/{endpoint}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{endpoint}");
    }
}
}

db_test! {
    async fn a_repeated_message_gets_the_same_answer_and_is_stored_once(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let body = fixture("connect-sms-mo.json");
    let first: Value = app.post_signed(&body).await.json().await.unwrap();
    let second: Value = app.post_signed(&body).await.json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(app.broker_requests().await.len(), 1);
    assert_eq!(app.stored().counts().await, (1, 1, 1, 1));
}
}

db_test! {
    async fn messages_without_an_id_are_never_deduplicated(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let body = r#"{"channel":"sms","from":"+14155550123","to":"56263","text":"hello"}"#;
    assert_eq!(app.post_flow(body).await.status(), 200);
    assert_eq!(app.post_flow(body).await.status(), 200);
    assert_eq!(app.count("messages").await, 2);
}
}
