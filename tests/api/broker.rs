//! The broker fails, times out and rate-limits: quick retries within the budget, then 503
//! with the message kept and nothing half-made.

use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

fn joseencrypt() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path("/api/v2/joseencrypt"))
}

db_test! {
    async fn a_500_then_200_is_retried_within_the_request(db) {
    let app = spawn_app(db).await;
    joseencrypt()
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&app.broker)
        .await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let response = app.post_signed(&fixture("connect-sms-mo.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.broker_requests().await.len(), 2);
    assert_eq!(app.stored().counts().await, (1, 1, 1, 1));
}
}

db_test! {
    async fn a_429_with_retry_after_is_honoured(db) {
    let app = spawn_app(db).await;
    joseencrypt()
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&app.broker)
        .await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let started = Instant::now();
    let response = app.post_signed(&fixture("connect-sms-mo.json")).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(app.broker_requests().await.len(), 2);
}
}

db_test! {
    async fn a_retry_after_beyond_the_budget_is_not_waited_for(db) {
    let app = spawn_app(db).await;
    joseencrypt()
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30"))
        .mount(&app.broker)
        .await;
    let started = Instant::now();
    let response = app.post_signed(&fixture("connect-sms-mo.json")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "30");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(app.broker_requests().await.len(), 1);
    // The wait is for every meeting: another customer's first message does not call the
    // broker before the 30 s are up, and does after.
    let other = serde_json::json!({"channel": "sms", "from": "+14155550199", "to": "56263", "text": "hi"});
    let refused = app.post_flow(&other.to_string()).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(app.broker_requests().await.len(), 1);
    app.broker.reset().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(app.post_flow(&other.to_string()).await.status(), 200);
}
}

db_test! {
    async fn a_slow_broker_times_out_and_is_retried_twice_then_503(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("IC_TIMEOUT", "300ms");
    let app = upstreams.spawn().await;
    joseencrypt()
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_raw(fixture("ic-joseencrypt-short.json"), "application/json"),
        )
        .mount(&app.broker)
        .await;
    let started = Instant::now();
    let response = app.post_signed(&fixture("connect-sms-mo.json")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unavailable");
    assert_eq!(
        app.broker_requests().await.len(),
        3,
        "one call and two retries"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "three timeouts of 300 ms and two short waits: {elapsed:?}"
    );
    assert_eq!(
        app.stored().counts().await,
        (1, 0, 0, 0),
        "message kept, nothing half-made"
    );
}
}

db_test! {
    async fn the_default_budget_stays_under_webex_connects_timeout(db) {
    // 4 s timeout per call; a broker that never answers in time.
    let app = spawn_app(db).await;
    joseencrypt()
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .mount(&app.broker)
        .await;
    let started = Instant::now();
    let response = app.post_signed(&fixture("connect-sms-mo.json")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(
        elapsed < Duration::from_millis(8500),
        "answered after {elapsed:?}"
    );
    assert!(app.broker_requests().await.len() >= 2);
}
}

db_test! {
    async fn a_refusal_is_not_retried(db) {
    let app = spawn_app(db).await;
    joseencrypt()
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            r#"{"message":"The request requires a valid access token","trackingId":"T-9"}"#,
            "application/json",
        ))
        .mount(&app.broker)
        .await;
    let response = app.post_signed(&fixture("connect-sms-mo.json")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(app.broker_requests().await.len(), 1);
}
}

db_test! {
    async fn after_the_broker_recovers_the_senders_retry_succeeds(db) {
    let app = spawn_app(db).await;
    joseencrypt()
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(3)
        .mount(&app.broker)
        .await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let body = fixture("connect-sms-mo.json");
    assert_eq!(app.post_signed(&body).await.status(), 503);
    assert_eq!(app.stored().counts().await, (1, 0, 0, 0));
    // Webex Connect sends the same message again.
    // Webex Connect retries a minute later.
    app.clock.advance(std::time::Duration::from_secs(60));
    let retry = app.post_signed(&body).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(app.stored().counts().await, (1, 1, 1, 1), "still one message");
}
}
