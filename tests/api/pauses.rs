//! Upstreams that say "slow down" or "your credential is gone": every delivery to them
//! waits, on every instance, without using up its retries; nothing goes dead.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cli::icbridge;
use crate::helpers::*;
use icbridge::domain::clock::Clock;

/// An app whose Webex answered a first conversation's notification as `webex_says` (and
/// answers everything after it with 200), with two more conversations queued since, in
/// connect mode (their replies by SMS).
async fn app_with_three_notifications(db: TestDb, webex_says: ResponseTemplate) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .set("REPLY_MODE", "connect")
        .set("RETRY_SCHEDULE", "1s");
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(webex_says)
        .up_to_n_times(1)
        .mount(&app.webex)
        .await;
    mount_webex_messages(&app.webex).await;
    mount_sms_accepted(&app.connect).await;
    for (n, customer) in ["+14155550101", "+14155550102", "+14155550103"]
        .iter()
        .enumerate()
    {
        let body = json!({"channel": "sms", "from": customer, "to": "56263", "text": "hi"});
        assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
        if n == 0 {
            app.worker.run_once().await.unwrap();
        }
    }
    app
}

async fn webex_calls(webex: &MockServer) -> usize {
    webex
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1/messages")
        .count()
}

/// (state, attempts) of the outbox's rows of one kind, in order.
async fn states_and_attempts(app: &TestApp, kind: &str) -> Vec<(String, i64)> {
    let rows = app.stored().outbox_of_kind(kind).await.into_iter();
    rows.map(|row| (row.state, row.attempts)).collect()
}

/// (state, attempts) of the expert notifications, in order.
async fn notifications(app: &TestApp) -> Vec<(String, i64)> {
    states_and_attempts(app, "expert_notification").await
}

async fn metric(app: &TestApp, name_and_labels: &str) -> String {
    let page = app.metrics_page().await;
    page.lines()
        .find(|line| line.starts_with(name_and_labels))
        .unwrap_or_else(|| panic!("{name_and_labels} in\n{page}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

fn too_many_requests(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("Retry-After", retry_after)
        .set_body_raw(fixture("webex-error-429.json"), "application/json")
}

db_test! {
    async fn a_429_holds_back_every_row_for_that_upstream_for_as_long_as_it_asked(db) {
        let app = app_with_three_notifications(db, too_many_requests("30")).await;
        app.worker.run_once().await.unwrap();
        // One call to Webex, refused; the notifications queued since were not even tried.
        // The other conversations' replies go through Webex Connect, which asked nothing;
        // the first conversation's waits behind its notification (a conversation's
        // deliveries keep their order).
        assert_eq!(webex_calls(&app.webex).await, 1);
        assert_eq!(notifications(&app).await, vec![("pending".to_string(), 0); 3]);
        assert_eq!(app.stored().outbox_of_kind("customer_reply").await.iter().filter(|row| row.state == "sent").count(), 2);
        assert_eq!(metric(&app, "icbridge_upstream_paused_seconds{upstream=\"webex\"}").await, "30");
        let listed = icbridge(&["outbox", "list"], &[("DATABASE_URL", app.database_url.clone())]).await;
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(listed.starts_with("webex: paused until "), "{listed}");

        app.clock.advance(Duration::from_secs(29));
        app.worker.run_once().await.unwrap();
        assert_eq!(webex_calls(&app.webex).await, 1, "no call before the 30 s are up");

        app.clock.advance(Duration::from_secs(1));
        assert_eq!(app.worker.run_once().await.unwrap(), 4, "3 notifications and a reply");
        assert_eq!(webex_calls(&app.webex).await, 4);
        assert_eq!(notifications(&app).await, vec![("sent".to_string(), 1); 3]);
    }
}

db_test! {
    async fn an_http_date_retry_after_is_a_time_and_long_ones_are_cut_to_an_hour(db) {
        let in_a_minute = std::time::UNIX_EPOCH
            + Duration::from_millis(Clock::system().now_ms() as u64)
            + Duration::from_secs(60);
        for (asked, wait) in [
            (httpdate::fmt_http_date(in_a_minute), Duration::from_secs(60)),
            ("7200".to_string(), Duration::from_secs(3600)),
            // More seconds than fit in a timestamp: an hour too, not an overflow.
            ("18446744073709551615".to_string(), Duration::from_secs(3600)),
        ] {
            let app = app_with_three_notifications(db, too_many_requests(&asked)).await;
            app.clock.advance(wait - Duration::from_secs(2));
            app.worker.run_once().await.unwrap();
            assert_eq!(webex_calls(&app.webex).await, 1, "{asked}: waited");
            app.clock.advance(Duration::from_secs(2));
            app.worker.run_once().await.unwrap();
            assert_eq!(webex_calls(&app.webex).await, 4, "{asked}: and no longer");
        }
    }
}

db_test! {
    async fn a_retry_after_of_no_time_is_a_failure_on_the_rows_own_schedule(db) {
        let an_hour_ago = std::time::UNIX_EPOCH
            + Duration::from_millis(Clock::system().now_ms() as u64)
            - Duration::from_secs(3600);
        for asked in ["0".to_string(), httpdate::fmt_http_date(an_hour_ago), "soon".to_string()] {
            let app = app_with_three_notifications(db, too_many_requests(&asked)).await;
            // Refused once: no pause, and the row is not tried again at once...
            for _ in 0..5 {
                app.worker.run_once().await.unwrap();
            }
            assert_eq!(webex_calls(&app.webex).await, 3, "{asked}: the first, then the other two");
            assert_eq!(metric(&app, "icbridge_upstream_paused_seconds{upstream=\"webex\"}").await, "0");
            // ... but when its schedule says (1 s), the attempt counted.
            app.clock.advance(Duration::from_secs(2));
            app.worker.run_once().await.unwrap();
            assert_eq!(webex_calls(&app.webex).await, 4, "{asked}");
            assert_eq!(notifications(&app).await[0], ("sent".to_string(), 2), "{asked}");
        }
    }
}

db_test! {
    async fn webex_connects_rate_limit_7020_pauses_the_replies(db) {
        let app = spawn_replying_app(db).await;
        Mock::given(method("POST"))
            .and(path("/resources/v1/messaging"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!(
                {"response": {"code": "7020", "description": "Rate limit exceeded", "transid": "t"}}
            )))
            .up_to_n_times(1)
            .mount(&app.connect)
            .await;
        mount_whatsapp_queued(&app.connect).await;
        for customer in ["14155550101", "14155550102"] {
            let body = json!({"channel": "whatsapp", "from": customer, "to": "a_1", "text": "hi"});
            assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
            app.worker.run_once().await.unwrap();
        }
        let replies = |app| states_and_attempts(app, "customer_reply");
        assert_eq!(replies(&app).await, vec![("pending".to_string(), 0); 2]);
        assert_eq!(app.connect.received_requests().await.unwrap().len(), 1);
        app.clock.advance(Duration::from_secs(29));
        app.worker.run_once().await.unwrap();
        assert_eq!(app.connect.received_requests().await.unwrap().len(), 1);
        app.clock.advance(Duration::from_secs(1));
        app.worker.run_once().await.unwrap();
        assert_eq!(replies(&app).await, vec![("sent".to_string(), 1); 2]);
    }
}

db_test! {
    async fn another_instance_respects_the_pause(db) {
        let app = app_with_three_notifications(db, too_many_requests("30")).await;
        let other = app.another_instance().await;
        assert_eq!(webex_calls(&app.webex).await, 1);
        // The other instance never saw the 429: the database tells it.
        other.clock.advance(Duration::from_secs(10));
        other.worker.run_once().await.unwrap();
        assert_eq!(webex_calls(&app.webex).await, 1);
        other.clock.advance(Duration::from_secs(20));
        assert_eq!(other.worker.run_once().await.unwrap(), 4, "3 notifications and a reply");
        assert_eq!(notifications(&app).await, vec![("sent".to_string(), 1); 3]);
    }
}

db_test! {
    async fn a_refused_token_leaves_rows_pending_until_a_probe_succeeds(db) {
        let app = app_with_three_notifications(
            db,
            ResponseTemplate::new(401).set_body_json(json!({"message": "The request requires a valid access token set in the Authorization request header."})),
        )
        .await;
        // The probe, GET /people/me, is refused too at first.
        Mock::given(method("GET"))
            .and(path("/v1/people/me"))
            .respond_with(ResponseTemplate::new(401))
            .up_to_n_times(1)
            .mount(&app.webex)
            .await;
        app.worker.run_once().await.unwrap();
        assert_eq!(webex_calls(&app.webex).await, 1);
        assert_eq!(notifications(&app).await, vec![("pending".to_string(), 0); 3]);
        assert_eq!(metric(&app, "icbridge_upstream_credential_ok{upstream=\"webex\"}").await, "0");
        assert_eq!(metric(&app, "icbridge_upstream_credential_ok{upstream=\"connect\"}").await, "1");
        let ready = app.http.get(format!("{}/readyz", app.address)).send().await.unwrap();
        assert_eq!(ready.status(), 200, "intake goes on");
        let ready: Value = ready.json().await.unwrap();
        assert!(ready["credentials"]["webex"].as_str().unwrap().starts_with("refused since"), "{ready}");
        assert_eq!(ready["credentials"]["connect"], "ok");
        let checked = icbridge(&["check"], &[("DATABASE_URL", app.database_url.clone())]).await;
        let checked = String::from_utf8_lossy(&checked.stdout).into_owned();
        assert!(checked.contains("failed  webex credential: refused since"), "{checked}");
        // Messages are still answered meanwhile.
        let later = json!({"channel": "sms", "from": "+14155550104", "to": "56263", "text": "hi"});
        assert_eq!(app.post_flow(&later.to_string()).await.status(), 200);

        // A minute later the probe fails: nothing is tried.
        app.clock.advance(Duration::from_secs(60));
        app.worker.probe_credentials().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(webex_calls(&app.webex).await, 1);
        // The token works again (replaced, or Webex recovered): the next probe succeeds and
        // every notification goes out, once.
        Mock::given(method("GET"))
            .and(path("/v1/people/me"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!(
                {"id": "bot", "displayName": "icbridge", "emails": ["icbridge@webex.bot"]}
            )))
            .mount(&app.webex)
            .await;
        app.clock.advance(Duration::from_secs(60));
        app.worker.probe_credentials().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(webex_calls(&app.webex).await, 5);
        assert_eq!(notifications(&app).await, vec![("sent".to_string(), 1); 4]);
        assert_eq!(app.stored().outbox_in_state("dead").await.len(), 0);
        assert_eq!(metric(&app, "icbridge_upstream_credential_ok{upstream=\"webex\"}").await, "1");
    }
}

db_test! {
    async fn dead_rows_are_revived_in_bulk_by_kind_and_time(db) {
        let mut upstreams = Upstreams::start(db).await;
        upstreams
            .set("REPLY_MODE", "connect")
            .set("ADMIN_TOKEN", ADMIN_TOKEN);
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        // Webex refuses every notification for good (the bot is not in the space), Webex
        // Connect every reply (a bad number).
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "not found"})))
            .mount(&app.webex)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/sms/messages"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"code": "7004", "message": "Invalid parameter - to"})))
            .mount(&app.connect)
            .await;
        for (n, customer) in ["+14155550101", "+14155550102", "+14155550103"].iter().enumerate() {
            let body = json!({"channel": "sms", "from": customer, "to": "56263", "text": "hi"});
            assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
            if n == 0 {
                app.clock.advance(Duration::from_secs(3600));
            }
        }
        app.worker.run_once().await.unwrap();
        assert_eq!(app.stored().outbox_in_state("dead").await.len(), 6);

        let db = [("DATABASE_URL", app.database_url.clone())];
        let revived = icbridge(&["outbox", "retry", "--dead", "--kind", "customer_reply"], &db).await;
        assert!(revived.status.success(), "{}", String::from_utf8_lossy(&revived.stderr));
        assert!(String::from_utf8_lossy(&revived.stdout).starts_with("3 dead rows are due now"));
        assert_eq!(app.stored().outbox_in_state("dead").await.len(), 3);
        assert_eq!(app.stored().outbox_of_kind("customer_reply").await.iter().filter(|row| row.state == "pending" && row.attempts == 0).count(), 3);

        // The admin API: the notifications queued since the first hour.
        let since = time::OffsetDateTime::from_unix_timestamp(app.clock.now_ms() / 1000 - 60)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let revived: Value = app
            .http
            .post(format!("{}/api/outbox/retry", app.address))
            .query(&[("kind", "expert_notification"), ("since", since.as_str())])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(revived, json!({"status": "pending", "count": 2}));
        assert_eq!(app.stored().outbox_in_state("dead").await.len(), 1, "the old one stays dead");
        // One by one still works.
        let id = app.stored().outbox_in_state("dead").await[0].id;
        let one = icbridge(&["outbox", "retry", &id.to_string()], &db).await;
        assert!(one.status.success());
        assert_eq!(app.stored().outbox_in_state("dead").await.len(), 0);
    }
}

db_test! {
    async fn a_wrong_token_shows_on_start_up_before_any_notification(db) {
        let app = spawn_replying_app(db).await;
        Mock::given(method("GET"))
            .and(path("/v1/people/me"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&app.webex)
            .await;
        app.worker.probe_on_start_up().await.unwrap();
        let ready: Value = app.http.get(format!("{}/readyz", app.address)).send().await.unwrap().json().await.unwrap();
        assert!(ready["credentials"]["webex"].as_str().unwrap().starts_with("refused since"), "{ready}");
        assert_eq!(metric(&app, "icbridge_upstream_credential_ok{upstream=\"webex\"}").await, "0");
        // The first customer is answered; the notification waits for a token that works.
        let body = json!({"channel": "sms", "from": "+14155550101", "to": "56263", "text": "hi"});
        assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
        app.worker.run_once().await.unwrap();
        assert_eq!(webex_calls(&app.webex).await, 0);
        assert_eq!(notifications(&app).await, vec![("pending".to_string(), 0)]);
    }
}

db_test! {
    async fn an_unreachable_webex_on_start_up_says_nothing_of_the_token(db) {
        let app = spawn_app(db).await;
        Mock::given(method("GET"))
            .and(path("/v1/people/me"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&app.webex)
            .await;
        app.worker.probe_on_start_up().await.unwrap();
        let ready: Value = app.http.get(format!("{}/readyz", app.address)).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["credentials"]["webex"], "ok");
        let asked = app.webex.received_requests().await.unwrap();
        assert_eq!(asked.iter().filter(|r| r.url.path() == "/v1/people/me").count(), 1);
    }
}

db_test! {
    async fn webex_connects_7001_with_a_400_status_is_a_refused_key_not_a_dead_reply(db) {
        let app = spawn_replying_app(db).await;
        // The vendor's reference shows the key's refusal with HTTP 400 as well as 200.
        Mock::given(method("POST"))
            .and(path("/resources/v1/messaging"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!(
                {"response": {"code": "7001", "description": "Authentication failed.", "transid": "t"}}
            )))
            .mount(&app.connect)
            .await;
        let body = json!({"channel": "whatsapp", "from": "14155550101", "to": "a_1", "text": "hi"});
        assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
        app.worker.run_once().await.unwrap();
        let replies = states_and_attempts(&app, "customer_reply").await;
        assert_eq!(replies[0], ("pending".to_string(), 0));
        let ready: Value = app.http.get(format!("{}/readyz", app.address)).send().await.unwrap().json().await.unwrap();
        assert!(ready["credentials"]["connect"].as_str().unwrap().starts_with("refused since"), "{ready}");
    }
}

db_test! {
    async fn a_token_replaced_and_restarted_delivers_at_once(db) {
        let app = app_with_three_notifications(db, ResponseTemplate::new(401)).await;
        assert_eq!(notifications(&app).await, vec![("pending".to_string(), 0); 3]);
        // The token is replaced and the service restarted, well before the next probe a
        // minute later: the new process tries the token at once.
        Mock::given(method("GET"))
            .and(path("/v1/people/me"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "bot"})))
            .mount(&app.webex)
            .await;
        let restarted = app.another_instance().await;
        restarted.worker.probe_on_start_up().await.unwrap();
        restarted.worker.run_once().await.unwrap();
        assert_eq!(notifications(&app).await, vec![("sent".to_string(), 1); 3]);
        let asked = app.webex.received_requests().await.unwrap();
        assert_eq!(asked.iter().filter(|r| r.url.path() == "/v1/people/me").count(), 1);
    }
}
