//! The experts' side as Webex really behaves: an event's top-level `created` is its
//! webhook's registration (a month ago), its own time is `data.created`; Webex never sends
//! an event twice, and disables a webhook whose deliveries fail until someone re-activates
//! it. What experts write reaches the customer once, whatever was lost on the way.

use serde_json::{json, Value};

use crate::desk::*;
use crate::helpers::*;
use crate::webex_standin::{WebexStandIn, TARGET_URL};

/// A desk app whose webhooks point at `TARGET_URL`, with the stateful Webex stand-in.
async fn watched_app(db: TestDb) -> (TestApp, WebexStandIn) {
    let app = desk_app(db, &[("PUBLIC_URL", "https://bridge.example.com")]).await;
    let webex = WebexStandIn::mount(&app, WEBEX_SECRET).await;
    (app, webex)
}

async fn signed(app: &TestApp, event: &str) -> reqwest::Response {
    post_webex(app, event, Some(&spark_signature(event))).await
}

/// The texts Webex Connect was asked to send on WhatsApp, after the guest link.
async fn whatsapp_texts(app: &TestApp) -> Vec<String> {
    connect_texts(app, "/channels/OTT-Messaging/wa/text/body").await
}

db_test! {
    async fn a_webhook_registered_a_month_ago_brings_replies_commands_and_presses(db) {
        let (app, webex) = watched_app(db).await;
        open_conversation(&app).await;
        let now = app.clock.now_ms();
        let reply = webex.expert_writes("m-reply", "On my way", Some(&thread_id()), now).unwrap();
        let event: Value = serde_json::from_str(&reply).unwrap();
        assert!(event["created"].as_str().unwrap() < event["data"]["created"].as_str().unwrap());
        assert_eq!(signed(&app, &reply).await.status(), 200);
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_texts(&app).await, ["On my way"]);

        // A card's Take, on the same month-old registration.
        press(&app, "action-take", "take").await;
        let assignee = app.stored().the_conversation().await.assignee;
        assert_eq!(assignee.as_deref(), Some(EXPERT_ID), "taken by the presser");

        let close = webex.expert_writes("m-close", "close", Some(&thread_id()), now).unwrap();
        assert_eq!(signed(&app, &close).await.status(), 200);
        app.desk.run_once().await.unwrap();
        assert_eq!(app.stored().the_conversation().await.state, "closed");
    }
}

db_test! {
    async fn a_message_two_hours_old_is_refused_and_one_without_a_time_is_judged_by_its_message(db) {
        let (app, webex) = watched_app(db).await;
        open_conversation(&app).await;
        let now = app.clock.now_ms();
        let old = webex
            .expert_writes("m-old", "Hello again", Some(&thread_id()), now - 2 * 3_600_000)
            .unwrap();
        let refused = signed(&app, &old).await;
        assert_eq!(refused.status(), 400);
        assert_eq!(refused.json::<Value>().await.unwrap()["error"], "stale_event");
        assert_eq!(app.count("webex_events").await, 0);

        // Without `data.created`, the event is taken, and judged by its message's own time
        // when handled: a three-day-old message is not relayed, a fresh one is.
        for (id, at) in [("m-ancient", now - 3 * 24 * 3_600_000), ("m-fresh", now)] {
            let event = webex.expert_writes(id, id, Some(&thread_id()), at).unwrap();
            let mut event: Value = serde_json::from_str(&event).unwrap();
            event["data"].as_object_mut().unwrap().remove("created");
            let event = event.to_string();
            assert_eq!(signed(&app, &event).await.json::<Value>().await.unwrap()["status"], "recorded");
        }
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_texts(&app).await, ["m-fresh"]);
        let events = app.stored().webex_events().await;
        let refused = events.iter().find(|event| event.id == "m-ancient").expect("the ancient event");
        assert_eq!(refused.state, "failed");
    }
}

db_test! {
    async fn an_event_the_database_refused_is_caught_up_and_relayed_once(db) {
        let (app, webex) = watched_app(db).await;
        open_conversation(&app).await;
        // The first catch-up at start-up: nothing to find, the room's cursor is set.
        assert_eq!(app.desk.catch_up().await.unwrap().new, 0);
        let event = webex
            .expert_writes("m-lost", "Your results are fine", Some(&thread_id()), app.clock.now_ms())
            .unwrap();
        // Another process holds the database: the event is answered 503, and Webex will
        // never send it again.
        let mut holder = app.db.acquire().await.unwrap();
        let hold: &[&str] = match db {
            TestDb::Sqlite => &["BEGIN IMMEDIATE"],
            TestDb::Postgres => &["BEGIN", "LOCK TABLE webex_events IN EXCLUSIVE MODE"],
        };
        // The table is locked on purpose, as a long transaction elsewhere would hold it.
        for statement in hold {
            sqlx::query(statement).execute(&mut *holder).await.unwrap();
        }
        assert_eq!(signed(&app, &event).await.status(), 503);
        sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
        drop(holder);
        assert_eq!(app.count("webex_events").await, 0);

        let found = app.desk.catch_up().await.unwrap();
        assert_eq!(found.new, 1);
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_texts(&app).await, ["Your results are fine"]);
        // Found again, or pushed after all: handled once.
        assert_eq!(app.desk.catch_up().await.unwrap().new, 0);
        assert_eq!(signed(&app, &event).await.json::<Value>().await.unwrap()["status"], "duplicate");
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_texts(&app).await, ["Your results are fine"]);
        assert!(app.metrics_page().await.contains("icbridge_webex_messages_caught_up_total 1"));
    }
}

db_test! {
    async fn a_disabled_webhook_is_reactivated_and_what_was_written_meanwhile_arrives_once(db) {
        let (app, webex) = watched_app(db).await;
        open_conversation(&app).await;
        let reports = app.desk.watch_webhooks().await.unwrap();
        assert!(reports.iter().all(|r| r.state == icbridge::experts::HookState::Unchanged));
        assert!(webex.updates().is_empty());

        // Webex disables the messages webhook; what the expert writes meanwhile (mentioning
        // the bot) brings no event.
        webex.disable("messages");
        app.clock.advance(std::time::Duration::from_secs(30));
        let pushed = webex.expert_writes("m-meanwhile", "Sending the form now", Some(&thread_id()), app.clock.now_ms());
        assert!(pushed.is_none());

        // The next check re-activates it, as Webex documents, and catches up.
        app.clock.advance(std::time::Duration::from_secs(90));
        let reports = app.desk.watch_webhooks().await.unwrap();
        let messages = reports.iter().find(|r| r.resource == "messages").unwrap();
        assert_eq!(messages.state, icbridge::experts::HookState::Reactivated);
        assert_eq!(webex.status_of("messages"), "active");
        assert_eq!(
            webex.updates(),
            [json!({"name": "icbridge messages", "targetUrl": TARGET_URL,
                    "secret": WEBEX_SECRET, "status": "active"})]
        );
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_texts(&app).await, ["Sending the form now"]);
        // The reply was written 90 s before it could be sent: the thread is told.
        let late = bot_posts_after_notification(&app).await;
        assert!(late.last().unwrap()["markdown"].as_str().unwrap().starts_with("Sent to the customer late"), "{late:?}");

        // Once more: nothing new, nothing sent twice.
        app.desk.watch_webhooks().await.unwrap();
        app.desk.catch_up().await.unwrap();
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_texts(&app).await, ["Sending the form now"]);

        let ready: Value = app.http.get(format!("{}/readyz", app.address)).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["webhooks"], json!({"messages": "active", "attachmentActions": "active"}));
    }
}

db_test! {
    async fn a_webhook_with_another_secret_is_put_right(db) {
        let app = desk_app(db, &[]).await;
        let webex = WebexStandIn::mount(&app, "another secret").await;
        let reports = app.desk.watch_webhooks().await.unwrap();
        for report in &reports {
            assert_eq!(report.state, icbridge::experts::HookState::Corrected, "{report:?}");
        }
        // Without ICB_PUBLIC_URL, where a webhook points is left as it is.
        assert_eq!(
            webex.updates()[0],
            json!({"name": "icbridge messages", "targetUrl": TARGET_URL,
                   "secret": WEBEX_SECRET, "status": "active"})
        );
        assert_eq!(webex.updates().len(), 2);
    }
}

db_test! {
    async fn a_missing_webhook_without_a_public_url_is_reported_not_made(db) {
        let app = desk_app(db, &[]).await;
        let webex = WebexStandIn::mount(&app, WEBEX_SECRET).await;
        webex.remove("attachmentActions");
        let reports = app.desk.watch_webhooks().await.unwrap();
        let actions = reports.iter().find(|r| r.resource == "attachmentActions").unwrap();
        assert_eq!(actions.state, icbridge::experts::HookState::Missing);
        let metrics = app.metrics_page().await;
        assert!(metrics.contains("icbridge_webex_webhook_active{resource=\"attachmentActions\"} 0"), "{metrics}");
        assert!(metrics.contains("icbridge_webex_webhook_active{resource=\"messages\"} 1"), "{metrics}");
        let ready: Value = app.http.get(format!("{}/readyz", app.address)).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["webhooks"], json!({"messages": "active", "attachmentActions": "missing"}));
        assert!(webex.updates().is_empty());
    }
}

db_test! {
    async fn a_press_the_database_refused_is_answered_in_the_thread(db) {
        let (app, _webex) = watched_app(db).await;
        open_conversation(&app).await;
        let mut holder = app.db.acquire().await.unwrap();
        let hold: &[&str] = match db {
            TestDb::Sqlite => &["BEGIN IMMEDIATE"],
            TestDb::Postgres => &["BEGIN", "LOCK TABLE webex_events IN EXCLUSIVE MODE"],
        };
        // The table is locked on purpose, as a long transaction elsewhere would hold it.
        for statement in hold {
            sqlx::query(statement).execute(&mut *holder).await.unwrap();
        }
        let mut press = fixture_json("vendor/webex-event-attachment-action-created.json");
        press["data"]["messageId"] = json!(thread_id());
        let press = as_sent_at(&press.to_string(), app.clock.now_ms());
        assert_eq!(signed(&app, &press).await.status(), 503);
        sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
        // Posted straight to Webex, under the card: presses cannot be looked up later.
        let told = eventually(5, || async { bot_posts_after_notification(&app).await.len() == 1 }).await;
        assert!(told);
        let post = &bot_posts_after_notification(&app).await[0];
        assert_eq!(post["parentId"], thread_id());
        assert_eq!(post["markdown"], "icbridge could not take that button press just now; please press it again.");
    }
}
