//! Events for the systems of record beyond the conversations': appointments, opt-outs and
//! erasure; retention; `GET /api/events`; a receiver's `410`; `icbridge events`; and
//! subscriptions that take only some types or desks.

use std::time::Duration;

use icbridge::domain::clock::rfc3339;
use icbridge::domain::events::{rfc3339_ms, TypePattern};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::events::{deliver_all, Received, Receiver};
use crate::helpers::*;
use crate::opt_out::customer_texts;

const MINUTE: i64 = 60_000;
const CUSTOMER: &str = "+14155550123";
const MASKED: &str = "+1415•••0123";

/// An app that writes to customers by SMS, with the admin API and `subscriptions`.
async fn ops_app(db: TestDb, subscriptions: Vec<Subscription>) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("REPLY_MODE", "connect");
    upstreams.set("ADMIN_TOKEN", ADMIN_TOKEN);
    upstreams.subscriptions = subscriptions;
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    mount_sms_accepted(&app.connect).await;
    app
}

/// What a receiver got of the types starting with `prefix`, in order.
async fn got(receiver: &Receiver, prefix: &str) -> Vec<Received> {
    receiver
        .received()
        .await
        .into_iter()
        .filter(|r| r.kind().starts_with(prefix))
        .collect()
}

fn kinds(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.kind().to_string()).collect()
}

async fn events_api(app: &TestApp, query: &str) -> Value {
    let response = admin(app, reqwest::Method::GET, &format!("/api/events{query}")).await;
    assert_eq!(response.status(), 200, "GET /api/events{query}");
    response.json().await.unwrap()
}

fn types_of(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

fn cli_vars(app: &TestApp) -> Vec<(&str, String)> {
    app.vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect()
}

/// Books a consultation `minutes` from now; the appointment as the API answers.
async fn book_in(app: &TestApp, minutes: i64) -> (Value, i64) {
    let starts_at = (app.clock.now_ms() / 1000) * 1000 + minutes * MINUTE;
    let body = json!({
        "channel": "sms", "customer": CUSTOMER, "to": "56263", "name": "Ann",
        "startsAt": rfc3339(starts_at), "durationMinutes": 30,
    });
    let response = app
        .http
        .post(format!("{}/api/appointments", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    (response.json().await.unwrap(), starts_at)
}

db_test! {
    async fn an_appointment_is_booked_reminded_and_cancelled_each_once(db) {
        let receiver = Receiver::start().await;
        receiver.accept().await;
        let app = ops_app(db, vec![receiver.subscription("crm")]).await;
        let (appointment, start) = book_in(&app, 120).await;
        deliver_all(&app).await;
        // At the reminder's time the reminder goes, and so does its event.
        app.clock.set(start - 15 * MINUTE);
        deliver_all(&app).await;
        deliver_all(&app).await;
        let id = appointment["id"].as_str().unwrap();
        let cancelled = admin(&app, reqwest::Method::DELETE, &format!("/api/appointments/{id}")).await;
        assert!(cancelled.status().is_success(), "{}", cancelled.status());
        deliver_all(&app).await;

        let received = got(&receiver, "appointment.").await;
        assert_eq!(
            kinds(&received),
            ["appointment.booked", "appointment.reminded", "appointment.cancelled"]
        );
        for event in &received {
            let data = &event.body["data"];
            assert_eq!(data["appointment_id"], id);
            assert_eq!(data["starts_at"], rfc3339_ms(start));
            assert_eq!(data["ends_at"], rfc3339_ms(start + 30 * MINUTE));
            assert_eq!(data["desk"], "default");
            assert_eq!(data["conversation_id"], appointment["conversationId"]);
            assert_eq!(data["customer"], MASKED);
        }
        // The cancellation closed its conversation: that is told too, after it.
        let closed = got(&receiver, "conversation.closed").await;
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].body["data"]["closed_by"], "appointment cancelled");
        assert_eq!(closed[0].body["data"]["conversation_id"], appointment["conversationId"]);
    }
}

db_test! {
    async fn stop_then_start_are_customer_events_in_their_order(db) {
        let receiver = Receiver::start().await;
        receiver.accept().await;
        let app = ops_app(db, vec![receiver.subscription("crm")]).await;
        customer_texts(&app, "m-1", "STOP").await;
        // A second STOP changes nothing: no event.
        customer_texts(&app, "m-2", "STOP").await;
        customer_texts(&app, "m-3", "START").await;
        deliver_all(&app).await;

        let received = got(&receiver, "customer.").await;
        assert_eq!(kinds(&received), ["customer.opted_out", "customer.opted_in"]);
        for event in &received {
            assert_eq!(event.body["data"]["channel"], "sms");
            assert_eq!(event.body["data"]["business"], "56263");
            assert_eq!(event.body["data"]["customer"], MASKED);
        }
    }
}

db_test! {
    async fn an_erasure_deletes_the_customers_events_and_leaves_only_that_they_were_erased(db) {
        let receiver = Receiver::start().await;
        receiver.accept().await;
        let mut full = Receiver::start().await.subscription("full");
        full.include.customer_number = true;
        full.events = vec![TypePattern::parse("message.*").unwrap()];
        let app = ops_app(db, vec![receiver.subscription("crm"), full]).await;
        let answer: Value = app
            .post_signed(&fixture("connect-sms-mo.json"))
            .await
            .json()
            .await
            .unwrap();
        let conversation = answer["conversationId"].as_str().unwrap().to_string();
        customer_texts(&app, "m-1", "STOP").await;
        let before = events_api(&app, "").await;
        assert!(types_of(&before).len() >= 4, "{before}");

        let erased = admin(&app, reqwest::Method::POST, &format!("/api/customers/{CUSTOMER}/erase")).await;
        assert_eq!(erased.status(), 200);
        let after = events_api(&app, "").await;
        assert_eq!(types_of(&after), ["customer.erased"], "{after}");
        let data = &after["events"][0]["data"];
        assert_eq!(data["conversations"], json!([conversation]));
        assert_eq!(data["customer"], MASKED);
        // Masked for every subscription: nothing of the number is left to send.
        let full = events_api(&app, "?subscription=full").await;
        assert_eq!(full["events"][0]["data"]["customer"], MASKED);
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event_id IS NOT NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(queued, 1, "only customer.erased waits to be sent");
        // What was sent before stays sent; the erasure is the last the receiver hears.
        deliver_all(&app).await;
        let received = receiver.received().await;
        let last = received.last().unwrap();
        assert_eq!(last.kind(), "customer.erased");
        assert_eq!(received.iter().filter(|r| r.kind() == "customer.erased").count(), 1);
        assert!(!last.body.to_string().contains("14155550123"));
    }
}

db_test! {
    async fn retention_deletes_the_events_that_occurred_before_it(db) {
        // Events are kept while a subscription is configured.
        let receiver = Receiver::start().await;
        receiver.accept().await;
        let app = ops_app(db, vec![receiver.subscription("crm")]).await;
        app.post_signed(&fixture("connect-sms-mo.json")).await;
        let old = types_of(&events_api(&app, "").await).len() as u64;
        assert!(old >= 3);
        app.clock.advance(Duration::from_secs(2 * 86_400));
        customer_texts(&app, "m-1", "STOP").await;

        let report = app.bridge.purge(Duration::from_secs(86_400)).await.unwrap();
        assert_eq!(report.events_deleted, old);
        assert_eq!(types_of(&events_api(&app, "").await), ["customer.opted_out"]);
    }
}

db_test! {
    async fn the_events_api_pages_filters_and_shows_what_a_subscription_would_get(db) {
        let mut emr = Receiver::start().await.subscription("emr");
        emr.include = Includes { texts: true, customer_number: true, ..Includes::default() };
        let app = ops_app(db, vec![emr]).await;
        app.post_signed(&fixture("connect-sms-mo.json")).await;

        let all = events_api(&app, "").await;
        assert_eq!(types_of(&all), ["conversation.opened", "message.received", "meeting.created"]);
        assert!(all.get("next").is_none(), "{all}");
        for event in all["events"].as_array().unwrap() {
            assert!(event["id"].as_str().unwrap().starts_with("evt_"));
            assert!(event["timestamp"].is_string());
        }
        // By default: numbers masked, no texts.
        assert_eq!(all["events"][0]["data"]["customer"], MASKED);
        assert!(all["events"][1]["data"].get("text").is_none(), "{all}");
        assert!(!all.to_string().contains("14155550123"));

        let first = events_api(&app, "?limit=2").await;
        assert_eq!(types_of(&first), ["conversation.opened", "message.received"]);
        let next = first["next"].as_str().unwrap().to_string();
        assert_eq!(first["events"][1]["id"], next.as_str());
        let second = events_api(&app, &format!("?limit=2&after={next}")).await;
        assert_eq!(types_of(&second), ["meeting.created"]);
        assert!(second.get("next").is_none());

        let filtered = events_api(&app, "?type=meeting.created,conversation.opened").await;
        assert_eq!(types_of(&filtered), ["conversation.opened", "meeting.created"]);
        let later = rfc3339(app.clock.now_ms() + MINUTE).replace('+', "%2B");
        assert!(types_of(&events_api(&app, &format!("?since={later}")).await).is_empty());

        // As the subscription `emr` gets them.
        let emr = events_api(&app, "?subscription=emr&type=message.received").await;
        assert_eq!(emr["events"][0]["data"]["customer"], CUSTOMER);
        assert!(emr["events"][0]["data"]["text"].is_string(), "{emr}");

        for bad in ["?since=yesterday", "?type=conversation.close", "?after=x", "?limit=0", "?subscription=nope"] {
            let response = admin(&app, reqwest::Method::GET, &format!("/api/events{bad}")).await;
            assert_eq!(response.status(), 422, "{bad}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid", "{bad}: {body}");
        }
        let unauthorized = app.http.get(format!("{}/api/events", app.address)).send().await.unwrap();
        assert_eq!(unauthorized.status(), 401);
        assert!(app.openapi().await["paths"]["/api/events"]["get"].is_object());
    }
}

db_test! {
    async fn a_410_disables_the_subscription_until_the_cli_enables_it(db) {
        let receiver = Receiver::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(410))
            .up_to_n_times(1)
            .mount(&receiver.server)
            .await;
        receiver.accept().await;
        let app = ops_app(db, vec![receiver.subscription("crm")]).await;
        app.post_signed(&fixture("connect-sms-mo.json")).await;
        deliver_all(&app).await;
        app.clock.advance(Duration::from_secs(86_400));
        deliver_all(&app).await;
        assert_eq!(receiver.server.received_requests().await.unwrap().len(), 1);
        let states: Vec<String> = sqlx::query_scalar(
            "SELECT state FROM outbox WHERE event_id IS NOT NULL ORDER BY id",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        assert_eq!(states, ["dead", "dead", "dead"]);

        // Disabled: nothing is queued for it.
        customer_texts(&app, "m-1", "STOP").await;
        deliver_all(&app).await;
        assert_eq!(receiver.server.received_requests().await.unwrap().len(), 1);

        let vars = cli_vars(&app);
        let enabled = crate::cli::icbridge(&["events", "enable", "crm"], &vars).await;
        assert!(enabled.status.success(), "{}", String::from_utf8_lossy(&enabled.stderr));
        assert!(String::from_utf8_lossy(&enabled.stdout).contains("is enabled"));
        let unknown = crate::cli::icbridge(&["events", "enable", "nope"], &vars).await;
        assert!(!unknown.status.success());
        let audit = app.stored().audited(&["enable"]).await;
        assert_eq!(audit.len(), 1);
        assert!(audit[0].actor.starts_with("cli:"), "{:?}", audit[0].actor);

        customer_texts(&app, "m-2", "START").await;
        deliver_all(&app).await;
        assert_eq!(got(&receiver, "customer.").await.iter().map(|r| r.kind().to_string()).collect::<Vec<_>>(), ["customer.opted_in"]);
    }
}

db_test! {
    async fn a_resend_delivers_the_same_events_again_with_their_webhook_ids(db) {
        let receiver = Receiver::start().await;
        receiver.accept().await;
        let app = ops_app(db, vec![receiver.subscription("crm")]).await;
        app.post_signed(&fixture("connect-sms-mo.json")).await;
        deliver_all(&app).await;
        let first: Vec<String> = receiver.received().await.into_iter().map(|r| r.webhook_id).collect();
        assert_eq!(first.len(), 3);

        let since = rfc3339(app.clock.now_ms() - MINUTE);
        let vars = cli_vars(&app);
        let resent = crate::cli::icbridge(
            &["events", "resend", "--since", &since, "--subscription", "crm"],
            &vars,
        )
        .await;
        assert!(resent.status.success(), "{}", String::from_utf8_lossy(&resent.stderr));
        assert!(String::from_utf8_lossy(&resent.stdout).starts_with("3 "), "{}", String::from_utf8_lossy(&resent.stdout));
        let unknown = crate::cli::icbridge(
            &["events", "resend", "--since", &since, "--subscription", "nope"],
            &vars,
        )
        .await;
        assert!(!unknown.status.success());
        // Queued at the CLI's time, a little after the app's.
        app.clock.advance(Duration::from_secs(60));
        deliver_all(&app).await;
        let all: Vec<String> = receiver.received().await.into_iter().map(|r| r.webhook_id).collect();
        assert_eq!(all[3..], first[..]);
        assert_eq!(app.stored().audited(&["resend"]).await.len(), 1);
    }
}

db_test! {
    async fn subscriptions_get_only_the_types_and_desks_they_ask_for(db) {
        let (all, conversations, clinic) =
            (Receiver::start().await, Receiver::start().await, Receiver::start().await);
        for receiver in [&all, &conversations, &clinic] {
            receiver.accept().await;
        }
        let mut only_conversations = conversations.subscription("conversations");
        only_conversations.events = vec![TypePattern::parse("conversation.*").unwrap()];
        let mut only_clinic = clinic.subscription("clinic");
        only_clinic.desks = Some(vec!["clinic".into()]);
        let app = ops_app(db, vec![all.subscription("all"), only_conversations, only_clinic]).await;
        app.post_signed(&fixture("connect-sms-mo.json")).await;
        customer_texts(&app, "m-1", "STOP").await;
        deliver_all(&app).await;

        let everything = all.types().await;
        for kind in ["conversation.opened", "message.received", "meeting.created", "customer.opted_out"] {
            assert!(everything.iter().any(|k| k == kind), "{kind} in {everything:?}");
        }
        assert!(conversations.types().await.iter().all(|k| k.starts_with("conversation.")));
        assert!(conversations.types().await.iter().any(|k| k == "conversation.opened"));
        // The default desk's conversation is not the clinic's; an opt-out is every desk's.
        assert_eq!(clinic.types().await, ["customer.opted_out"]);
    }
}

#[tokio::test]
async fn the_cli_prints_a_fresh_signing_secret() {
    let output = crate::cli::icbridge(&["events", "secret"], &[]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let secret = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(WebhookSecret::parse(&secret).is_ok());
}
