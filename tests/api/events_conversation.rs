//! Events of a conversation after it opened, as a receiver gets them: the expert's reply
//! (`message.sent`), link openings, taking, releasing and transferring, the close (with its
//! durations, and the transcript for a subscription that asks) and the rating. Each once,
//! and without texts or numbers unless included.

use std::time::Duration;

use serde_json::Value;

use crate::desk::*;
use crate::events::{deliver_all, Received, Receiver};
use crate::helpers::*;
use crate::opt_out::{customer_texts, expert_replies};

const PUBLIC: &str = "https://bridge.example.com";
const EXPERT_EMAIL: &str = "expert@example.com";

/// An SMS app with its own links, the survey, two more desks, and `subscriptions`.
async fn app_with(db: TestDb, subscriptions: Vec<Subscription>) -> TestApp {
    let pediatrics = icbridge::desks::DeskConfig {
        name: "pediatrics".into(),
        room_id: Some("room-pediatrics".into()),
        addresses: vec!["56299".into()],
        ..icbridge::desks::DeskConfig::default()
    };
    let app = desk_app_subscribed(
        db,
        &[
            ("REPLY_MODE", "connect"),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("PUBLIC_URL", PUBLIC),
            ("SURVEY", "true"),
        ],
        vec![pediatrics],
        subscriptions,
    )
    .await;
    mount_sms_accepted(&app.connect).await;
    app
}

/// A receiver that accepts everything, and its subscription with `include`.
async fn receiver(name: &str, include: Includes) -> (Receiver, Subscription) {
    let receiver = Receiver::start().await;
    receiver.accept().await;
    let mut subscription = receiver.subscription(name);
    subscription.include = include;
    (receiver, subscription)
}

/// The events of type `kind` the receiver got.
async fn of_type(receiver: &Receiver, kind: &str) -> Vec<Received> {
    receiver
        .received()
        .await
        .into_iter()
        .filter(|r| r.kind() == kind)
        .collect()
}

/// The one event of type `kind` the receiver got (its data), checked to be one.
async fn the_one(receiver: &Receiver, kind: &str) -> Value {
    let events = of_type(receiver, kind).await;
    assert_eq!(events.len(), 1, "one {kind}: {events:#?}");
    events[0].body["data"].clone()
}

/// An expert's thread message, processed and what it queued sent.
async fn expert_says(app: &TestApp, id: &str, text: &str) {
    expert_replies(app, id, text).await;
    app.worker.run_once().await.unwrap();
}

fn host_link(notification: &str) -> String {
    let code = notification.split(&format!("{PUBLIC}/j/")).nth(1).unwrap()[..22].to_string();
    format!("{PUBLIC}/j/{code}")
}

db_test! {
    async fn an_experts_reply_is_message_sent_its_text_only_when_included(db) {
        let (plain, plain_sub) = receiver("crm", Includes::default()).await;
        let texts = Includes { texts: true, ..Includes::default() };
        let (full, full_sub) = receiver("emr", texts).await;
        let app = app_with(db, vec![plain_sub, full_sub]).await;
        let answer = customer_texts(&app, "m-1", "Hello").await;
        expert_says(&app, "e-1", "Hello, I am your advisor").await;
        // Webex sends the same event again: stored once, one event.
        expert_says(&app, "e-1", "Hello, I am your advisor").await;
        deliver_all(&app).await;

        let data = the_one(&plain, "message.sent").await;
        assert_eq!(data["conversation_id"], answer["conversationId"]);
        assert_eq!(data["desk"], "default");
        assert_eq!(data["direction"], "outbound");
        assert_eq!(data["author"], "expert");
        assert_eq!(data["channel"], "sms");
        assert!(data["message_id"].is_i64(), "{data}");
        assert_eq!(data["customer"], "+1415•••0123");
        assert!(data.get("text").is_none(), "no text unless included: {data}");
        assert!(data.get("media").is_none(), "{data}");
        let everything = serde_json::to_string(&plain.received().await.iter().map(|r| &r.body).collect::<Vec<_>>()).unwrap();
        assert!(!everything.contains(EXPERT_EMAIL), "no expert address in messages: {everything}");
        assert!(!everything.contains("14155550123"));

        let data = the_one(&full, "message.sent").await;
        assert_eq!(data["text"], "Hello, I am your advisor");
    }
}

db_test! {
    async fn the_first_opening_of_each_link_is_link_opened(db) {
        let (plain, subscription) = receiver("crm", Includes::default()).await;
        let app = app_with(db, vec![subscription]).await;
        let answer = customer_texts(&app, "m-1", "Hello").await;
        let guest = answer["guestUrl"].as_str().unwrap().to_string();
        let notification = app.webex_posts().await[0]["markdown"].as_str().unwrap().to_string();
        let host = host_link(&notification);
        assert_ne!(guest, host);

        app.clock.advance(Duration::from_secs(40));
        let opened_at = app.clock.now_ms();
        for _ in 0..2 {
            assert_eq!(app.own_link_target(&guest).await, Ok(SHORT_GUEST_URL.to_string()));
        }
        app.clock.advance(Duration::from_secs(20));
        for _ in 0..2 {
            assert_eq!(app.own_link_target(&host).await, Ok(SHORT_HOST_URL.to_string()));
        }
        deliver_all(&app).await;

        let opened = of_type(&plain, "link.opened").await;
        assert_eq!(opened.len(), 2, "each link's first opening once: {opened:#?}");
        let (customer, expert) = (&opened[0].body, &opened[1].body);
        assert_eq!(customer["data"]["role"], "customer");
        assert_eq!(expert["data"]["role"], "expert");
        let meeting = the_one(&plain, "meeting.created").await["meeting_id"].clone();
        for event in [customer, expert] {
            assert_eq!(event["data"]["meeting_id"], meeting);
            assert_eq!(event["data"]["conversation_id"], answer["conversationId"]);
            assert!(event["data"].get("links").is_none(), "{event}");
            assert!(!event.to_string().contains("/j/"), "no link in {event}");
        }
        assert_eq!(
            customer["data"]["opened_at"],
            icbridge::domain::events::rfc3339_ms(opened_at)
        );
        assert_eq!(
            expert["data"]["opened_at"],
            icbridge::domain::events::rfc3339_ms(opened_at + 20_000)
        );
        // The thread still hears only of the customer's opening.
        let openings = app
            .webex_posts()
            .await
            .iter()
            .filter(|p| p["markdown"].as_str().unwrap_or_default().contains("opened the link"))
            .count();
        assert_eq!(openings, 1);
    }
}

db_test! {
    async fn taking_releasing_and_transferring_are_events_each_once(db) {
        let (plain, subscription) = receiver("crm", Includes::default()).await;
        let app = app_with(db, vec![subscription]).await;
        let answer = customer_texts(&app, "m-1", "Hello").await;
        expert_says(&app, "t-1", "take").await;
        // Taking what one has is no new assignment.
        expert_says(&app, "t-2", "take").await;
        expert_says(&app, "t-3", "release").await;
        // Releasing what nobody has neither.
        expert_says(&app, "t-4", "release").await;
        expert_says(&app, "t-5", "transfer pediatrics").await;
        deliver_all(&app).await;

        let types: Vec<String> = plain
            .types()
            .await
            .into_iter()
            .filter(|t| t.starts_with("conversation.") && t != "conversation.opened")
            .collect();
        assert_eq!(
            types,
            ["conversation.assigned", "conversation.released", "conversation.transferred"]
        );
        let assigned = the_one(&plain, "conversation.assigned").await;
        assert_eq!(assigned["expert"], EXPERT_EMAIL);
        assert_eq!(assigned["desk"], "default");
        assert_eq!(assigned["conversation_id"], answer["conversationId"]);
        let released = the_one(&plain, "conversation.released").await;
        assert_eq!(released["expert"], EXPERT_EMAIL);
        let transferred = the_one(&plain, "conversation.transferred").await;
        assert_eq!(transferred["from_desk"], "default");
        assert_eq!(transferred["to_desk"], "pediatrics");
        assert_eq!(transferred["desk"], "pediatrics");
        assert_eq!(transferred["conversation_id"], answer["conversationId"]);
    }
}

db_test! {
    async fn closing_tells_durations_and_the_transcript_only_to_who_asks(db) {
        let (plain, plain_sub) = receiver("crm", Includes::default()).await;
        let transcript = Includes { transcript: true, texts: true, ..Includes::default() };
        let (full, full_sub) = receiver("emr", transcript).await;
        let app = app_with(db, vec![plain_sub, full_sub]).await;
        let answer = customer_texts(&app, "m-1", "Hello").await;
        let notification = app.webex_posts().await[0]["markdown"].as_str().unwrap().to_string();
        let host = host_link(&notification);

        app.clock.advance(Duration::from_secs(30));
        expert_says(&app, "e-1", "Hello, I am your advisor").await;
        app.clock.advance(Duration::from_secs(60));
        assert_eq!(app.own_link_target(&host).await, Ok(SHORT_HOST_URL.to_string()));
        app.clock.advance(Duration::from_secs(120));
        expert_says(&app, "e-close", "close").await;
        // Closing again changes nothing.
        expert_says(&app, "e-close-2", "close").await;
        deliver_all(&app).await;

        let data = the_one(&plain, "conversation.closed").await;
        assert_eq!(data["conversation_id"], answer["conversationId"]);
        assert_eq!(data["closed_by"], EXPERT_EMAIL);
        assert_eq!(data["first_response_s"], 30);
        assert_eq!(data["in_meeting_s"], 120);
        assert_eq!(data["total_s"], 210);
        assert!(data.get("transcript").is_none(), "no transcript unless included: {data}");

        let data = the_one(&full, "conversation.closed").await;
        let lines = data["transcript"].as_array().expect("the transcript");
        let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
        assert_eq!(texts[..2], ["Hello", "Hello, I am your advisor"], "{data}");
        assert_eq!(lines[0]["author"], "customer");
        assert_eq!(lines[1]["author"], "expert");
    }
}

db_test! {
    async fn a_conversation_closed_without_reply_or_meeting_has_null_durations(db) {
        let (plain, subscription) = receiver("crm", Includes::default()).await;
        let app = app_with(db, vec![subscription]).await;
        let answer = customer_texts(&app, "m-1", "Hello").await;
        app.clock.advance(Duration::from_secs(5));
        let id = answer["conversationId"].as_str().unwrap();
        let closed = admin(&app, reqwest::Method::POST, &format!("/api/conversations/{id}/close")).await;
        assert_eq!(closed.status(), 200);
        deliver_all(&app).await;
        let data = the_one(&plain, "conversation.closed").await;
        assert!(data["first_response_s"].is_null(), "{data}");
        assert!(data["in_meeting_s"].is_null(), "{data}");
        assert_eq!(data["total_s"], 5);
        assert!(data["closed_by"].is_string(), "{data}");
    }
}

db_test! {
    async fn a_rating_is_rating_received_once(db) {
        let (plain, subscription) = receiver("crm", Includes::default()).await;
        let app = app_with(db, vec![subscription]).await;
        let answer = customer_texts(&app, "m-1", "Hello").await;
        let id = answer["conversationId"].as_str().unwrap();
        let closed = admin(&app, reqwest::Method::POST, &format!("/api/conversations/{id}/close")).await;
        assert_eq!(closed.status(), 200);
        app.worker.run_once().await.unwrap();
        customer_texts(&app, "m-2", "5").await;
        // The same message again: recorded once.
        customer_texts(&app, "m-2", "5").await;
        deliver_all(&app).await;

        let data = the_one(&plain, "rating.received").await;
        assert_eq!(data["rating"], 5);
        assert_eq!(data["desk"], "default");
        assert_eq!(data["conversation_id"], answer["conversationId"]);
        assert!(data.get("customer").is_none(), "{data}");
        assert_eq!(of_type(&plain, "message.received").await.len(), 1, "the rating is no message");
    }
}

db_test! {
    async fn an_experts_files_are_named_only_for_who_includes_media(db) {
        let (plain, plain_sub) = receiver("crm", Includes::default()).await;
        let media = Includes { media: true, ..Includes::default() };
        let (full, full_sub) = receiver("emr", media).await;
        // With ICB_PUBLIC_URL, an expert's file is a signed link to icbridge's /media/.
        let public_url = [("PUBLIC_URL", crate::console::PUBLIC_URL)];
        let app = desk_app_subscribed(db, &public_url, Vec::new(), vec![plain_sub, full_sub]).await;
        customer_texts(&app, "m-1", "Hello").await;
        let file = crate::expert_files::webex_file(&app, "plan", "application/pdf", "plan.pdf", "%PDF-1.7").await;
        crate::expert_files::expert_sends(&app, "Your plan", &[file]).await;
        deliver_all(&app).await;

        let data = the_one(&plain, "message.sent").await;
        assert!(data.get("media").is_none(), "no media unless included: {data}");
        let data = the_one(&full, "message.sent").await;
        let attachment = &data["media"]["attachments"][0];
        assert_eq!((&attachment["name"], &attachment["mime_type"]), (&"plan.pdf".into(), &"application/pdf".into()));
        let link = attachment["url"].as_str().unwrap();
        let media = format!("{}/media/", crate::console::PUBLIC_URL);
        assert!(link.starts_with(&media) && link.ends_with("/plan.pdf"), "{link}");
        // The link is icbridge's own, and it serves the file.
        let served = app.http.get(link.replace(crate::console::PUBLIC_URL, &app.address)).send().await.unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.bytes().await.unwrap().as_ref(), b"%PDF-1.7");
        assert!(data.get("text").is_none(), "texts are not media: {data}");
        assert!(!data.to_string().contains("/v1/contents/"), "no Webex link: {data}");
    }
}

db_test! {
    async fn a_reply_kept_for_an_opted_out_customer_is_not_message_sent(db) {
        let (plain, subscription) = receiver("crm", Includes::default()).await;
        let app = app_with(db, vec![subscription]).await;
        customer_texts(&app, "m-1", "Hello").await;
        let stop = customer_texts(&app, "m-2", "STOP").await;
        assert_eq!(stop["optedOut"], true);
        expert_says(&app, "e-1", "Are you there?").await;
        deliver_all(&app).await;
        assert!(of_type(&plain, "message.sent").await.is_empty());
        assert_eq!(app.transcript(stop["conversationId"].as_str().unwrap()).await.last().unwrap(), "Are you there?");
    }
}

db_test! {
    async fn a_whole_consultation_tells_every_event_type_in_order_each_once(db) {
        let (plain, subscription) = receiver("crm", Includes::default()).await;
        let app = app_with(db, vec![subscription]).await;
        // A customer writes, writes again, opens the link; an expert takes the
        // conversation, answers, lets it go, moves it to another desk; it is closed and rated.
        let answer = customer_texts(&app, "m-1", "Hello").await;
        customer_texts(&app, "m-2", "A follow-up").await;
        let guest = answer["guestUrl"].as_str().unwrap().to_string();
        assert!(app.own_link_target(&guest).await.is_ok());
        expert_says(&app, "t-1", "take").await;
        expert_says(&app, "t-2", "Hello, I am your advisor").await;
        expert_says(&app, "t-3", "release").await;
        expert_says(&app, "t-4", "transfer pediatrics").await;
        let first = answer["conversationId"].as_str().unwrap().to_string();
        let closed = admin(&app, reqwest::Method::POST, &format!("/api/conversations/{first}/close")).await;
        assert_eq!(closed.status(), 200);
        app.worker.run_once().await.unwrap();
        customer_texts(&app, "m-3", "5").await;
        // A consultation is booked, reminded and cancelled.
        let starts_at = (app.clock.now_ms() / 1000) * 1000 + 120 * 60_000;
        let booking = serde_json::json!({
            "channel": "sms", "customer": "+14155550123", "to": "56263", "name": "Ann",
            "startsAt": icbridge::domain::clock::rfc3339(starts_at), "durationMinutes": 30,
        });
        let booked = app.http.post(format!("{}/api/appointments", app.address))
            .bearer_auth(ADMIN_TOKEN).json(&booking).send().await.unwrap();
        assert_eq!(booked.status(), 201);
        let appointment: Value = booked.json().await.unwrap();
        deliver_all(&app).await;
        app.clock.set(starts_at - 15 * 60_000);
        deliver_all(&app).await;
        let id = appointment["id"].as_str().unwrap();
        let cancelled = admin(&app, reqwest::Method::DELETE, &format!("/api/appointments/{id}")).await;
        assert!(cancelled.status().is_success());
        // The customer opts out and back in; then their data is erased.
        customer_texts(&app, "m-4", "STOP").await;
        customer_texts(&app, "m-5", "START").await;
        deliver_all(&app).await;
        let erased = admin(&app, reqwest::Method::POST, "/api/customers/+14155550123/erase").await;
        assert_eq!(erased.status(), 200);
        deliver_all(&app).await;

        let received = plain.received().await;
        let types: std::collections::BTreeSet<&str> = received.iter().map(|r| r.kind()).collect();
        let all: std::collections::BTreeSet<&str> = icbridge::domain::events::EventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        assert_eq!(types, all, "every type");
        let ids: std::collections::HashSet<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
        assert_eq!(ids.len(), received.len(), "each event once");
        let of = |conversation: &str| -> Vec<&str> {
            received
                .iter()
                .filter(|r| r.body["data"]["conversation_id"] == conversation)
                .map(|r| r.kind())
                .collect()
        };
        assert_eq!(
            of(&first),
            [
                "conversation.opened", "message.received", "meeting.created", "message.received",
                "link.opened", "conversation.assigned", "message.sent", "conversation.released",
                "conversation.transferred", "conversation.closed", "rating.received",
            ]
        );
        assert_eq!(
            of(appointment["conversationId"].as_str().unwrap()),
            [
                "conversation.opened", "meeting.created", "appointment.booked",
                "appointment.reminded", "appointment.cancelled", "conversation.closed",
            ]
        );
        let about_the_customer: Vec<&str> = received
            .iter()
            .filter(|r| r.kind().starts_with("customer."))
            .map(|r| r.kind())
            .collect();
        assert_eq!(about_the_customer, ["customer.opted_out", "customer.opted_in", "customer.erased"]);
        // Nothing personal left icbridge for a subscription that did not ask.
        for event in &received {
            let text = event.body.to_string();
            assert!(!text.contains("14155550123"), "{text}");
            for said in ["Hello", "A follow-up", "advisor"] {
                assert!(!text.contains(said), "{text}");
            }
        }
    }
}
