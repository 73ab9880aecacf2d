//! Every intake request proves itself over the raw body, before anything is parsed or stored.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha512;

use crate::helpers::*;

async fn assert_refused(app: &TestApp, response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(body["message"].as_str().unwrap().len() > 10);
    assert_eq!(app.stored().counts().await, (0, 0, 0, 0));
    assert!(app.broker_requests().await.is_empty());
}

db_test! {
    async fn sha256_signatures_with_and_without_prefix_are_accepted(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let body = fixture("connect-sms-mo.json");
    let digest = sign_sha256(body.as_bytes());
    assert_eq!(app.post_with_signature(&body, &digest).await.status(), 200);
    let body = fixture("connect-whatsapp-mo.json");
    let prefixed = format!("sha256={}", sign_sha256(body.as_bytes()));
    assert_eq!(
        app.post_with_signature(&body, &prefixed).await.status(),
        200
    );
}
}

db_test! {
    async fn sha512_signatures_are_accepted(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let body = fixture("connect-sms-mo.json");
    let mut mac = Hmac::<Sha512>::new_from_slice(HUB_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let digest = hex::encode(mac.finalize().into_bytes());
    assert_eq!(digest.len(), 128);
    assert_eq!(app.post_with_signature(&body, &digest).await.status(), 200);
    let body = fixture("connect-whatsapp-mo.json");
    let mut mac = Hmac::<Sha512>::new_from_slice(HUB_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let prefixed = format!("sha512={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        app.post_with_signature(&body, &prefixed).await.status(),
        200
    );
}
}

db_test! {
    async fn a_signature_of_other_bytes_is_refused(db) {
    let app = spawn_app(db).await;
    let body = fixture("connect-sms-mo.json");
    // Signed before a byte changed: re-serialised JSON is not the raw body.
    let signature = sign_sha256(body.as_bytes());
    let altered = body.replacen("14155550123", "14155550124", 1);
    let response = app.post_with_signature(&altered, &signature).await;
    assert_refused(&app, response).await;
}
}

db_test! {
    async fn malformed_and_missing_credentials_are_refused(db) {
    let app = spawn_app(db).await;
    let body = fixture("connect-sms-mo.json");
    for signature in ["not-hex", "sha1=abcdef", "", "sha256="] {
        let response = app.post_with_signature(&body, signature).await;
        assert_refused(&app, response).await;
    }
    let unsigned = app
        .http
        .post(format!("{}/webhooks/connect", app.address))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_refused(&app, unsigned).await;
    let wrong_token = app
        .http
        .post(format!("{}/webhooks/connect", app.address))
        .bearer_auth("not-the-token")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_refused(&app, wrong_token).await;
}
}

db_test! {
    async fn the_bearer_token_is_accepted(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    assert_eq!(
        app.post_flow(&fixture("flow-whatsapp.json")).await.status(),
        200
    );
}
}

db_test! {
    async fn serve_refuses_to_start_without_webhook_credentials(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .unset("CONNECT_WEBHOOK_SECRET")
        .unset("CONNECT_WEBHOOK_TOKEN");
    let error = upstreams
        .build()
        .await
        .err()
        .expect("start-up must fail")
        .to_string();
    assert!(error.contains("ICB_CONNECT_WEBHOOK_SECRET"), "{error}");
    assert!(error.contains("ICB_CONNECT_WEBHOOK_TOKEN"), "{error}");
}
}

db_test! {
    async fn only_the_configured_method_is_accepted(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.unset("CONNECT_WEBHOOK_SECRET");
    let app = upstreams.spawn().await;
    // A correct-looking signature means nothing without a configured secret.
    let body = fixture("connect-sms-mo.json");
    let response = app.post_signed(&body).await;
    assert_refused(&app, response).await;
}
}
