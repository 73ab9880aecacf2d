//! Bad input gets a clear JSON error and changes nothing.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    body["message"].as_str().unwrap().to_string()
}

db_test! {
    async fn not_json_is_400_and_stores_nothing(db) {
    let app = spawn_app(db).await;
    assert_error(app.post_flow("{\"channel\": ").await, 400, "malformed_json").await;
    assert_error(app.post_signed("hello").await, 400, "malformed_json").await;
    let not_utf8 = app
        .http
        .post(format!("{}/webhooks/connect", app.address))
        .bearer_auth(FLOW_TOKEN)
        .body(vec![0x7b, 0xff, 0xfe, 0x7d])
        .send()
        .await
        .unwrap();
    let message = assert_error(not_utf8, 400, "malformed_json").await;
    assert!(message.contains("UTF-8"), "{message}");
    assert_eq!(app.stored().counts().await, (0, 0, 0, 0));
}
}

db_test! {
    async fn json_that_is_not_a_message_is_422_naming_the_field(db) {
    let app = spawn_app(db).await;
    let cases = [
        (json!({"channel": "sms", "from": "+14155550123"}), "`text`"),
        (
            json!({"channel": "sms", "text": "hi", "from": ""}),
            "field `from` is empty",
        ),
        (
            json!({"channel": "", "from": "+14155550123", "text": "hi"}),
            "field `channel` is empty",
        ),
        (
            json!({"channel": " ", "from": "+14155550123", "text": "hi"}),
            "field `channel` is empty",
        ),
        (
            json!({"channel": "pigeon", "from": "+14155550123", "text": "hi"}),
            "`channel`",
        ),
        (json!({"from": "+14155550123", "text": "hi"}), "`channel`"),
        (
            json!({"channel": "sms", "from": "alice", "text": "hi"}),
            "`from` is not a phone number",
        ),
        (
            json!({"channel": "whatsapp", "from": "$(n2.whatsapp.waId)", "text": "hi"}),
            "flow variable",
        ),
        (json!({"oa": "14155550123", "da": "56263"}), "`message`"),
        (
            json!({"oa": "14155550123", "message": "hi", "tid": {"x": 1}}),
            "`tid` must be a string",
        ),
        (json!({"waid": "14155550142", "appId": "a_1"}), "`message`"),
        (json!({"hello": "world"}), "not a message"),
        (json!(["a list"]), "JSON object"),
    ];
    for (body, expected) in cases {
        let message = assert_error(
            app.post_flow(&body.to_string()).await,
            422,
            "invalid_message",
        )
        .await;
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(app.stored().counts().await, (0, 0, 0, 0));
    assert!(app.broker_requests().await.is_empty());
}
}

db_test! {
    async fn a_body_over_64_kib_is_413(db) {
    let app = spawn_app(db).await;
    let text = "a".repeat(64 * 1024);
    let body = json!({"channel": "sms", "from": "+14155550123", "text": text}).to_string();
    assert_error(app.post_flow(&body).await, 413, "payload_too_large").await;
    assert_eq!(app.stored().counts().await, (0, 0, 0, 0));
}
}

db_test! {
    async fn a_failing_broker_is_503_and_the_message_is_kept(db) {
    let app = spawn_app(db).await;
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "message": "internal", "errors": [{"description": "internal"}], "trackingId": "T-1"
        })))
        .mount(&app.broker)
        .await;
    let message = assert_error(
        app.post_signed(&fixture("connect-sms-mo.json")).await,
        503,
        "upstream_unavailable",
    )
    .await;
    assert!(message.contains("kept"), "{message}");
    // The message is stored; no half-made conversation, meeting or notification.
    assert_eq!(app.stored().counts().await, (1, 0, 0, 0));
}
}

db_test! {
    async fn a_broker_answer_without_links_is_503(db) {
    let app = spawn_app(db).await;
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"host": [], "guest": []})))
        .mount(&app.broker)
        .await;
    assert_error(
        app.post_signed(&fixture("connect-sms-mo.json")).await,
        503,
        "upstream_unavailable",
    )
    .await;
    assert_eq!(app.stored().counts().await, (1, 0, 0, 0));
}
}

db_test! {
    async fn unknown_paths_are_json_404(db) {
    let app = spawn_app(db).await;
    let response = app
        .http
        .get(format!("{}/nope", app.address))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "not_found").await;
}
}

/// The JSON error body, checked to be JSON by its `Content-Type` too.
async fn json_error_of(response: reqwest::Response, status: u16, code: &str) -> String {
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(content_type, "application/json", "{status} {code}");
    assert_error(response, status, code).await
}

db_test! {
    async fn a_query_or_path_parameter_that_does_not_parse_is_json_422_naming_it(db) {
        let app = admin_and_console_app(db).await;
        use reqwest::Method;
        let cases = [
            (Method::GET, "/api/audit?limit=9223372036854775808", "`limit`"),
            (Method::GET, "/api/ratings?limit=0", "`limit`"),
            (Method::GET, "/api/conversations?limit=1001", "`limit`"),
            (Method::GET, "/api/outbox?limit=ten", "`limit`"),
            (Method::GET, "/api/appointments?limit=-1", "`limit`"),
            (Method::GET, "/api/conversations?state=lost", "`state`"),
            (Method::GET, "/api/outbox?state=lost", "`state`"),
            (Method::POST, "/api/outbox/retry?kind=fax", "`kind`"),
            (Method::POST, "/api/outbox/retry?since=yesterday", "`since`"),
            (Method::POST, "/api/outbox/abc/retry", "`id`"),
            (Method::POST, "/api/outbox/9223372036854775808/retry", "`id`"),
        ];
        for (verb, route, name) in cases {
            let response = admin(&app, verb.clone(), route).await;
            let message = json_error_of(response, 422, "invalid").await;
            assert!(message.contains(name), "{verb} {route}: {message}");
        }
        // The documented bounds themselves are taken.
        for route in ["/api/audit?limit=1", "/api/ratings?limit=1000", "/api/outbox?state=all&limit=1000"] {
            assert_eq!(admin(&app, Method::GET, route).await.status(), 200, "{route}");
        }
    }
}

db_test! {
    async fn a_body_of_another_type_or_size_or_shape_is_a_json_refusal(db) {
        let app = admin_and_console_app(db).await;
        let post = |route: &str| app.http.post(format!("{}{route}", app.address)).bearer_auth(ADMIN_TOKEN);
        let logout = post("/console/logout").send().await.unwrap();
        json_error_of(logout, 415, "unsupported_media_type").await;
        let text = post("/api/appointments").header("content-type", "text/plain").body("{}").send().await.unwrap();
        json_error_of(text, 415, "unsupported_media_type").await;
        let huge = json!({"channel": "sms", "note": "a".repeat(70_000)});
        let too_large = post("/api/appointments").json(&huge).send().await.unwrap();
        json_error_of(too_large, 413, "payload_too_large").await;
        let not_json = post("/api/appointments").header("content-type", "application/json").body("{").send().await.unwrap();
        json_error_of(not_json, 400, "invalid_json").await;
        let unknown = post("/api/appointments").json(&json!({"channel": "sms", "colour": "red"})).send().await.unwrap();
        let message = json_error_of(unknown, 422, "invalid").await;
        assert!(message.contains("`colour`"), "{message}");
        let wrong_type = post("/api/appointments").json(&json!({"durationMinutes": "half an hour"})).send().await.unwrap();
        let message = json_error_of(wrong_type, 422, "invalid").await;
        assert!(message.contains("`durationMinutes`"), "{message}");
        assert_eq!(app.count("appointments").await, 0);
    }
}
