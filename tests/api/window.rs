//! WhatsApp's 24-hour window: a free-form message is judged when it is sent; outside the
//! window it is held, the approved template goes instead (once), and what was held follows
//! in order as soon as the customer writes again.

use std::time::Duration;

use serde_json::{json, Value};

use crate::desk::*;
use crate::helpers::*;
use crate::stored::OutboxRow;

const HOUR: Duration = Duration::from_secs(3600);
const TEMPLATE: [(&str, &str); 3] = [
    ("REPLY_MODE", "connect"),
    ("WHATSAPP_TEMPLATE", "tpl_followup"),
    (
        "WHATSAPP_TEMPLATE_PARAMS",
        "name={customer_name},link={guest_url}",
    ),
];

/// An expert's thread reply, delivered and handled now (by the app's clock).
async fn expert_replies(app: &TestApp, id: &str, text: &str) {
    let event = expert_message(app, id, text, Some(&thread_id()), EXPERT_ROOM).await;
    deliver_event(app, &event).await;
    app.desk.run_once().await.unwrap();
}

/// What icbridge sent the customer by WhatsApp: texts, and templates as `template:<id>`.
async fn whatsapp_sent(app: &TestApp) -> Vec<String> {
    app.connect
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json::<Value>().unwrap())
        .map(|body| match body["message"]["template"].as_str() {
            Some(template) => format!("template:{template}"),
            None => body["channels"]["OTT-Messaging"]["wa"]["text"]["body"]
                .as_str()
                .unwrap()
                .to_string(),
        })
        .collect()
}

async fn states_of_replies(app: &TestApp) -> Vec<String> {
    let replies = app.stored().outbox_of_kind("customer_reply").await;
    let state = |row: OutboxRow| {
        if row.held == 1 {
            "held".to_string()
        } else {
            row.state
        }
    };
    replies.into_iter().map(state).collect()
}

async fn customer_writes_again(app: &TestApp, tid: &str) {
    let mut message = fixture_json("connect-whatsapp-mo.json");
    message["tid"] = json!(tid);
    message["message"] = json!("Yes, still here");
    assert_eq!(app.post_signed(&message.to_string()).await.status(), 200);
}

db_test! {
    async fn replies_after_24_hours_are_held_the_template_goes_once_and_they_follow_in_order(db) {
        let app = desk_app(db, &TEMPLATE).await;
        let answer = open_conversation(&app).await;
        let guest_link = format!("Join your video consultation: {SHORT_GUEST_URL}");
        assert_eq!(whatsapp_sent(&app).await, vec![guest_link.clone()]);

        app.clock.advance(25 * HOUR);
        expert_replies(&app, "m-1", "Your results are in").await;
        expert_replies(&app, "m-2", "Please call us").await;
        app.worker.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();

        // Nothing doomed was sent: the template went, once, with its variables.
        assert_eq!(whatsapp_sent(&app).await, vec![guest_link.clone(), "template:tpl_followup".into()]);
        let sent = app.connect.received_requests().await.unwrap();
        let template: Value = sent.last().unwrap().body_json().unwrap();
        let template_row: i64 = app.stored().newest_reply_id().await;
        assert_eq!(
            template,
            json!({
                "deliverychannel": "whatsapp",
                "appid": "a_155054536910425280",
                "destination": [{"waid": ["14155550142"]}],
                "message": {"template": "tpl_followup",
                            "parameters": {"name": "Alice Example", "link": SHORT_GUEST_URL}},
                "correlationid": format!("icb-{template_row}"),
                "callbackData": answer["conversationId"],
            })
        );
        assert_eq!(states_of_replies(&app).await, vec!["sent", "held", "held", "sent"]);
        let notices = bot_posts_after_notification(&app).await;
        assert_eq!(notices.len(), 1, "{notices:#?}");
        let notice = notices[0]["markdown"].as_str().unwrap();
        assert!(notice.contains("the approved template `tpl\\_followup`"), "{notice}");
        assert_eq!(notices[0]["parentId"], thread_id());

        // The customer answers: what was held goes first, in order, then what their
        // message brings (a new meeting: the old link ran out).
        customer_writes_again(&app, "wamid.again-1").await;
        app.worker.run_once().await.unwrap();
        let sent = whatsapp_sent(&app).await;
        assert_eq!(sent[2..3], ["Your results are in"]);
        assert_eq!(sent[3..4], ["Please call us"]);
        assert_eq!(sent.len(), 5, "{sent:?}");
        assert!(sent[4].starts_with("Join your video consultation"));
        assert_eq!(app.stored().held().await.len(), 0);
    }
}

db_test! {
    async fn without_a_template_the_experts_are_told_at_once_that_the_customer_must_write(db) {
        let app = desk_app(db, &[("REPLY_MODE", "connect")]).await;
        open_conversation(&app).await;
        app.clock.advance(24 * HOUR);
        expert_replies(&app, "m-1", "Hello?").await;
        app.worker.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_sent(&app).await.len(), 1, "only the first guest link");
        assert_eq!(states_of_replies(&app).await, vec!["sent", "held"]);
        let notices = bot_posts_after_notification(&app).await;
        assert_eq!(notices.len(), 1);
        assert!(notices[0]["markdown"].as_str().unwrap().contains("**The customer must write first**"));
        // `icbridge outbox list` and the metrics show it as held, not pending.
        let page = app.metrics_page().await;
        assert!(page.contains("icbridge_outbox_rows{state=\"held\"} 1"), "{page}");
        assert!(page.contains("icbridge_outbox_oldest_pending_seconds 0"), "{page}");
    }
}

db_test! {
    async fn the_window_is_judged_when_the_message_is_sent_not_when_it_was_queued(db) {
        let app = desk_app(db, &TEMPLATE).await;
        open_conversation(&app).await;
        app.clock.advance(23 * HOUR + Duration::from_secs(59 * 60));
        // Queued within the window (Webex Connect slow, say) ...
        expert_replies(&app, "m-1", "Almost too late").await;
        // ... and sent after it.
        app.clock.advance(Duration::from_secs(120));
        app.worker.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_sent(&app).await[1], "template:tpl_followup");
        assert_eq!(states_of_replies(&app).await, vec!["sent", "held", "sent"]);
    }
}

db_test! {
    async fn a_7710_receipt_holds_the_message_and_sends_the_template_once(db) {
        let app = desk_app(db, &TEMPLATE).await;
        open_conversation(&app).await;
        app.clock.advance(23 * HOUR);
        expert_replies(&app, "m-1", "One").await;
        expert_replies(&app, "m-2", "Two").await;
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_sent(&app).await.len(), 3, "sent: our clock says the window is open");
        // WhatsApp's clock disagrees, for both.
        let rows: Vec<i64> = app.stored().outbox_of_kind("customer_reply").await.iter().map(|row| row.id).collect();
        for row in &rows[1..] {
            let mut receipt = fixture_json("connect-delivery-receipt.json");
            receipt["deliveryInfoNotification"]["correlationid"] = json!(format!("icb-{row}"));
            receipt["deliveryInfoNotification"]["transid"] = json!(format!("transid-{row}"));
            receipt["deliveryInfoNotification"]["deliveryInfo"]["code"] = json!("7710");
            receipt["deliveryInfoNotification"]["deliveryInfo"]["deliveryStatus"] = json!("Failed");
            assert_eq!(app.post_signed(&receipt.to_string()).await.status(), 200);
        }
        app.worker.run_once().await.unwrap();
        let sent = whatsapp_sent(&app).await;
        assert_eq!(sent[3..], ["template:tpl_followup"]);
        // Held copies of both; the template went once, after the first.
        assert_eq!(states_of_replies(&app).await, vec!["sent", "sent", "sent", "held", "sent", "held"]);
        customer_writes_again(&app, "wamid.again-1").await;
        app.worker.run_once().await.unwrap();
        assert_eq!(whatsapp_sent(&app).await[4..6], ["One", "Two"]);
    }
}

db_test! {
    async fn a_message_held_past_the_retention_is_dropped(db) {
        let app = desk_app(db, &[("REPLY_MODE", "connect")]).await;
        open_conversation(&app).await;
        app.clock.advance(25 * HOUR);
        expert_replies(&app, "m-1", "Anyone there?").await;
        app.worker.run_once().await.unwrap();
        assert_eq!(app.stored().held().await.len(), 1);
        // The customer never writes again; 40 days pass (the held row is aged on purpose).
        sqlx::query("UPDATE outbox SET created_at = created_at - 3456000000 WHERE held = 1")
            .execute(&app.db)
            .await
            .unwrap();
        let purged = crate::cli::icbridge(
            &["purge"],
            &[("DATABASE_URL", app.database_url.clone()), ("RETENTION", "30days".into())],
        )
        .await;
        assert!(purged.status.success());
        assert!(String::from_utf8_lossy(&purged.stdout).contains("1 held WhatsApp messages"));
        assert_eq!(app.stored().held().await.len(), 0);
        assert_eq!(app.stored().outbox().await.iter().filter(|row| row.payload.contains("Anyone there")).count(), 0);
    }
}
