//! `ICB_REPLY_MODE=connect`: icbridge sends the guest link through Webex Connect, reads the
//! API's answers as they really come, and follows delivery receipts.

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::cli::icbridge;
use crate::helpers::*;

async fn connect_app(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("REPLY_MODE", "connect");
    for (key, value) in extra {
        upstreams.set(key, value);
    }
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    app
}

async fn reply_row(app: &TestApp) -> (i64, String, Option<String>, Option<String>) {
    let first = app
        .stored()
        .outbox_of_kind("customer_reply")
        .await
        .remove(0);
    (first.id, first.state, first.upstream_id, first.last_error)
}

async fn mount_sms(app: &TestApp, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/sms/messages"))
        .respond_with(response)
        .mount(&app.connect)
        .await;
}

async fn mount_whatsapp(app: &TestApp, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/resources/v1/messaging"))
        .respond_with(response)
        .mount(&app.connect)
        .await;
}

db_test! {
    async fn an_sms_from_the_outbound_webhook_gets_the_guest_link_by_sms(db) {
    let app = connect_app(db, &[]).await;
    Mock::given(method("POST"))
        .and(path("/v1/sms/messages"))
        .and(header("key", SERVICE_KEY))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(202).set_body_raw(
            fixture("connect-sms-send-accepted.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&app.connect)
        .await;
    let answer: Value = app
        .post_signed(&fixture("connect-sms-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app.worker.run_once().await.unwrap(), 2);

    let (id, state, upstream_id, _) = reply_row(&app).await;
    let sent: Value = app.connect.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(
        sent,
        json!({
            "from": "56263",
            "to": "+14155550123",
            "content": format!("Join your video consultation: {SHORT_GUEST_URL}"),
            "contentType": "text",
            "correlationId": format!("icb-{id}"),
            "callbackData": answer["conversationId"],
        })
    );
    assert_eq!(state, "sent");
    assert_eq!(
        upstream_id.as_deref(),
        Some("b2f6c1e4-6a0d-4a4b-8f3e-1d2c3b4a5f60")
    );
    // The answer still carries the link, for flows that read it.
    assert_eq!(answer["guestUrl"], SHORT_GUEST_URL);
}
}

db_test! {
    async fn the_configured_sms_sender_is_used_without_plus(db) {
    let app = connect_app(db, &[("SMS_SENDER", "+14155550100")]).await;
    mount_sms(
        &app,
        ResponseTemplate::new(202).set_body_raw(
            fixture("connect-sms-send-accepted.json"),
            "application/json",
        ),
    )
    .await;
    app.post_signed(&fixture("connect-sms-mo.json")).await;
    app.worker.run_once().await.unwrap();
    let sent: Value = app.connect.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["from"], "14155550100");
}
}

db_test! {
    async fn the_configured_whatsapp_app_id_is_used(db) {
    let app = connect_app(db, &[("WHATSAPP_APP_ID", "a_999")]).await;
    mount_whatsapp(
        &app,
        ResponseTemplate::new(200)
            .set_body_raw(fixture("connect-whatsapp-send-ok.json"), "application/json"),
    )
    .await;
    app.post_flow(r#"{"channel":"whatsapp","from":"14155550142","text":"hi"}"#)
        .await;
    app.worker.run_once().await.unwrap();
    let sent: Value = app.connect.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["appid"], "a_999");
    assert_eq!(sent["destination"], json!([{"waid": ["14155550142"]}]));
}
}

db_test! {
    async fn sms_errors_400_7004_is_permanent_403_7001_waits_for_the_key_5xx_is_retried(db) {
    let cases = [
        (
            400,
            json!({"code": "7004", "message": "Invalid parameter - to"}),
            "dead",
            "7004 Invalid parameter - to",
        ),
        // A refused key: the reply waits (pending) until the key works again.
        (
            403,
            json!({"code": "7001", "message": "Authentication failed"}),
            "pending",
            "7001 Authentication failed",
        ),
        (500, json!({"message": "oops"}), "pending", "HTTP 500"),
        (
            429,
            json!({"code": "7020", "message": "Rate limit exceeded"}),
            "pending",
            "7020",
        ),
    ];
    for (status, body, expected_state, expected_error) in cases {
        let app = connect_app(db, &[("RETRY_SCHEDULE", "1h")]).await;
        mount_sms(&app, ResponseTemplate::new(status).set_body_json(body)).await;
        app.post_signed(&fixture("connect-sms-mo.json")).await;
        app.worker.run_once().await.unwrap();
        let (_, state, _, error) = reply_row(&app).await;
        assert_eq!(state, expected_state, "HTTP {status}");
        let error = error.unwrap();
        assert!(error.contains(expected_error), "HTTP {status}: {error}");
    }
}
}

db_test! {
    async fn whatsapp_errors_arrive_with_http_200_and_are_read_from_the_body(db) {
    let cases = [
        // A refused key: the reply waits (pending) until the key works again.
        (
            200,
            fixture("connect-whatsapp-send-autherror.json"),
            "pending",
            "7001",
        ),
        (
            200,
            r#"{"response":{"code":"7002","description":"Invalid app id","transid":"t"}}"#
                .to_string(),
            "dead",
            "7002",
        ),
        (
            200,
            r#"{"response":{"code":"7003","description":"Invalid destination","transid":"t"}}"#
                .to_string(),
            "dead",
            "7003",
        ),
        (
            200,
            r#"{"response":{"code":"7020","description":"Rate limit exceeded","transid":"t"}}"#
                .to_string(),
            "pending",
            "7020",
        ),
        (
            200,
            r#"{"response":[{"code":"7003","description":"Invalid destination","transid":"t"}]}"#
                .to_string(),
            "dead",
            "7003",
        ),
        (503, "{}".to_string(), "pending", "HTTP 503"),
    ];
    for (status, body, expected_state, expected_error) in cases {
        let app = connect_app(db, &[("RETRY_SCHEDULE", "1h")]).await;
        mount_whatsapp(
            &app,
            ResponseTemplate::new(status).set_body_raw(body.clone(), "application/json"),
        )
        .await;
        app.post_signed(&fixture("connect-whatsapp-mo.json")).await;
        app.worker.run_once().await.unwrap();
        let (_, state, upstream_id, error) = reply_row(&app).await;
        assert_eq!(state, expected_state, "{body}");
        assert!(error.unwrap().contains(expected_error), "{body}");
        assert_eq!(upstream_id, None, "{body}");
    }
}
}

async fn whatsapp_reply_sent(app: &TestApp) -> i64 {
    mount_whatsapp(
        app,
        ResponseTemplate::new(200)
            .set_body_raw(fixture("connect-whatsapp-send-ok.json"), "application/json"),
    )
    .await;
    assert_eq!(
        app.post_signed(&fixture("connect-whatsapp-mo.json"))
            .await
            .status(),
        200
    );
    assert_eq!(app.worker.run_once().await.unwrap(), 2);
    reply_row(app).await.0
}

fn receipt(correlation_id: &str, transid: &str, code: &str) -> String {
    let mut receipt = fixture_json("connect-delivery-receipt.json");
    let notification = &mut receipt["deliveryInfoNotification"];
    notification["correlationid"] = json!(correlation_id);
    notification["transid"] = json!(transid);
    notification["deliveryInfo"]["code"] = json!(code);
    receipt.to_string()
}

async fn delivery(app: &TestApp, id: i64) -> (Option<String>, Option<String>) {
    let row = app.stored().outbox_row(id).await;
    (row.delivery_status, row.delivery_code)
}

db_test! {
    async fn receipts_update_the_reply_by_transid_or_correlation_id(db) {
    let app = connect_app(db, &[]).await;
    let id = whatsapp_reply_sent(&app).await;
    // The fixture names the transaction id the send returned.
    let response = app
        .post_signed(&fixture("connect-delivery-receipt.json"))
        .await;
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "recorded"})
    );
    assert_eq!(
        delivery(&app, id).await,
        (Some("delivered".into()), Some("7500".into()))
    );

    for (code, status) in [("7501", "submitted"), ("7502", "read"), ("7737", "failed")] {
        app.post_signed(&receipt(&format!("icb-{id}"), "unknown", code))
            .await;
        assert_eq!(
            delivery(&app, id).await,
            (Some(status.into()), Some(code.into())),
            "{code}"
        );
    }
    let receipts = app.stored().receipts().await;
    let linked = receipts.iter().filter(|r| r.outbox_id == Some(id)).count();
    assert_eq!(linked, 4);
}
}

db_test! {
    async fn a_receipt_for_someone_elses_message_matches_nothing(db) {
    let app = connect_app(db, &[]).await;
    let id = whatsapp_reply_sent(&app).await;
    // A flow's own reply, with a correlation id that happens to be our row's number.
    app.post_signed(&receipt(&id.to_string(), "other-transid", "7101"))
        .await;
    assert_eq!(delivery(&app, id).await, (None, None));
    assert_eq!(app.count("delivery_receipts").await, 1, "still stored");
}
}

db_test! {
    async fn a_closed_whatsapp_window_tells_the_experts_in_the_thread(db) {
    let app = connect_app(db, &[]).await;
    let id = whatsapp_reply_sent(&app).await;
    let thread = fixture_json("webex-message-created-response.json")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored_thread = app.stored().the_conversation().await.thread_message_id;
    assert_eq!(
        stored_thread.as_deref(),
        Some(thread.as_str()),
        "the notification opened the thread"
    );

    let closed = receipt(
        &format!("icb-{id}"),
        "7c1e2f0a-5b7d-4d6e-9a51-3f1b2c4d5e6f",
        "7710",
    );
    assert_eq!(app.post_signed(&closed).await.status(), 200);
    assert_eq!(
        delivery(&app, id).await,
        (Some("failed".into()), Some("7710".into()))
    );
    // Webex Connect may deliver the receipt twice: one notice only.
    assert_eq!(app.post_signed(&closed).await.status(), 200);
    assert_eq!(app.worker.run_once().await.unwrap(), 1);

    let posts = app.webex_posts().await;
    assert_eq!(posts.len(), 2, "the notification, then the notice");
    let notice = &posts[1];
    assert_eq!(notice["roomId"], EXPERT_ROOM);
    assert_eq!(notice["parentId"], thread);
    let text = notice["markdown"].as_str().unwrap();
    assert!(text.contains("must write first"), "{text}");
    assert!(!text.contains("14155550142"));
    // The refused reply waits, held, for the customer's next message.
    assert_eq!(app.stored().held().await.len(), 1);
}
}

db_test! {
    async fn follow_ups_get_no_automatic_reply_by_default(db) {
    let app = connect_app(db, &[]).await;
    whatsapp_reply_sent(&app).await;
    let follow_up = r#"{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"hello?","messageId":"f-1"}"#;
    assert_eq!(app.post_flow(follow_up).await.status(), 200);
    // Only the relay to the experts' thread.
    assert_eq!(app.worker.run_once().await.unwrap(), 1);
    assert_eq!(app.connect.received_requests().await.unwrap().len(), 1);
}
}

db_test! {
    async fn with_followup_link_every_later_message_gets_the_live_link(db) {
    let app = connect_app(db, &[("FOLLOWUP_REPLY", "link")]).await;
    whatsapp_reply_sent(&app).await;
    let follow_up = r#"{"channel":"whatsapp","from":"14155550142","to":"a_155054536910425280","text":"hello?","messageId":"f-1"}"#;
    assert_eq!(app.post_flow(follow_up).await.status(), 200);
    // A repeat of the follow-up is not answered twice.
    assert_eq!(app.post_flow(follow_up).await.status(), 200);
    // The relay to the experts' thread and the link to the customer.
    assert_eq!(app.worker.run_once().await.unwrap(), 2);
    let requests = app.connect.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let second: Value = requests[1].body_json().unwrap();
    assert_eq!(
        second["channels"]["OTT-Messaging"]["wa"]["text"]["body"],
        format!("Join your video consultation: {SHORT_GUEST_URL}")
    );
    assert_eq!(app.broker_requests().await.len(), 1, "no new meeting");
}
}

db_test! {
    async fn connect_mode_refuses_to_start_without_its_settings(db) {
    for missing in ["CONNECT_API_URL", "CONNECT_SERVICE_KEY"] {
        let mut upstreams = Upstreams::start(db).await;
        upstreams.set("REPLY_MODE", "connect").unset(missing);
        let error = upstreams
            .build()
            .await
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            error.contains(&format!("ICB_REPLY_MODE=connect needs ICB_{missing}")),
            "{error}"
        );
    }
}
}

#[tokio::test]
async fn a_reply_template_that_cannot_work_stops_start_up_with_the_reason() {
    let missing_link = icbridge(&["serve"], &[("REPLY_TEMPLATE", "Hello there".into())]).await;
    assert_eq!(missing_link.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing_link.stderr).into_owned();
    assert!(
        err.contains("ICB_REPLY_TEMPLATE: must contain {{ guest_url }} (or {guest_url})"),
        "{err}"
    );

    let too_long = format!("{} {{guest_url}}", "x".repeat(3000));
    let output = icbridge(&["serve"], &[("REPLY_TEMPLATE", too_long)]).await;
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        err.contains("ICB_REPLY_TEMPLATE: renders to") && err.contains("4000"),
        "{err}"
    );
}
