//! The outbox: backoff, Retry-After, dead letters, leases, and the operator's verbs.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::cli::icbridge;
use crate::helpers::*;

async fn app_with_schedule(db: TestDb, schedule: &str) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("RETRY_SCHEDULE", schedule);
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    assert_eq!(
        app.post_signed(&fixture("connect-sms-mo.json"))
            .await
            .status(),
        200
    );
    app
}

async fn outbox_row(app: &TestApp) -> (String, i64, i64, Option<String>) {
    let row = app.stored().the_outbox_row().await;
    (row.state, row.attempts, row.next_attempt_at, row.last_error)
}

db_test! {
    async fn backoff_follows_the_schedule_with_jitter(db) {
    let app = app_with_schedule(db, "1s,5m").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.webex)
        .await;
    let before = app.clock.now_ms();
    app.worker.run_once().await.unwrap();
    let after = app.clock.now_ms();
    let (state, attempts, next, _) = outbox_row(&app).await;
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    // 1 s ± 20%.
    assert!(
        next - before >= 800 && next - after <= 1200,
        "next attempt in {} ms",
        next - before
    );
    // Not due yet: nothing is claimed.
    assert_eq!(app.worker.run_once().await.unwrap(), 0);
}
}

db_test! {
    async fn the_end_of_the_schedule_makes_the_row_dead(db) {
    let app = app_with_schedule(db, "1ms,1ms").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"message": "boom", "trackingId": "T-500"})),
        )
        .expect(3)
        .mount(&app.webex)
        .await;
    for _ in 0..5 {
        app.worker.run_once().await.unwrap();
        app.clock.advance(Duration::from_millis(3));
    }
    let (state, attempts, _, error) = outbox_row(&app).await;
    assert_eq!((state.as_str(), attempts), ("dead", 3));
    let error = error.unwrap();
    assert!(error.contains("boom") && error.contains("T-500"), "{error}");
}
}

db_test! {
    async fn request_timeouts_and_408_409_425_are_retried_but_other_4xx_are_not(db) {
    for (status, retried) in [
        (408, true),
        (409, true),
        (425, true),
        (404, false),
        (403, false),
    ] {
        let app = app_with_schedule(db, "1h").await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&app.webex)
            .await;
        app.worker.run_once().await.unwrap();
        let (state, _, _, _) = outbox_row(&app).await;
        assert_eq!(
            state,
            if retried { "pending" } else { "dead" },
            "HTTP {status}"
        );
    }
}
}

db_test! {
    async fn a_row_claimed_by_a_crashed_worker_comes_back_when_its_lease_runs_out(db) {
    let app = app_with_schedule(db, "1ms").await;
    mount_webex_messages(&app.webex).await;
    // Another worker claimed the row and died mid-send (the claim is written on purpose).
    sqlx::query("UPDATE outbox SET next_attempt_at = $1, leased_until = $1, attempts = 1")
        .bind(app.clock.now_ms() + 60_000)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.worker.run_once().await.unwrap(),
        0,
        "leased rows are left alone"
    );
    // The lease runs out.
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.worker.run_once().await.unwrap(), 1);
    let (state, attempts, _, _) = outbox_row(&app).await;
    assert_eq!((state.as_str(), attempts), ("sent", 2));
}
}

db_test! {
    async fn operators_list_dead_rows_and_retry_them(db) {
    let app = app_with_schedule(db, "1h").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "bot not in room", "trackingId": "T-403"})),
        )
        .up_to_n_times(1)
        .mount(&app.webex)
        .await;
    mount_webex_messages(&app.webex).await;
    app.worker.run_once().await.unwrap();
    let id = app.stored().the_outbox_row().await.id;

    let db = [("DATABASE_URL", app.database_url.clone())];
    let listed = icbridge(&["outbox", "list", "--status", "dead"], &db).await;
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with(&id.to_string()))
        .expect(&text);
    assert!(
        row.contains("expert_notification")
            && row.contains("dead")
            && row.contains("bot not in room"),
        "{row}"
    );
    let pending = icbridge(&["outbox", "list", "--status", "pending"], &db).await;
    assert_eq!(
        String::from_utf8_lossy(&pending.stdout).lines().count(),
        1,
        "only the header"
    );

    let retried = icbridge(&["outbox", "retry", &id.to_string()], &db).await;
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    let (state, attempts, _, _) = outbox_row(&app).await;
    assert_eq!((state.as_str(), attempts), ("pending", 0));
    // The command made it due as of its own clock's now, which this app's reaches soon.
    app.clock.advance(Duration::from_secs(60));
    app.worker.run_once().await.unwrap();
    assert_eq!(outbox_row(&app).await.0, "sent");

    // A sent row cannot be retried; an unknown one neither.
    let again = icbridge(&["outbox", "retry", &id.to_string()], &db).await;
    assert!(!again.status.success());
    let unknown = icbridge(&["outbox", "retry", "999"], &db).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("999"));
}
}
