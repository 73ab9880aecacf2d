//! Two icbridge processes on one database behind a "load balancer" (alternating requests):
//! the guarantees hold across them, also when one is killed mid-traffic.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::stored::Stored;

fn message(customer: usize, n: usize) -> String {
    json!({
        "channel": "sms", "from": format!("+1415555{:04}", 2000 + customer), "to": "56263",
        "text": format!("customer {customer} message {n}"), "messageId": format!("mi-{customer}-{n}"),
    })
    .to_string()
}

/// Posts each body to one of `addresses`, 50 at a time; returns the bodies answered 200.
async fn post_all(addresses: &[String], bodies: Vec<String>) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    stream::iter(bodies.into_iter().enumerate())
        .map(|(i, body)| {
            let http = http.clone();
            let address = addresses[i % addresses.len()].clone();
            async move {
                let response = http
                    .post(format!("{address}/webhooks/connect"))
                    .bearer_auth(FLOW_TOKEN)
                    .body(body.clone())
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 200 => Some(body),
                    _ => None,
                }
            }
        })
        .buffer_unordered(50)
        .filter_map(|acknowledged| async move { acknowledged })
        .collect()
        .await
}

/// How often Webex got each distinct message body.
async fn webex_bodies(app: &wiremock::MockServer) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for request in app.received_requests().await.unwrap() {
        if request.url.path() == "/v1/messages" {
            let body: Value = request.body_json().unwrap();
            *seen
                .entry(body["markdown"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    seen
}

db_test! {
    async fn two_instances_share_the_work_and_survive_losing_one(db) {
        let mut upstreams = Upstreams::start(db).await;
        // A row the killed instance held is sent by the survivor once its lease runs out. Not
        // shorter: a claimed conversation's rows are sent one after the other under that one
        // lease, and a lease that ran out mid-chain on a loaded machine would let the other
        // instance send a row again (at least once, as promised, but not the "exactly once"
        // the first wave checks).
        upstreams.set("OUTBOX_LEASE", "3s");
        mount_slow_broker(&upstreams.broker, 100).await;
        mount_webex_messages(&upstreams.webex).await;
        let mut first = spawn_binary(&upstreams.vars).await;
        let second = spawn_binary(&upstreams.vars).await;
        let both = [first.address.clone(), second.address.clone()];
        let db_pool = open_db(&upstreams.vars["DATABASE_URL"]).await;
        let stored = Stored::in_db(&db_pool);

        // 200 first messages from 20 new customers, all at once, over both instances.
        let wave: Vec<String> = (0..10).flat_map(|n| (0..20).map(move |c| message(c, n))).collect();
        let acknowledged = post_all(&both, wave).await;
        assert_eq!(acknowledged.len(), 200, "every message answered 200");
        assert_eq!(upstreams.broker.received_requests().await.unwrap().len(), 20, "one broker call per customer");
        let (_, conversations, meetings, _) = stored.counts().await;
        assert_eq!((meetings, conversations), (20, 20));

        // Both workers deliver: every notification and thread message exactly once.
        let delivered = eventually(30, || async { stored.unsent().await.is_empty() }).await;
        assert!(delivered);
        let seen = webex_bodies(&upstreams.webex).await;
        assert_eq!(seen.len(), 200, "20 notifications and 180 thread messages");
        assert!(seen.values().all(|times| *times == 1), "each delivered once: {:?}", seen.iter().filter(|(_, t)| **t > 1).collect::<Vec<_>>());
        let notifications = seen.keys().filter(|m| m.starts_with("**Video consultation request**")).count();
        assert_eq!(notifications, 20);

        // A second wave from 20 more customers; one instance dies in the middle of it.
        let wave: Vec<String> = (0..5).flat_map(|n| (20..40).map(move |c| message(c, n))).collect();
        let sending = tokio::spawn({
            let both = both.clone();
            async move { post_all(&both, wave).await }
        });
        // Once the second wave is arriving, one instance dies.
        let arriving = eventually(10, || async { stored.count("messages").await > 200 }).await;
        assert!(arriving, "the second wave reaches the instances");
        first.signal("-KILL");
        first.wait().await;
        let acknowledged = sending.await.unwrap();
        assert!(acknowledged.len() >= 40, "the survivor answered its share: {}", acknowledged.len());
        // The survivor keeps serving.
        let later = post_all(std::slice::from_ref(&second.address), vec![message(99, 0)]).await;
        assert_eq!(later.len(), 1);

        // Nothing acknowledged is lost: every answered message is stored, every delivery it
        // caused is made (a row the dead instance held waits for its lease).
        let messages = stored.messages().await;
        for body in acknowledged.iter().chain(&later) {
            let id: String = serde_json::from_str::<Value>(body).unwrap()["messageId"].as_str().unwrap().into();
            let with_meeting = messages
                .iter()
                .filter(|m| m.external_id.as_deref() == Some(id.as_str()) && m.meeting_id.is_some())
                .count();
            assert_eq!(with_meeting, 1, "{id} was answered, so it is stored with its meeting");
        }
        let delivered = eventually(20, || async { stored.unsent().await.is_empty() }).await;
        assert!(delivered, "{}", second.logs.lock().unwrap());
        let (_, conversations, meetings, _) = stored.counts().await;
        assert_eq!(meetings, conversations, "one meeting per conversation");
        let duplicates = webex_bodies(&upstreams.webex).await.into_values().filter(|times| *times > 1).count();
        eprintln!("acknowledged in the second wave: {}, deliveries repeated after the kill: {duplicates}", acknowledged.len());
    }
}

#[tokio::test]
#[cfg_attr(
    not(icb_postgres),
    ignore = "PostgreSQL: set ICB_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
)]
async fn a_claim_racing_another_instances_claim_never_takes_a_later_row_of_its_conversation() {
    let app = spawn_app(TestDb::Postgres).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    // A conversation with its notification and a follow-up queued, nothing sent yet.
    assert_eq!(app.post_flow(&message(1, 1)).await.status(), 200);
    assert_eq!(app.post_flow(&message(1, 2)).await.status(), 200);
    let rows = app.stored().outbox().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].kind, "expert_notification");

    // Another instance is claiming the notification, and has not committed yet (its claim is
    // written here by hand, to hold it open at that point).
    let now = app.clock.now_ms();
    let mut other = app.db.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(icbridge::store::OUTBOX_CLAIM_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE outbox SET leased_until = $1, next_attempt_at = $1, attempts = attempts + 1
         WHERE id = $2",
    )
    .bind(now + 30_000)
    .bind(rows[0].id)
    .execute(&mut *other)
    .await
    .unwrap();
    // This instance claims meanwhile; the other commits while it waits.
    let (claimed, ()) = tokio::join!(app.worker.run_once(), async {
        // Whether the claim blocks on the lock, as PostgreSQL itself reports.
        let claim_waits = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap()
                == 1
        };
        assert!(eventually(5, claim_waits).await);
        other.commit().await.unwrap();
    });
    // The follow-up waits for its notification, whoever sends it.
    assert_eq!(claimed.unwrap(), 0);
    assert!(app.webex_posts().await.is_empty());
}
