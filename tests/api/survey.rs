//! The rating after the call (`ICB_SURVEY`): closing a conversation asks the customer one
//! question, by SMS or with WhatsApp reply buttons; an answer within a day is their rating
//! (stored, thanked, posted in the thread, shown in the console and the admin API) and
//! opens nothing; any other answer, or a late one, is a new message.

use std::time::Duration;

use serde_json::{json, Value};

use crate::console::{get, log_in, mount_expert_login, CLIENT_ID, CLIENT_SECRET, PUBLIC_URL};
use crate::desk::*;
use crate::helpers::*;
use crate::opt_out::customer_texts;

const SMS_QUESTION: &str = "How was your consultation? Reply 1 (poor) to 5 (excellent).";
const WHATSAPP_QUESTION: &str =
    "How was your consultation? Tap a button, or reply 1 (poor) to 5 (excellent).";
const THANKS: &str = "Thank you for your rating!";

/// An app that sends customers their replies itself and asks for ratings, with the admin
/// API and the console on.
async fn survey_app(db: TestDb) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .set("REPLY_MODE", "connect")
        .set("SURVEY", "true")
        .set("ADMIN_TOKEN", ADMIN_TOKEN)
        .set("PUBLIC_URL", PUBLIC_URL)
        .set("OAUTH_CLIENT_ID", CLIENT_ID)
        .set("OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .set("WIDGET_BASE_URL", "https://widgets.example.net/space");
    let app = upstreams.spawn().await;
    mount_expert_login(&app.webex).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    mount_sms_accepted(&app.connect).await;
    mount_whatsapp_queued(&app.connect).await;
    app
}

/// Closes the conversation through the admin API and lets the worker send what follows.
async fn close(app: &TestApp, conversation_id: &str) {
    let closed = admin(
        app,
        reqwest::Method::POST,
        &format!("/api/conversations/{conversation_id}/close"),
    )
    .await;
    assert_eq!(closed.status(), 200);
    app.worker.run_once().await.unwrap();
}

/// Closes the conversation a customer's first message opened (its answer `first`); its id.
async fn closed(app: &TestApp, first: Value) -> String {
    let conversation_id = first["conversationId"].as_str().unwrap().to_string();
    close(app, &conversation_id).await;
    conversation_id
}

/// The newest customer reply's outbox id, as its correlation id names it.
async fn last_reply_id(app: &TestApp) -> i64 {
    app.stored().newest_reply_id().await
}

/// The body of the last request Webex Connect received.
async fn last_connect_body(app: &TestApp) -> Value {
    app.connect
        .received_requests()
        .await
        .unwrap()
        .last()
        .unwrap()
        .body_json()
        .unwrap()
}

async fn ratings(app: &TestApp) -> Vec<Value> {
    let response = admin(app, reqwest::Method::GET, "/api/ratings").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["ratings"].as_array().unwrap().clone()
}

async fn thread_texts(app: &TestApp) -> Vec<String> {
    app.webex_posts()
        .await
        .iter()
        .map(|p| p["markdown"].as_str().unwrap().to_string())
        .collect()
}

db_test! {
    async fn survey_by_sms_a_reply_of_5_is_the_rating_and_shows_in_the_console(db) {
        let app = survey_app(db).await;
        let conversation_id = closed(&app, customer_texts(&app, "m-1", "Hello").await).await;

        // The question, exactly as Webex Connect gets it.
        let question_id = last_reply_id(&app).await;
        assert_eq!(
            last_connect_body(&app).await,
            json!({
                "from": "56263", "to": "+14155550123", "content": SMS_QUESTION,
                "contentType": "text", "correlationId": format!("icb-{question_id}"),
                "callbackData": conversation_id,
            })
        );

        // A 5: stored, thanked, posted in the thread; no conversation, no meeting.
        let (_, conversations, meetings, _) = app.stored().counts().await;
        let answer = customer_texts(&app, "m-2", " 5 ").await;
        assert_eq!(
            answer,
            json!({"conversationId": conversation_id, "open": true, "reply": THANKS, "created": false})
        );
        app.worker.run_once().await.unwrap();
        assert_eq!(app.broker_requests().await.len(), 1);
        let (_, conversations_now, meetings_now, outbox) = app.stored().counts().await;
        assert_eq!((conversations_now, meetings_now), (conversations, meetings));
        assert_eq!(connect_texts(&app, "/content").await.last().unwrap(), THANKS);
        assert_eq!(
            thread_texts(&app).await.last().unwrap(),
            "The customer rated the consultation 5/5."
        );
        assert_eq!(app.transcript(&conversation_id).await.last().unwrap(), " 5 ");

        // The same message again is answered as before; nothing more is queued.
        assert_eq!(customer_texts(&app, "m-2", " 5 ").await, answer);
        assert_eq!(app.stored().counts().await.3, outbox);

        // The admin API lists it (the number masked), the conversation shows it.
        let listed = ratings(&app).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            (listed[0]["conversationId"].clone(), listed[0]["rating"].clone(), listed[0]["desk"].clone(), listed[0]["channel"].clone()),
            (json!(conversation_id), json!(5), json!("default"), json!("sms"))
        );
        assert!(!listed[0]["customer"].as_str().unwrap().contains("4155550123"), "{listed:?}");
        // The customer's data on request includes it.
        let export: Value = admin(&app, reqwest::Method::GET, "/api/customers/+14155550123/export")
            .await.json().await.unwrap();
        assert_eq!(export["conversations"][0]["rating"], 5, "{export}");
        let detail: Value = admin(&app, reqwest::Method::GET, &format!("/api/conversations/{conversation_id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(detail["rating"], 5);

        // The console shows it.
        let cookie = log_in(&app).await;
        let queue: Value = get(&app, "/console/api/queue", &cookie).await.json().await.unwrap();
        assert_eq!(queue["ratings"][0]["conversationId"], json!(conversation_id));
        assert_eq!(queue["ratings"][0]["rating"], 5);
        let transcript: Value = get(&app, &format!("/console/api/conversations/{conversation_id}"), &cookie)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(transcript["rating"], 5);

        // And the desk's histogram counts it.
        let metrics = app.metrics_page().await;
        assert!(metrics.contains("icbridge_ratings_bucket{desk=\"default\",le=\"4\"} 0"), "{metrics}");
        assert!(metrics.contains("icbridge_ratings_bucket{desk=\"default\",le=\"5\"} 1"), "{metrics}");
        assert!(metrics.contains("icbridge_ratings_sum{desk=\"default\"} 5"), "{metrics}");

        // A second answer is a message like any other: it opens a new conversation.
        let again = customer_texts(&app, "m-3", "4").await;
        assert_eq!(again["created"], true);
        assert_ne!(again["conversationId"], json!(conversation_id));
        assert_eq!(ratings(&app).await.len(), 1);
    }
}

db_test! {
    async fn survey_on_whatsapp_asks_with_reply_buttons_and_a_tap_rates(db) {
        let app = survey_app(db).await;
        let conversation_id = closed(&app, open_conversation(&app).await).await;

        let question_id = last_reply_id(&app).await;
        assert_eq!(
            last_connect_body(&app).await,
            json!({
                "deliverychannel": "whatsapp",
                "appid": "a_155054536910425280",
                "destination": [{"waid": ["14155550142"]}],
                "correlationid": format!("icb-{question_id}"),
                "callbackData": conversation_id,
                "channels": {"OTT-Messaging": {"wa": {
                    "type": "reply",
                    "reply": {
                        "body": {"text": WHATSAPP_QUESTION},
                        "action": {"buttons": [
                            {"type": "reply", "reply": {"id": "rating-5", "title": "Good"}},
                            {"type": "reply", "reply": {"id": "rating-3", "title": "OK"}},
                            {"type": "reply", "reply": {"id": "rating-1", "title": "Poor"}},
                        ]},
                    },
                }}},
            })
        );

        // The tap, as Webex Connect posts it: a `reply` event naming the button (no
        // `message`); the identifier decides.
        let mut tap = fixture_json("vendor/connect-whatsapp-reply-button.json");
        tap["replyButtonIdentifier"] = json!("rating-3");
        tap["replyButtonTitle"] = json!("OK");
        let answer: Value = app.post_signed(&tap.to_string()).await.json().await.unwrap();
        assert_eq!(answer["reply"], THANKS);
        assert_eq!(answer["conversationId"], json!(conversation_id));
        assert!(answer.get("guestUrl").is_none(), "{answer}");
        app.worker.run_once().await.unwrap();
        assert_eq!(app.broker_requests().await.len(), 1);
        assert_eq!(app.count("conversations").await, 1);
        assert_eq!(
            last_connect_body(&app).await["channels"]["OTT-Messaging"]["wa"]["text"]["body"],
            THANKS
        );
        assert_eq!(
            thread_texts(&app).await.last().unwrap(),
            "The customer rated the consultation 3/5."
        );
        let listed = ratings(&app).await;
        assert_eq!((listed[0]["rating"].clone(), listed[0]["channel"].clone()), (json!(3), json!("whatsapp")));
    }
}

db_test! {
    async fn survey_on_whatsapp_takes_a_typed_digit_too(db) {
        let app = survey_app(db).await;
        closed(&app, open_conversation(&app).await).await;
        let mut typed = fixture_json("connect-whatsapp-mo.json");
        typed["tid"] = json!("wamid.typed-1");
        typed["message"] = json!("4");
        let answer: Value = app.post_signed(&typed.to_string()).await.json().await.unwrap();
        assert_eq!((answer["reply"].clone(), answer["created"].clone()), (json!(THANKS), json!(false)));
        assert_eq!(ratings(&app).await[0]["rating"], 4);
    }
}

db_test! {
    async fn survey_answer_out_of_range_is_a_new_message(db) {
        let app = survey_app(db).await;
        let conversation_id = closed(&app, customer_texts(&app, "m-1", "Hello").await).await;

        let seven = customer_texts(&app, "m-2", "7").await;
        assert_eq!(seven["created"], true);
        assert!(seven["guestUrl"].is_string(), "{seven}");
        assert_ne!(seven["conversationId"], json!(conversation_id));
        assert_eq!(app.broker_requests().await.len(), 2);
        assert!(ratings(&app).await.is_empty());
        // In the conversation it opened, a digit is part of it, not a rating.
        let five = customer_texts(&app, "m-3", "5").await;
        assert_eq!(five["conversationId"], seven["conversationId"]);
        assert!(five["guestUrl"].is_string(), "{five}");
        assert!(ratings(&app).await.is_empty());

        // Closing that one asks again; a 9 is a new message there too.
        close(&app, seven["conversationId"].as_str().unwrap()).await;
        let nine = customer_texts(&app, "m-4", "9").await;
        assert_eq!(nine["created"], true);
        assert!(ratings(&app).await.is_empty());
    }
}

db_test! {
    async fn survey_answer_after_24_hours_is_a_new_message(db) {
        let app = survey_app(db).await;
        let conversation_id = closed(&app, customer_texts(&app, "m-1", "Hello").await).await;
        app.clock.advance(Duration::from_secs(24 * 3600 + 60));

        let late = customer_texts(&app, "m-2", "5").await;
        assert_eq!(late["created"], true);
        assert!(late["guestUrl"].is_string(), "{late}");
        assert_ne!(late["conversationId"], json!(conversation_id));
        assert_eq!(app.broker_requests().await.len(), 2);
        assert!(ratings(&app).await.is_empty());
    }
}

db_test! {
    async fn survey_is_not_asked_when_off(db) {
        // Off by default.
        let app = crate::opt_out::sms_app(db).await;
        let first = customer_texts(&app, "m-1", "Hello").await;
        close(&app, first["conversationId"].as_str().unwrap()).await;
        assert!(!connect_texts(&app, "/content").await.contains(&SMS_QUESTION.to_string()));
        assert_eq!(app.count("surveys").await, 0);
        let five = customer_texts(&app, "m-2", "5").await;
        assert_eq!(five["created"], true);
    }
}

db_test! {
    async fn survey_is_not_asked_of_a_customer_who_opted_out(db) {
        let app = survey_app(db).await;
        let first = customer_texts(&app, "m-1", "Hello").await;
        customer_texts(&app, "m-2", "STOP").await;
        close(&app, first["conversationId"].as_str().unwrap()).await;
        assert_eq!(app.count("surveys").await, 0);
        assert!(!connect_texts(&app, "/content").await.contains(&SMS_QUESTION.to_string()));
    }
}

db_test! {
    async fn survey_follows_a_meeting_that_ended_with_nothing_written_since(db) {
        let app = survey_app(db).await;
        let quiet = customer_texts(&app, "m-1", "Hello").await;
        let quiet_id = quiet["conversationId"].as_str().unwrap().to_string();
        let mut busy = json!({"channel": "sms", "from": "+14155550124", "to": "56263", "text": "Hi", "messageId": "m-2"});
        assert_eq!(app.post_flow(&busy.to_string()).await.status(), 200);
        app.worker.run_once().await.unwrap();

        // While the links work, nothing is closed.
        assert_eq!(app.bridge.close_ended_meetings().await.unwrap(), 0);

        // The links run out (ICB_LINK_TTL, 1 hour); the second customer wrote after that
        // (a STOP: kept in their conversation, no new meeting), so theirs stays open.
        app.clock.advance(Duration::from_secs(3600 + 60));
        busy["text"] = json!("STOP");
        busy["messageId"] = json!("m-3");
        assert_eq!(app.post_flow(&busy.to_string()).await.status(), 200);
        assert_eq!(app.bridge.close_ended_meetings().await.unwrap(), 1);
        let conversations = app.stored().conversations().await.into_iter();
        let open: Vec<String> = conversations.filter(|c| c.state == "open").map(|c| c.customer).collect();
        assert_eq!(open, ["+14155550124"]);
        app.worker.run_once().await.unwrap();
        assert_eq!(app.stored().conversation(&quiet_id).await.state, "closed");
        let sms: Vec<Value> = app.connect.received_requests().await.unwrap().iter()
            .map(|r| r.body_json().unwrap()).collect();
        let asked: Vec<&Value> = sms.iter().filter(|b| b["content"] == SMS_QUESTION).collect();
        assert_eq!(asked.len(), 1, "{sms:?}");
        assert_eq!(asked[0]["to"], "+14155550123");
        assert!(thread_texts(&app).await.iter().any(|t| t.starts_with("Conversation closed by icbridge, as its meeting ended.")));
        let closes = app.stored().audited(&["close"]).await;
        assert_eq!(closes[0].actor, "icbridge:meeting-ended");
        // Once closed, not again.
        assert_eq!(app.bridge.close_ended_meetings().await.unwrap(), 0);
    }
}
