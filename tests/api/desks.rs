//! Desks: each conversation goes to the experts of one desk, by the address the customer
//! wrote to, the words of their first message, or the default.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use icbridge::desks::DeskConfig;

fn desk(name: &str, room: &str) -> DeskConfig {
    DeskConfig {
        name: name.into(),
        room_id: Some(room.into()),
        ..DeskConfig::default()
    }
}

/// Pediatrics serves the short code 56299 and first messages about a child; mortgages the
/// WhatsApp app a_mortgage; the rest goes to the default desk (`ICB_EXPERT_ROOM_ID`).
fn two_desks() -> Vec<DeskConfig> {
    let mut pediatrics = desk("pediatrics", "room-pediatrics");
    pediatrics.addresses = vec!["56299".into()];
    pediatrics.keywords = vec!["child".into()];
    let mut mortgages = desk("mortgages", "room-mortgages");
    mortgages.addresses = vec!["a_mortgage".into()];
    vec![pediatrics, mortgages]
}

/// (room, parent) of every message Webex received, in order.
async fn rooms(app: &TestApp) -> Vec<(String, Option<String>)> {
    app.webex_posts()
        .await
        .iter()
        .map(|p| {
            (
                p["roomId"].as_str().unwrap().to_string(),
                p["parentId"].as_str().map(str::to_string),
            )
        })
        .collect()
}

db_test! {
    async fn conversations_go_to_their_desk_by_address_keyword_or_default(db) {
        let mut upstreams = Upstreams::start(db).await;
        upstreams.desks = two_desks();
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        mount_webex_messages(&app.webex).await;
        let messages = [
            json!({"channel": "sms", "from": "+14155550101", "to": "56299", "text": "hello"}),
            json!({"channel": "whatsapp", "from": "14155550102", "to": "a_mortgage", "text": "hello"}),
            json!({"channel": "sms", "from": "+14155550103", "to": "56263", "text": "My Child has a fever"}),
            json!({"channel": "sms", "from": "+14155550104", "to": "56263", "text": "hello"}),
        ];
        for message in &messages {
            assert_eq!(app.post_flow(&message.to_string()).await.status(), 200);
            app.worker.run_once().await.unwrap();
        }
        let expected: Vec<(String, Option<String>)> = ["room-pediatrics", "room-mortgages", "room-pediatrics", EXPERT_ROOM]
            .iter()
            .map(|room| (room.to_string(), None))
            .collect();
        assert_eq!(rooms(&app).await, expected);
        let mut conversations = app.stored().conversations().await;
        conversations.sort_by(|a, b| a.customer.cmp(&b.customer));
        let desks: Vec<Option<String>> = conversations.into_iter().map(|c| c.desk).collect();
        assert_eq!(
            desks,
            // By customer: +1…0101, +1…0103, +1…0104 (SMS), then 1…0102 (WhatsApp).
            ["pediatrics", "pediatrics", "default", "mortgages"].map(|d| Some(d.to_string()))
        );
        let metrics = app.metrics_page().await;
        for line in [
            "icbridge_conversations_opened_total{desk=\"pediatrics\"} 2",
            "icbridge_conversations_opened_total{desk=\"mortgages\"} 1",
            "icbridge_conversations_opened_total{desk=\"default\"} 1",
        ] {
            assert!(metrics.contains(line), "{line} in\n{metrics}");
        }
        // A later message goes into the thread, in its desk's space; a later "child"
        // elsewhere does not move a conversation.
        let later = json!({"channel": "sms", "from": "+14155550104", "to": "56263", "text": "my child", "messageId": "later"});
        assert_eq!(app.post_flow(&later.to_string()).await.status(), 200);
        app.worker.run_once().await.unwrap();
        let thread = fixture_json("webex-message-created-response.json")["id"].as_str().unwrap().to_string();
        assert_eq!(rooms(&app).await.last().unwrap(), &(EXPERT_ROOM.to_string(), Some(thread)));
    }
}

async fn start_up_error(db: TestDb, desks: Vec<DeskConfig>, unset_experts: bool) -> String {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.desks = desks;
    if unset_experts {
        upstreams.unset("EXPERT_ROOM_ID");
    }
    mount_webex_rooms(&upstreams.webex).await;
    upstreams
        .build()
        .await
        .err()
        .expect("must not start")
        .to_string()
}

db_test! {
    async fn a_bad_desk_configuration_stops_start_up_naming_the_desk_and_key(db) {
        let mut first = desk("one", "room-1");
        first.default = true;
        let mut second = desk("two", "room-2");
        second.default = true;
        let error = start_up_error(db, vec![first.clone(), second], true).await;
        assert!(error.contains("desk \"two\": `default` is set on two desks"), "{error}");

        let mut a = desk("a", "room-a");
        a.addresses = vec!["+1 415 555 0100".into()];
        let mut b = desk("b", "room-b");
        b.addresses = vec!["14155550100".into()];
        let error = start_up_error(db, vec![a, b], false).await;
        assert!(error.contains("desk \"b\": `addresses` \"14155550100\" is served by desk \"a\" too"), "{error}");

        let mut unknown = desk("dermatology", "unused");
        unknown.room_id = None;
        unknown.room_title = Some("No such space".into());
        let error = start_up_error(db, vec![unknown], false).await;
        assert!(error.contains("desk \"dermatology\": `room_title`: no group space titled"), "{error}");

        // A default desk in the file and ICB_EXPERT_* at once.
        let error = start_up_error(db, vec![first], false).await;
        assert!(error.contains("`default` is set on a desk and by ICB_EXPERT_* too"), "{error}");

        // Hours that cannot be read, and an out-of-hours text without the link a desk that
        // meets after hours must send.
        let mut berlin = desk("clinic", "room-clinic");
        berlin.timezone = Some("Europe/Berlinn".into());
        let error = start_up_error(db, vec![berlin], false).await;
        assert!(error.contains("desk \"clinic\": `timezone` \"Europe/Berlinn\" is not an IANA time zone"), "{error}");
        let mut meets = desk("clinic", "room-clinic");
        meets.hours = vec!["mon-fri 08:00-18:00".into()];
        meets.after_hours = Some("meeting".into());
        meets.texts.after_hours = Some("We open {{ opens_at }}.".into());
        let error = start_up_error(db, vec![meets], false).await;
        assert!(error.contains("desk \"clinic\": `texts.after_hours` must contain {{ guest_url }}"), "{error}");
    }
}

db_test! {
    async fn transfer_moves_a_conversation_to_another_desks_space(db) {
        let app = crate::desk::desk_app_with_desks(db, &[], two_desks()).await;
        crate::desk::open_conversation(&app).await;
        let card = &app.webex_posts().await[0]["attachments"][0]["content"];
        let transfer = card["actions"].as_array().unwrap().last().unwrap();
        assert_eq!(transfer["title"], "Transfer");
        assert_eq!(
            transfer["card"]["body"][0]["choices"],
            json!([{"title": "pediatrics", "value": "pediatrics"}, {"title": "mortgages", "value": "mortgages"}])
        );
        let thread = crate::desk::thread_id();
        let says = |id: &'static str, text: &'static str| {
            let app = &app;
            let thread = thread.clone();
            async move {
                let body = crate::desk::expert_message(app, id, text, Some(&thread), EXPERT_ROOM).await;
                crate::desk::deliver_event(app, &body).await;
                app.desk.run_once().await.unwrap();
                app.worker.run_once().await.unwrap();
            }
        };
        says("t-1", "transfer nowhere").await;
        let answer = app.webex_posts().await.last().unwrap()["markdown"].clone();
        assert_eq!(answer, "There is no desk \"nowhere\". Desks: pediatrics, mortgages, default.");
        says("t-2", "transfer Pediatrics").await;
        let posts = app.webex_posts().await;
        let (note, notification) = (&posts[posts.len() - 2], &posts[posts.len() - 1]);
        assert_eq!(note["roomId"], EXPERT_ROOM);
        assert_eq!(note["parentId"], thread.as_str());
        assert_eq!(
            note["markdown"],
            "↪️ Transferred to **pediatrics** by expert@example.com: the conversation goes on in that desk's space."
        );
        assert_eq!(notification["roomId"], "room-pediatrics");
        assert!(notification.get("parentId").is_none());
        let markdown = notification["markdown"].as_str().unwrap();
        assert!(markdown.starts_with("**Transferred from default** by expert@example.com\n\n**Video consultation request**"), "{markdown}");
        assert!(markdown.contains("> Hello, can I get a video call with an advisor?"), "{markdown}");
        let desk = app.stored().the_conversation().await.desk;
        assert_eq!(desk.as_deref(), Some("pediatrics"));
        // A reply in the old thread reaches no one: the expert is told where it went.
        let relayed_before = connect_texts(&app, "/channels/OTT-Messaging/wa/text/body").await.len();
        says("t-old", "Are you still there?").await;
        assert_eq!(connect_texts(&app, "/channels/OTT-Messaging/wa/text/body").await.len(), relayed_before);
        let notice = app.webex_posts().await.last().unwrap().clone();
        assert_eq!((notice["roomId"].as_str(), notice["parentId"].as_str()), (Some(EXPERT_ROOM), Some(thread.as_str())));
        assert_eq!(
            notice["markdown"],
            "Not sent: this conversation was transferred to the desk **pediatrics**. Reply in its thread there."
        );
        // What follows goes to the new desk's thread.
        let mut later = fixture_json("connect-whatsapp-mo.json");
        later["tid"] = json!("wamid.later");
        later["message"] = json!("still there?");
        assert_eq!(app.post_signed(&later.to_string()).await.status(), 200);
        app.worker.run_once().await.unwrap();
        let last = app.webex_posts().await.last().unwrap().clone();
        assert_eq!((last["roomId"].as_str(), last["parentId"].as_str()), (Some("room-pediatrics"), Some(thread.as_str())));

        // The card's Transfer, pressed in the new desk's space, with the desk chosen.
        Mock::given(method("GET"))
            .and(path("/v1/attachment/actions/press-transfer"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "press-transfer", "type": "submit", "messageId": thread, "roomId": "room-pediatrics",
                "personId": crate::desk::EXPERT_ID, "inputs": {"action": "transfer", "desk": "mortgages"},
            })))
            .mount(&app.webex)
            .await;
        let event = json!({
            "id": "hook-t", "resource": "attachmentActions", "event": "created", "actorId": crate::desk::EXPERT_ID,
            "data": {"id": "press-transfer", "type": "submit", "messageId": thread,
                     "personId": crate::desk::EXPERT_ID, "personEmail": "expert@example.com", "roomId": "room-pediatrics"}
        });
        crate::desk::deliver_event(&app, &event.to_string()).await;
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        let posts = app.webex_posts().await;
        assert_eq!(posts[posts.len() - 2]["roomId"], "room-pediatrics");
        assert_eq!(posts[posts.len() - 1]["roomId"], "room-mortgages");
    }
}

db_test! {
    async fn a_desk_words_the_customers_reply_its_own_way(db) {
        let mut upstreams = Upstreams::start(db).await;
        let mut desks = two_desks();
        desks[0].texts.reply =
            Some("Hi {{ customer_name }}, the {{ desk }} team will see you: {{ guest_url }}".into());
        upstreams.desks = desks;
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        let ask = |to: &'static str, from: &'static str| {
            let app = &app;
            async move {
                let body = json!({"channel": "sms", "from": from, "to": to, "text": "hello", "name": "Ann"});
                let answer: serde_json::Value = app.post_flow(&body.to_string()).await.json().await.unwrap();
                answer["reply"].as_str().unwrap().to_string()
            }
        };
        assert_eq!(
            ask("56299", "+14155550101").await,
            format!("Hi Ann, the pediatrics team will see you: {SHORT_GUEST_URL}")
        );
        assert_eq!(
            ask("56263", "+14155550102").await,
            format!("Join your video consultation: {SHORT_GUEST_URL}")
        );
    }
}
