//! A bounded soak: a burst from many customers, with duplicates and a flaky Webex.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::helpers::*;

/// Fails every fifth call (20%), counts the successes.
struct FlakyWebex {
    calls: AtomicUsize,
    successes: Arc<AtomicUsize>,
}

impl Respond for FlakyWebex {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.calls.fetch_add(1, Ordering::SeqCst) % 5 == 4 {
            ResponseTemplate::new(500)
        } else {
            self.successes.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_raw(
                fixture("webex-message-created-response.json"),
                "application/json",
            )
        }
    }
}

db_test! {
    async fn two_thousand_messages_from_two_hundred_customers(db) {
    const CUSTOMERS: usize = 200;
    const MESSAGES_PER_CUSTOMER: usize = 9;

    let mut upstreams = Upstreams::start(db).await;
    // Retries after 1 ms, long enough a schedule that a row failing a few times in a row
    // is not dead-lettered.
    upstreams.set("RETRY_SCHEDULE", &vec!["1ms"; 20].join(","));
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let delivered = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(FlakyWebex {
            calls: AtomicUsize::new(0),
            successes: delivered.clone(),
        })
        .mount(&app.webex)
        .await;

    // 1,800 distinct messages, interleaved across customers, plus 200 exact duplicates (10%).
    let mut bodies = Vec::new();
    for round in 0..MESSAGES_PER_CUSTOMER {
        for customer in 0..CUSTOMERS {
            bodies.push(
                json!({
                    "channel": "sms",
                    "from": format!("+1415555{:04}", customer),
                    "to": "56263",
                    "text": format!("message {round}"),
                    "messageId": format!("c{customer}-m{round}"),
                })
                .to_string(),
            );
        }
    }
    let duplicates: Vec<String> = bodies.iter().step_by(9).take(200).cloned().collect();
    bodies.extend(duplicates);
    assert_eq!(bodies.len(), 2000);

    let statuses: Vec<u16> = stream::iter(bodies.iter())
        .map(|body| async { app.post_flow(body).await.status().as_u16() })
        .buffer_unordered(50)
        .collect()
        .await;
    let not_ok: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        not_ok.is_empty(),
        "{} answers were not 200: {:?}",
        not_ok.len(),
        &not_ok[..not_ok.len().min(10)]
    );

    // Deliver everything, step by step (the test schedule retries after 1 ms).
    for _ in 0..200 {
        app.worker.run_once().await.unwrap();
        if app.stored().unsent().await.is_empty() {
            break;
        }
        app.clock.advance(std::time::Duration::from_millis(2));
    }

    assert_eq!(app.count("meetings").await, CUSTOMERS as i64);
    assert_eq!(app.count("conversations").await, CUSTOMERS as i64);
    assert_eq!(app.broker_requests().await.len(), CUSTOMERS);
    assert_eq!(
        app.count("messages").await,
        (CUSTOMERS * MESSAGES_PER_CUSTOMER) as i64
    );
    let messages = app.stored().messages().await.into_iter();
    let distinct: BTreeSet<String> = messages.map(|m| m.external_id.unwrap()).collect();
    assert_eq!(distinct.len(), CUSTOMERS * MESSAGES_PER_CUSTOMER);
    // One notification per customer and one thread relay per later message, all sent once.
    let outbox = app.stored().outbox().await;
    let of_kind = |kind: &str| outbox.iter().filter(|row| row.kind == kind).count();
    assert_eq!(of_kind("expert_notification"), CUSTOMERS);
    assert_eq!(of_kind("expert_notice"), CUSTOMERS * (MESSAGES_PER_CUSTOMER - 1));
    let unsent = app.stored().unsent().await;
    assert_eq!(unsent.len(), 0, "{:?}", &unsent[..unsent.len().min(5)]);
    assert_eq!(
        delivered.load(Ordering::SeqCst),
        CUSTOMERS * MESSAGES_PER_CUSTOMER,
        "each delivered once"
    );
}
}
