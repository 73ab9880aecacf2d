//! Opting out: STOP stops everything to the customer, START brings it back, HELP answers;
//! the outbox sends nothing to an opted-out customer, whenever it was queued.

use serde_json::{json, Value};

use crate::desk::*;
use crate::helpers::*;
use icbridge::desks::DeskConfig;

const OPTED_OUT: &str = "You will get no more messages from us. Reply START to get them again.";
const OPTED_IN: &str = "You will get our messages again. Reply STOP to stop them, HELP for help.";

pub async fn sms_app(db: TestDb) -> TestApp {
    sms_app_with(db, &[], Vec::new()).await
}

/// A desk app that sends customers SMS and WhatsApp replies itself, with the admin API on,
/// more settings and more desks.
pub async fn sms_app_with(db: TestDb, extra: &[(&str, &str)], desks: Vec<DeskConfig>) -> TestApp {
    let mut settings = vec![("REPLY_MODE", "connect"), ("ADMIN_TOKEN", ADMIN_TOKEN)];
    settings.extend_from_slice(extra);
    let app = desk_app_with_desks(db, &settings, desks).await;
    mount_sms_accepted(&app.connect).await;
    app
}

/// The customer's SMS `text`, with message id `id`; the answer.
pub async fn customer_texts(app: &TestApp, id: &str, text: &str) -> Value {
    let body = json!({"channel": "sms", "from": "+14155550123", "to": "56263", "text": text, "messageId": id});
    let response = app.post_flow(&body.to_string()).await;
    assert_eq!(response.status(), 200);
    let answer = response.json().await.unwrap();
    app.worker.run_once().await.unwrap();
    answer
}

/// An expert's reply in the conversation's thread.
pub async fn expert_replies(app: &TestApp, id: &str, text: &str) {
    let event = expert_message(app, id, text, Some(&thread_id()), EXPERT_ROOM).await;
    deliver_event(app, &event).await;
    app.desk.run_once().await.unwrap();
}

/// The SMS texts the customer got, in order.
async fn sms_got(app: &TestApp) -> Vec<String> {
    connect_texts(app, "/content").await
}

async fn thread_got(app: &TestApp) -> Vec<String> {
    bot_posts_after_notification(app)
        .await
        .iter()
        .map(|p| p["markdown"].as_str().unwrap().to_string())
        .collect()
}

db_test! {
    async fn stop_stops_everything_to_the_customer_until_start(db) {
        let app = sms_app(db).await;
        let first = customer_texts(&app, "m-1", "Hello").await;
        let link = format!("Join your video consultation: {SHORT_GUEST_URL}");
        assert_eq!(sms_got(&app).await, vec![link.clone()]);

        // An expert's reply waits in the outbox when the customer texts STOP.
        expert_replies(&app, "e-1", "Your results are in").await;
        let stop = customer_texts(&app, "m-2", " Stop ").await;
        assert_eq!(stop["optedOut"], true);
        assert_eq!(stop["reply"], OPTED_OUT);
        assert_eq!(stop["conversationId"], first["conversationId"]);
        assert!(stop.get("guestUrl").is_none(), "{stop}");
        assert_eq!(app.broker_requests().await.len(), 1, "no meeting");
        assert_eq!(sms_got(&app).await, [link.clone(), OPTED_OUT.to_string()]);
        let cancelled: Value = admin(&app, reqwest::Method::GET, "/api/outbox?state=cancelled").await.json().await.unwrap();
        let cancelled = cancelled["outbox"].as_array().unwrap();
        assert_eq!(cancelled.len(), 1, "{cancelled:?}");
        assert_eq!(cancelled[0]["kind"], "customer_reply");
        assert_eq!(cancelled[0]["lastError"], "cancelled: the customer opted out (STOP)");
        assert!(thread_got(&app).await.iter().any(|m| m.starts_with("🛑 **The customer texted Stop**")));

        // Nothing reaches them: an expert's reply (the expert is told), a row queued by any
        // other way, a second STOP's confirmation.
        expert_replies(&app, "e-2", "Are you there?").await;
        app.worker.run_once().await.unwrap();
        assert_eq!(thread_got(&app).await.last().unwrap(), "Not sent: the customer opted out (STOP). They get messages again once they text START.");
        let conversation_id = first["conversationId"].as_str().unwrap();
        let payload = json!({"type": "sms", "from": "56263", "to": "+14155550123", "content": "queued elsewhere"});
        // A row queued behind icbridge's back, on purpose: the send-time check must still stop it.
        sqlx::query("INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at) VALUES ('customer_reply', $1, $2, 0, 0)")
            .bind(conversation_id)
            .bind(payload.to_string())
            .execute(&app.db)
            .await
            .unwrap();
        app.worker.run_once().await.unwrap();
        let again = customer_texts(&app, "m-3", "STOP").await;
        assert_eq!(again["optedOut"], true);
        assert_eq!(sms_got(&app).await, [link.clone(), OPTED_OUT.to_string()]);
        let states: Vec<String> = app.stored().outbox_of_kind("customer_reply").await.into_iter().map(|row| row.state).collect();
        assert_eq!(states, ["sent", "cancelled", "cancelled"]);

        // Their later messages reach the experts, marked, with no meeting and no reply.
        let later = customer_texts(&app, "m-4", "One more question").await;
        assert_eq!((later["optedOut"].clone(), later["reply"].clone()), (json!(true), json!("")));
        assert_eq!(app.broker_requests().await.len(), 1);
        let relayed = thread_got(&app).await.last().unwrap().clone();
        assert!(relayed.starts_with("**Customer who opted out** (nothing is sent to them until they text START) **:**\n\n> One more question"), "{relayed}");
        // A repeated STOP is answered as before and changes nothing.
        assert_eq!(customer_texts(&app, "m-2", " Stop ").await, stop);

        // START: back in, confirmed; replies go out again. HELP gets the help text.
        let start = customer_texts(&app, "m-5", "start").await;
        assert!(start.get("optedOut").is_none(), "{start}");
        assert_eq!(start["reply"], OPTED_IN);
        expert_replies(&app, "e-3", "Welcome back").await;
        app.worker.run_once().await.unwrap();
        let help = customer_texts(&app, "m-6", "HELP").await;
        assert!(help["reply"].as_str().unwrap().starts_with("This number connects you with our experts"));
        assert_eq!(
            sms_got(&app).await,
            [link, OPTED_OUT.to_string(), OPTED_IN.to_string(), "Welcome back".to_string(), help["reply"].as_str().unwrap().to_string()]
        );
        let sent = app.stored().outbox_in_state("sent").await.into_iter();
        let kinds: Vec<String> = sent.map(|row| row.kind).filter(|kind| kind != "expert_notice").collect();
        assert_eq!(kinds, ["expert_notification", "customer_reply", "opt_out_reply", "opt_out_reply", "customer_reply", "opt_out_reply"]);
        assert_eq!(app.transcript(conversation_id).await.len(), 9);
    }
}

db_test! {
    async fn in_response_mode_the_flow_is_told_and_nothing_opens(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        let stop = json!({"channel": "sms", "from": "+14155550123", "to": "56263", "text": "UNSUBSCRIBE", "messageId": "s-1"});
        let answer: Value = app.post_flow(&stop.to_string()).await.json().await.unwrap();
        assert_eq!(answer, json!({"open": true, "optedOut": true, "reply": OPTED_OUT, "created": false}));
        let later = json!({"channel": "sms", "from": "+14155550123", "to": "56263", "text": "hi", "messageId": "s-2"});
        let answer: Value = app.post_flow(&later.to_string()).await.json().await.unwrap();
        assert_eq!(answer["optedOut"], true);
        assert_eq!(answer["reply"], "");
        assert!(answer["conversationId"].is_string());
        assert!(app.broker_requests().await.is_empty());
        assert_eq!(app.count("opt_outs").await, 1);
        // Someone else's messages go on as usual.
        let other = json!({"channel": "sms", "from": "+14155550199", "to": "56263", "text": "STOP please", "messageId": "o-1"});
        let answer: Value = app.post_flow(&other.to_string()).await.json().await.unwrap();
        assert_eq!(answer["guestUrl"], SHORT_GUEST_URL);
    }
}

db_test! {
    async fn a_desk_words_its_keywords_and_switches_them_on_for_whatsapp(db) {
        let mut upstreams = Upstreams::start(db).await;
        upstreams.desks = vec![DeskConfig {
            name: "clinique".into(),
            room_id: Some("room-clinique".into()),
            addresses: vec!["a_155054536910425280".into()],
            opt_out: icbridge::customers::opt_out::OptOutConfig {
                stop: Some(vec!["arret".into()]),
                whatsapp: true,
                ..Default::default()
            },
            texts: icbridge::desks::DeskTexts {
                opted_out: Some("C'est noté, {{ customer_name }}.".into()),
                ..Default::default()
            },
            ..DeskConfig::default()
        }];
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        let mut message = fixture_json("connect-whatsapp-mo.json");
        message["message"] = json!("Arrêt");
        let answer: Value = app.post_signed(&message.to_string()).await.json().await.unwrap();
        assert_eq!(answer["guestUrl"], SHORT_GUEST_URL, "not a word of this desk: a message");
        message["tid"] = json!("wamid.arret");
        message["message"] = json!("ARRET");
        let answer: Value = app.post_signed(&message.to_string()).await.json().await.unwrap();
        assert_eq!((answer["optedOut"].clone(), answer["reply"].clone()), (json!(true), json!("C'est noté, Alice Example.")));
        // The default desk (SMS) keeps the usual words; on WhatsApp it has none.
        let sms = json!({"channel": "sms", "from": "+14155550123", "to": "56263", "text": "stop"});
        let answer: Value = app.post_flow(&sms.to_string()).await.json().await.unwrap();
        assert_eq!(answer["reply"], OPTED_OUT);
        let mut elsewhere = fixture_json("connect-whatsapp-mo.json");
        elsewhere["appId"] = json!("a_other");
        elsewhere["message"] = json!("STOP");
        let answer: Value = app.post_signed(&elsewhere.to_string()).await.json().await.unwrap();
        assert!(answer.get("optedOut").is_none(), "{answer}");
    }
}
