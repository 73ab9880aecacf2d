//! Bursts and duplicates: one meeting per conversation, guaranteed by the database.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

fn message(customer: &str, id: &str) -> String {
    message_with_text(customer, id, "hello")
}

fn message_with_text(customer: &str, id: &str, text: &str) -> String {
    json!({"channel": "sms", "from": customer, "to": "56263", "text": text, "messageId": id})
        .to_string()
}

db_test! {
    async fn twenty_simultaneous_first_messages_make_one_meeting(db) {
    let app = spawn_app(db).await;
    mount_slow_broker(&app.broker, 300).await;
    let bodies: Vec<String> = (0..20)
        .map(|i| message("+14155550123", &format!("burst-{i}")))
        .collect();
    let responses = join_all(bodies.iter().map(|body| app.post_flow(body))).await;
    let mut guest_urls = BTreeSet::new();
    let mut created = 0;
    for response in responses {
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        guest_urls.insert(answer["guestUrl"].as_str().unwrap().to_string());
        created += usize::from(answer["created"] == true);
    }
    assert_eq!(guest_urls.len(), 1, "{guest_urls:?}");
    assert_eq!(created, 1);
    assert_eq!(app.broker_requests().await.len(), 1);
    // One notification; the 19 others reach the experts' thread as relays.
    assert_eq!(app.stored().counts().await, (20, 1, 1, 20));
    let notifications = app.stored().outbox_of_kind("expert_notification").await;
    assert_eq!(notifications.len(), 1);
}
}

db_test! {
    async fn simultaneous_messages_all_join_the_transcript(db) {
    // Each message is chained to its conversation's last one. On PostgreSQL these requests
    // append in transactions of their own, at the same time: each must still find its place.
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("ADMIN_TOKEN", ADMIN_TOKEN);
    let app = upstreams.spawn().await;
    mount_slow_broker(&app.broker, 300).await;
    let customer = "+14155550123";
    // First messages: one opens the meeting, the others wait for it and are answered with it.
    let firsts: Vec<String> = (0..10)
        .map(|i| message_with_text(customer, &format!("first-{i}"), &format!("first {i}")))
        .collect();
    let answers = join_all(firsts.iter().map(|body| app.post_flow(body))).await;
    let mut conversations = BTreeSet::new();
    for response in answers {
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        conversations.insert(answer["conversationId"].as_str().unwrap().to_string());
    }
    assert_eq!(conversations.len(), 1);
    let conversation = conversations.pop_first().unwrap();
    // Follow-ups, answered with the live meeting.
    let follow_ups: Vec<String> = (0..20)
        .map(|i| message_with_text(customer, &format!("next-{i}"), &format!("next {i}")))
        .collect();
    for response in join_all(follow_ups.iter().map(|body| app.post_flow(body))).await {
        assert_eq!(response.status(), 200);
    }
    // A repeated delivery adds nothing.
    assert_eq!(app.post_flow(&follow_ups[0]).await.status(), 200);

    let transcript = app.transcript(&conversation).await;
    let stored_order: Vec<String> = app.stored().messages().await.into_iter().map(|m| m.body).collect();
    assert_eq!(transcript, stored_order, "every message once, in the order stored");
    assert_eq!(transcript.len(), 30);
}
}

db_test! {
    async fn the_same_message_delivered_concurrently_is_handled_once(db) {
    let app = spawn_app(db).await;
    mount_slow_broker(&app.broker, 200).await;
    let body = fixture("connect-sms-mo.json");
    let responses = join_all((0..10).map(|_| app.post_signed(&body))).await;
    let mut answers = BTreeSet::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        answers.insert(response.text().await.unwrap());
    }
    assert_eq!(
        answers.len(),
        1,
        "every delivery gets the same answer: {answers:?}"
    );
    assert_eq!(app.broker_requests().await.len(), 1);
    assert_eq!(app.stored().counts().await, (1, 1, 1, 1));
}
}

db_test! {
    async fn waiting_requests_give_up_with_the_request_whose_broker_call_failed(db) {
    let app = spawn_app(db).await;
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .respond_with(ResponseTemplate::new(401).set_delay(Duration::from_millis(200)))
        .mount(&app.broker)
        .await;
    let bodies: Vec<String> = (0..10)
        .map(|i| message("+14155550123", &format!("f-{i}")))
        .collect();
    let started = std::time::Instant::now();
    let responses = join_all(bodies.iter().map(|body| app.post_flow(body))).await;
    for response in responses {
        assert_eq!(response.status(), 503);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waiters did not wait out their budget"
    );
    assert_eq!(app.stored().counts().await, (10, 0, 0, 0));
    // The claim is not stuck: once the broker works, the next message gets a meeting.
    app.broker.reset().await;
    // A later message, when the broker is back.
    app.clock.advance(Duration::from_secs(1));
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    assert_eq!(
        app.post_flow(&message("+14155550123", "after"))
            .await
            .status(),
        200
    );
}
}

db_test! {
    async fn a_claim_left_by_a_crashed_instance_runs_out(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    // Another instance claimed this conversation's meeting, then died (its claim is written
    // here by hand).
    sqlx::query(
        "INSERT INTO meeting_claims (channel, customer, business, claim_id, claimed_until)
         VALUES ('sms', '+14155550123', '56263', 'dead-instance', $1)",
    )
    .bind(app.clock.now_ms() + 500)
    .execute(&app.db)
    .await
    .unwrap();
    // The message waits for that claim; once it is stored (and waiting), time passes and
    // the claim runs out.
    let body = fixture("connect-sms-mo.json");
    let (response, ()) = tokio::join!(app.post_signed(&body), async {
        assert!(eventually(5, || async { app.count("messages").await == 1 }).await);
        assert_eq!(app.broker_requests().await.len(), 0, "it waits for the claim");
        app.clock.advance(Duration::from_secs(1));
    });
    assert_eq!(response.status(), 200);
    assert_eq!(app.broker_requests().await.len(), 1);
    assert_eq!(
        app.count("meeting_claims").await,
        0,
        "the claim is released with the meeting"
    );
}
}

db_test! {
    async fn different_customers_do_not_wait_for_each_other(db) {
    let app = spawn_app(db).await;
    mount_slow_broker(&app.broker, 500).await;
    let bodies: Vec<String> = (0..10)
        .map(|i| message(&format!("+1415555{:04}", 100 + i), "x"))
        .collect();
    let started = std::time::Instant::now();
    let responses = join_all(bodies.iter().map(|body| app.post_flow(body))).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "in parallel: {:?}",
        started.elapsed()
    );
    assert_eq!(app.broker_requests().await.len(), 10);
}
}

db_test! {
    async fn a_customer_opening_too_many_meetings_is_rate_limited(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("MAX_NEW_MEETINGS_PER_HOUR", "2");
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let to = |business: &str, id: &str| {
        json!({"channel": "sms", "from": "+14155550123", "to": business, "text": "hi", "messageId": id}).to_string()
    };
    assert_eq!(app.post_flow(&to("1000", "a")).await.status(), 200);
    assert_eq!(app.post_flow(&to("2000", "b")).await.status(), 200);
    let refused = app.post_flow(&to("3000", "c")).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["retryAfter"], retry_after);
    assert!((3590..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(
        app.broker_requests().await.len(),
        2,
        "no broker call past the limit"
    );
    // A live meeting is still handed out.
    assert_eq!(app.post_flow(&to("1000", "d")).await.status(), 200);
    // Other customers are not affected.
    let other =
        json!({"channel": "sms", "from": "+14155550199", "to": "3000", "text": "hi"}).to_string();
    assert_eq!(app.post_flow(&other).await.status(), 200);
}
}

db_test! {
    async fn two_processes_on_one_database_still_make_one_meeting(db) {
    let upstreams = Upstreams::start(db).await;
    mount_slow_broker(&upstreams.broker, 300).await;
    let first = spawn_binary(&upstreams.vars).await;
    let second = spawn_binary(&upstreams.vars).await;
    let http = reqwest::Client::new();
    let posts = (0..20).map(|i| {
        let address = if i % 2 == 0 {
            &first.address
        } else {
            &second.address
        };
        http.post(format!("{address}/webhooks/connect"))
            .bearer_auth(FLOW_TOKEN)
            .body(message("+14155550123", &format!("two-{i}")))
            .send()
    });
    let mut guest_urls = BTreeSet::new();
    for response in join_all(posts).await {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        guest_urls.insert(answer["guestUrl"].as_str().unwrap().to_string());
    }
    assert_eq!(guest_urls.len(), 1);
    assert_eq!(upstreams.broker.received_requests().await.unwrap().len(), 1);
}
}

db_test! {
    async fn simultaneous_new_customers_each_get_their_meeting_stored_with_its_links(db) {
    // The meetings the broker answers at the same moment are stored together (one
    // statement per step for all): each must still land in its own conversation.
    let app = spawn_app(db).await;
    mount_slow_broker(&app.broker, 200).await;
    let bodies: Vec<String> = (0..12)
        .map(|i| message(&format!("+1415555{:04}", 300 + i), "first"))
        .collect();
    let responses = join_all(bodies.iter().map(|body| app.post_flow(body))).await;
    let mut customers = BTreeSet::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["created"], true);
        let (conversation, meeting) = (
            answer["conversationId"].as_str().unwrap(),
            answer["meetingId"].as_str().unwrap(),
        );
        let stored = app.stored();
        let messages = stored.messages().await;
        let message = messages.iter().find(|m| m.conversation_id.as_deref() == Some(conversation)).unwrap();
        assert_eq!(message.meeting_id.as_deref(), Some(meeting));
        customers.insert(stored.conversation(conversation).await.customer);
        let meetings = stored.meetings().await;
        let meeting_conversation = &meetings.iter().find(|m| m.id == meeting).unwrap().conversation_id;
        let links = stored.meeting_links(meeting).await;
        let notifications = stored.outbox_of_kind("expert_notification").await.into_iter()
            .filter(|row| row.conversation_id.as_ref() == Some(meeting_conversation))
            .count();
        assert_eq!((meeting_conversation.as_str(), links, notifications), (conversation, 2, 1));
    }
    assert_eq!(customers.len(), 12, "{customers:?}");
    assert_eq!(app.stored().counts().await, (12, 12, 12, 12));
    assert_eq!(app.count("meeting_claims").await, 0, "every claim ends with its meeting");
}
}

db_test! {
    async fn a_request_whose_claim_ran_out_is_answered_with_the_meeting_stored_meanwhile(db) {
    let app = spawn_app(db).await;
    // The first broker call stalls (long enough for the second request's whole path, which
    // takes a few tens of milliseconds); later ones answer at once.
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .respond_with(slow_broker_answer(1500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.broker)
        .await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let (first, second) = (
        message("+14155550123", "first"),
        message("+14155550123", "second"),
    );
    let (stalled, second) = tokio::join!(
        app.post_flow(&first),
        async {
            // While the first request waits for the broker, its claim runs out and a second
            // message of the conversation takes it over and stores a meeting.
            assert!(eventually(5, || async { app.broker_requests().await.len() == 1 }).await);
            app.clock.advance(Duration::from_secs(11));
            let response = app.post_flow(&second).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    );
    assert_eq!(second["created"], true);
    assert_eq!(stalled.status(), 200);
    let stalled: Value = stalled.json().await.unwrap();
    assert_eq!(stalled["created"], false, "{stalled}");
    assert_eq!(stalled["meetingId"], second["meetingId"]);
    assert_eq!(stalled["conversationId"], second["conversationId"]);
    assert_eq!(app.count("meetings").await, 1);
    let meeting = second["meetingId"].as_str().unwrap();
    let answered: Vec<(Option<String>, i64)> = app.stored().messages().await.into_iter()
        .map(|m| (m.meeting_id, m.opened_meeting))
        .collect();
    assert_eq!(
        answered,
        [(Some(meeting.to_string()), 0), (Some(meeting.to_string()), 1)],
        "both messages answered with the meeting; only the second opened it"
    );
    // The stalled request's start of the hour is given back, and no claim is left.
    assert_eq!(app.count("meeting_starts").await, 1);
    assert_eq!(app.count("meeting_claims").await, 0);
    assert_eq!(app.stored().outbox_of_kind("expert_notification").await.len(), 1);
}
}

/// PostgreSQL only: on SQLite one write runs at a time, so nothing can commit while a
/// claim waits.
#[tokio::test]
#[cfg_attr(
    not(icb_postgres),
    ignore = "PostgreSQL: set ICB_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn a_claim_that_waited_for_the_holders_commit_is_answered_with_its_meeting() {
    let app = spawn_app(TestDb::Postgres).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let now = app.clock.now_ms();
    // Another instance, written here by hand: its claim, then its uncommitted meeting.
    sqlx::query(
        "INSERT INTO meeting_claims (channel, customer, business, claim_id, claimed_until)
         VALUES ('sms', '+14155550123', '56263', 'holder', $1)",
    )
    .bind(now + 10_000)
    .execute(&app.db)
    .await
    .unwrap();
    // The holder stores its meeting and ends its claim, and has not committed yet.
    let mut holder = app.db.begin().await.unwrap();
    for statement in [
        "INSERT INTO conversations (id, channel, customer, business, created_at)
         VALUES ('c-holder', 'sms', '+14155550123', '56263', $1)",
        "INSERT INTO meetings (id, conversation_id, sub, host_url, guest_url, expires_at,
                               created_at)
         VALUES ('m-holder', 'c-holder', 'sub-holder', 'https://example.com/host',
                 'https://example.com/guest', $1 + 86400000, $1)",
        "DELETE FROM meeting_claims WHERE claim_id = 'holder'",
    ] {
        sqlx::query(statement)
            .bind(now)
            .execute(&mut *holder)
            .await
            .unwrap();
    }
    let body = message("+14155550123", "waits");
    let (response, ()) = tokio::join!(app.post_flow(&body), async {
        // The request's claim waits for the holder's row; then the holder commits.
        // Whether the claim blocks on the lock, as PostgreSQL itself reports.
        let claim_waits = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'INSERT INTO meeting_claims%'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap()
                == 1
        };
        assert!(eventually(5, claim_waits).await);
        holder.commit().await.unwrap();
    });
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        (&answer["meetingId"], &answer["created"]),
        (&json!("m-holder"), &json!(false)),
        "{answer}"
    );
    assert_eq!(
        app.broker_requests().await.len(),
        0,
        "no second meeting asked for"
    );
    let answered = app.stored().the_message().await.meeting_id;
    assert_eq!(answered.as_deref(), Some("m-holder"));
}
