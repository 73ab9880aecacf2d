//! Every payload in `tests/fixtures/vendor/` (transcribed from the vendors' documented
//! samples, see its README) through the real endpoints, as the vendor sends it.

use serde_json::{json, Value};

use crate::desk::*;
use crate::helpers::*;

/// The vendor's Webex samples are from 2026-11-20 15:03:10 UTC: the app's clock stands
/// ten seconds later, when Webex would deliver them.
const SAMPLES_DELIVERED_AT: &str = "2026-11-20T15:03:20Z";

async fn answer(app: &TestApp, name: &str) -> (u16, Value) {
    let response = app.post_signed(&fixture(&format!("vendor/{name}"))).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: {status} {text}"));
    (status, body)
}

db_test! {
    async fn webex_connects_whatsapp_samples_are_messages(db) {
        let app = spawn_replying_app(db).await;
        mount_whatsapp_queued(&app.connect).await;
        for (name, text) in [
            ("connect-whatsapp-mo.json", None),
            ("connect-whatsapp-mo-text.json", None),
            ("connect-whatsapp-mo-image.json", Some("")),
            ("connect-whatsapp-mo-location.json", Some("")),
            ("connect-whatsapp-document.json", Some("")),
            ("connect-whatsapp-sticker.json", Some("")),
            // Taps: the title is what the customer said.
            ("connect-whatsapp-reply-button.json", Some("Good")),
            ("connect-whatsapp-postback.json", Some("Yes")),
        ] {
            let (status, body) = answer(&app, name).await;
            assert_eq!(status, 200, "{name}: {body}");
            assert!(body["conversationId"].is_string(), "{name}: {body}");
            let sample = fixture_json(&format!("vendor/{name}"));
            let (stored, _) = app.stored_message( sample["tid"].as_str().unwrap()).await;
            if let Some(text) = text {
                assert_eq!(stored, text, "{name}");
            }
        }
        // The vendor writes some WhatsApp ids with `+`: one customer, one conversation.
        assert_eq!(app.count("conversations").await, 1);
        let (_, media) = app.stored_message( "5c981edd-5446-4b1a-f722-7646454606bd_0").await;
        let media: Value = serde_json::from_str(&media.unwrap()).unwrap();
        assert_eq!(media["attachments"][0]["mimeType"], "image/webp");
        assert_eq!(media["attachments"][0]["sticker"], true);
        let (_, media) = app.stored_message( "6784cbd5-144f-4c1e-b903-0a36dda92892_0").await;
        let media: Value = serde_json::from_str(&media.unwrap()).unwrap();
        assert_eq!(media["attachments"][0]["mimeType"], "application/zip");
        let (_, media) = app.stored_message( "3beecbfb-73fd-403e-a27f-4e797fb22ffd_0").await;
        let media: Value = serde_json::from_str(&media.unwrap()).unwrap();
        assert_eq!(media["location"]["latitude"], 37.7793);
    }
}

db_test! {
    async fn webex_connects_sms_sample_is_a_message_and_receipts_are_recorded(db) {
        let app = spawn_replying_app(db).await;
        mount_sms_accepted(&app.connect).await;
        let (status, body) = answer(&app, "connect-sms-mo.json").await;
        assert_eq!(status, 200, "{body}");
        assert!(body["guestUrl"].is_string());
        for receipt in ["connect-delivery-receipt.json", "connect-sms-delivery-receipt-7107.json"] {
            let (status, body) = answer(&app, receipt).await;
            assert_eq!((status, body), (200, json!({"status": "recorded"})), "{receipt}");
        }
        assert_eq!(app.count("delivery_receipts").await, 2);
    }
}

db_test! {
    async fn webex_samples_on_a_webhook_registered_weeks_before_are_handled(db) {
        let app = desk_app(db, &[]).await;
        open_conversation(&app).await;
        app.clock.set(icbridge::domain::clock::parse_rfc3339(SAMPLES_DELIVERED_AT).unwrap());
        // The message the event names, as the Messages API's sample lists it (its file
        // link, on another host, left out: only Webex's own links are fetched).
        let mut message = fixture_json("vendor/webex-messages-list.json")["items"][0].clone();
        message.as_object_mut().unwrap().remove("files");
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path(format!("/v1/messages/{}", message["id"].as_str().unwrap())))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(&message))
            .mount(&app.webex)
            .await;
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path_regex("^/v1/attachment/actions/"))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_raw(
                fixture("vendor/webex-attachment-action.json"),
                "application/json",
            ))
            .mount(&app.webex)
            .await;
        for name in ["webex-event-message-created.json", "webex-event-attachment-action-created.json"] {
            let event = fixture(&format!("vendor/{name}"));
            let sample: Value = serde_json::from_str(&event).unwrap();
            assert!(sample["created"].as_str().unwrap() < "2026-11-01", "registered weeks before");
            let response = post_webex(&app, &event, Some(&spark_signature(&event))).await;
            assert_eq!(response.status(), 200, "{name}");
            assert_eq!(response.json::<Value>().await.unwrap()["status"], "recorded");
        }
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        let states: Vec<String> = app.stored().webex_events().await.into_iter().map(|event| event.state).collect();
        assert_eq!(states, ["done", "done"]);
        // The reply in the conversation's thread reached the customer, mention removed.
        assert_eq!(
            connect_texts(&app, "/channels/OTT-Messaging/wa/text/body").await.last().unwrap(),
            "Thanks Alice, I am joining the call now"
        );
    }
}
