//! Every message icbridge sends fits its channel: Webex Connect's SMS API takes 4,000
//! characters (receipt 7107 beyond), a WhatsApp text 4,096. And each API on its own host.

use serde_json::{json, Value};
use wiremock::MockServer;

use crate::desk::*;
use crate::helpers::*;

/// An expert's reply of `chars` characters: numbered sentences, so order and wholeness
/// show.
fn long_reply(chars: usize) -> String {
    let mut text = String::new();
    let mut n = 0;
    while text.chars().count() < chars {
        n += 1;
        text.push_str(&format!(
            "Sentence {n} of the care plan, to be read in order. "
        ));
    }
    text.chars()
        .take(chars)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// What the parts say together: the numbers taken off, the words in order.
fn rejoined(parts: &[String]) -> String {
    parts
        .iter()
        .map(|part| part.split_once(") ").unwrap().1)
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

async fn sms_conversation(app: &TestApp) {
    mount_sms_accepted(&app.connect).await;
    assert_eq!(
        app.post_signed(&fixture("connect-sms-mo.json"))
            .await
            .status(),
        200
    );
    app.worker.run_once().await.unwrap();
}

async fn expert_replies(app: &TestApp, id: &str, text: &str) {
    let event = expert_message(app, id, text, Some(&thread_id()), EXPERT_ROOM).await;
    deliver_event(app, &event).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
}

db_test! {
    async fn long_replies_to_an_sms_customer_arrive_whole_in_parts_that_fit(db) {
        let app = desk_app(db, &[]).await;
        sms_conversation(&app).await;
        for (id, chars, parts) in [("m-5000", 5000, 2), ("m-9000", 9000, 3)] {
            let reply = long_reply(chars);
            expert_replies(&app, id, &reply).await;
            let sent = connect_texts(&app, "/content").await;
            let sent: Vec<String> = sent[sent.len() - parts..].to_vec();
            for (index, part) in sent.iter().enumerate() {
                assert!(part.chars().count() <= 4000, "{} characters", part.chars().count());
                assert!(part.starts_with(&format!("({}/{parts}) ", index + 1)), "{part:.20}");
            }
            let words: Vec<&str> = reply.split_whitespace().collect();
            assert_eq!(rejoined(&sent), words.join(" "));
        }
        assert_eq!(app.stored().outbox_in_state("dead").await.len(), 0);
    }
}

db_test! {
    async fn long_replies_to_a_whatsapp_customer_arrive_whole_in_parts_that_fit(db) {
        let app = desk_app(db, &[]).await;
        open_conversation(&app).await;
        for (id, chars, parts) in [("m-5000", 5000, 2), ("m-9000", 9000, 3)] {
            let reply = long_reply(chars);
            expert_replies(&app, id, &reply).await;
            let sent = connect_texts(&app, "/channels/OTT-Messaging/wa/text/body").await;
            let sent: Vec<String> = sent[sent.len() - parts..].to_vec();
            assert!(sent.iter().all(|part| part.chars().count() <= 4096));
            let words: Vec<&str> = reply.split_whitespace().collect();
            assert_eq!(rejoined(&sent), words.join(" "));
        }
    }
}

db_test! {
    async fn with_long_replies_refused_the_expert_is_told_and_nothing_goes(db) {
        let app = desk_app(db, &[("LONG_REPLIES", "refuse")]).await;
        sms_conversation(&app).await;
        expert_replies(&app, "m-long", &long_reply(4100)).await;
        assert!(connect_texts(&app, "/content").await.is_empty());
        let told = bot_posts_after_notification(&app).await;
        assert_eq!(
            told.last().unwrap()["markdown"],
            "Not sent to the customer: your reply is 100 characters longer than SMS takes (4000 characters). Shorten it and send it again."
        );
        // A reply that fits goes as before.
        expert_replies(&app, "m-short", "See you at 3").await;
        assert_eq!(connect_texts(&app, "/content").await, ["See you at 3"]);
    }
}

db_test! {
    async fn sms_and_whatsapp_go_to_their_own_hosts(db) {
        let sms_host = MockServer::start().await;
        let mut upstreams = Upstreams::start(db).await;
        upstreams
            .set("REPLY_MODE", "connect")
            .unset("CONNECT_API_URL")
            .set("CONNECT_SMS_URL", &sms_host.uri());
        let whatsapp_host = upstreams.connect.uri();
        upstreams.set("CONNECT_WHATSAPP_URL", &whatsapp_host);
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        mount_webex_messages(&app.webex).await;
        mount_sms_accepted(&sms_host).await;
        mount_whatsapp_queued(&app.connect).await;
        assert_eq!(app.post_signed(&fixture("connect-sms-mo.json")).await.status(), 200);
        assert_eq!(app.post_signed(&fixture("connect-whatsapp-mo.json")).await.status(), 200);
        app.worker.run_once().await.unwrap();
        let paths = |requests: Vec<wiremock::Request>| -> Vec<String> {
            requests.iter().map(|r| r.url.path().to_string()).collect()
        };
        assert_eq!(paths(sms_host.received_requests().await.unwrap()), ["/v1/sms/messages"]);
        assert_eq!(paths(app.connect.received_requests().await.unwrap()), ["/resources/v1/messaging"]);
        let sms: Value = sms_host.received_requests().await.unwrap()[0].body_json().unwrap();
        assert_eq!(sms["to"], json!("+14155550123"));
    }
}
