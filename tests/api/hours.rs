//! Business hours: out of hours a message that needs a meeting gets the desk's out-of-hours
//! text; the conversation waits without a meeting (or gets one at once, if the desk says so)
//! and reaches the desk's space when it opens. Times come from the app's clock, set by the
//! test.

use serde_json::{json, Value};

use crate::desk::*;
use crate::helpers::*;
use icbridge::desks::DeskConfig;

/// Saturday 27 March 2027, 21:00 in Berlin (CET); the clocks go forward that night.
const SATURDAY_NIGHT: &str = "2027-03-27T20:00:00Z";
/// Sunday 28 March 2027, 08:00 in Berlin, summer time by then (CEST, UTC+2).
const SUNDAY_OPENING: &str = "2027-03-28T06:00:00Z";
const CLOSED_TEXT: &str = "Thank you for your message. We are closed now and open again \
     Sun 28 Mar 08:00 (Europe/Berlin); we will send you a link to a video consultation then.";

fn at(rfc3339: &str) -> i64 {
    icbridge::domain::clock::parse_rfc3339(rfc3339).unwrap()
}

/// The clinic: the experts' space, open from 08:00 in Berlin, to 18:00 on weekdays and to
/// noon at weekends.
fn clinic() -> DeskConfig {
    DeskConfig {
        name: "clinic".into(),
        room_id: Some(EXPERT_ROOM.into()),
        default: true,
        timezone: Some("Europe/Berlin".into()),
        hours: vec!["mon-fri 08:00-18:00".into(), "sat,sun 08:00-12:00".into()],
        ..DeskConfig::default()
    }
}

/// An app whose only desk is `desk`, sending customers their texts itself.
async fn app_with(db: TestDb, desk: DeskConfig, reply_mode: &str) -> TestApp {
    desk_app_with_desks(
        db,
        &[
            ("EXPERT_ROOM_ID", ""),
            ("REPLY_MODE", reply_mode),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
        ],
        vec![desk],
    )
    .await
}

/// A WhatsApp message from `waid` (its message id `tid`).
fn whatsapp(waid: &str, tid: &str, text: &str) -> String {
    let mut message = fixture_json("connect-whatsapp-mo.json");
    message["waid"] = json!(waid);
    message["tid"] = json!(tid);
    message["message"] = json!(text);
    message.to_string()
}

async fn answer(app: &TestApp, body: &str) -> Value {
    let response = app.post_signed(body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The WhatsApp texts the customers got, in order.
async fn customers_got(app: &TestApp) -> Vec<String> {
    connect_texts(app, "/channels/OTT-Messaging/wa/text/body").await
}

/// What the desk says in a thread (the expert's `take`), as Webex delivers it.
async fn expert_says(app: &TestApp, id: &str, text: &str) {
    let event = expert_message(app, id, text, Some(&thread_id()), EXPERT_ROOM).await;
    deliver_event(app, &event).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
}

db_test! {
    async fn out_of_hours_a_conversation_waits_and_reaches_its_desk_when_it_opens(db) {
        let app = app_with(db, clinic(), "connect").await;
        app.clock.set(at(SATURDAY_NIGHT));
        let first = whatsapp("14155550142", "wamid.first", "Hello, can I get a video call?");
        let answer_first = answer(&app, &first).await;
        assert_eq!(answer_first["open"], false);
        assert_eq!(answer_first["reply"], CLOSED_TEXT);
        assert_eq!(answer_first["created"], false);
        for absent in ["guestUrl", "meetingId", "expiresAt"] {
            assert!(answer_first.get(absent).is_none(), "{absent} in {answer_first}");
        }
        // Told once, however often they write; nothing for the experts yet, no meeting.
        let later = answer(&app, &whatsapp("14155550142", "wamid.second", "It is urgent")).await;
        assert_eq!((later["open"].clone(), later["reply"].clone()), (json!(false), json!(CLOSED_TEXT)));
        assert_eq!(later["conversationId"], answer_first["conversationId"]);
        assert_eq!(answer(&app, &first).await, answer_first, "a repeat is answered the same");
        app.worker.run_once().await.unwrap();
        assert_eq!(customers_got(&app).await, vec![CLOSED_TEXT.to_string()]);
        assert!(app.webex_posts().await.is_empty());
        assert!(app.broker_requests().await.is_empty());
        let conversation_id = answer_first["conversationId"].as_str().unwrap();
        assert_eq!(app.transcript(conversation_id).await.len(), 2);
        let detail: Value = admin(&app, reqwest::Method::GET, &format!("/api/conversations/{conversation_id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!((detail["desk"].as_str(), detail["waitingSince"].as_str()), (Some("clinic"), Some("2027-03-27T20:00:00Z")));
        let metrics = app.metrics_page().await;
        assert!(metrics.contains("icbridge_conversations_out_of_hours_total{desk=\"clinic\"} 1"), "{metrics}");
        assert!(metrics.contains("icbridge_conversations_opened_total{desk=\"clinic\"} 1"), "{metrics}");

        // Sunday a minute before the opening: closed. At 07:00 UTC it would open in winter
        // time, but the clocks went forward in the night: it opens at 06:00 UTC.
        app.clock.set(at("2027-03-28T05:59:00Z"));
        assert_eq!(app.bridge.release_waiting().await.unwrap(), 0);
        app.clock.set(at(SUNDAY_OPENING));
        assert_eq!(app.bridge.release_waiting().await.unwrap(), 1);
        assert_eq!(app.bridge.release_waiting().await.unwrap(), 0, "handed over once");
        app.worker.run_once().await.unwrap();
        let posts = app.webex_posts().await;
        assert_eq!(posts.len(), 1);
        let markdown = posts[0]["markdown"].as_str().unwrap();
        assert_eq!(posts[0]["roomId"], EXPERT_ROOM);
        assert!(markdown.contains("> Hello, can I get a video call?\n> It is urgent"), "{markdown}");
        assert!(markdown.contains("Wrote out of hours, waiting since 2027-03-27 20:00 UTC. No meeting yet"), "{markdown}");
        let card = &posts[0]["attachments"][0]["content"];
        let buttons: Vec<&str> = card["actions"].as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap()).collect();
        assert_eq!(buttons, ["Take", "New link", "Close"]);
        assert!(app.broker_requests().await.is_empty());

        // The expert who takes it, shortly before noon, gets the meeting; the customer its link.
        app.clock.set(at("2027-03-28T09:55:00Z"));
        expert_says(&app, "take-1", "take").await;
        assert_eq!(app.broker_requests().await.len(), 1);
        assert_eq!(
            customers_got(&app).await,
            vec![CLOSED_TEXT.to_string(), format!("Join your video consultation: {SHORT_GUEST_URL}")]
        );
        let thread: Vec<String> = bot_posts_after_notification(&app).await.iter().map(|p| p["markdown"].as_str().unwrap().to_string()).collect();
        assert_eq!(thread.len(), 2, "{thread:?}");
        assert!(thread[0].contains("expert@example.com"), "{thread:?}");
        assert!(thread[1].starts_with(&format!("New meeting: **[Join as host]({SHORT_HOST_URL})**")), "{thread:?}");
        let waiting = app.stored().the_conversation().await.waiting_since;
        assert_eq!(waiting, None);

        // A conversation under way at closing time goes on as usual.
        app.clock.set(at("2027-03-28T10:10:00Z"));
        let evening = app.post_signed(&whatsapp("14155550142", "wamid.third", "Thanks!")).await;
        let evening: Value = evening.json().await.unwrap();
        assert_eq!(evening["open"], true);
        assert_eq!(evening["guestUrl"], SHORT_GUEST_URL);
    }
}

/// Three customers write on Saturday night, a minute apart.
async fn three_waiting(app: &TestApp) {
    app.clock.set(at(SATURDAY_NIGHT));
    for (minute, waid) in ["14155550101", "14155550102", "14155550103"]
        .iter()
        .enumerate()
    {
        app.clock.advance(std::time::Duration::from_secs(60));
        let text = format!("question {minute}");
        answer(app, &whatsapp(waid, &format!("wamid.{waid}"), &text)).await;
    }
    // Their out-of-hours texts.
    assert_eq!(app.worker.run_once().await.unwrap(), 3);
}

/// The first quoted line of each notification the desk got.
async fn questions(app: &TestApp) -> Vec<String> {
    app.webex_posts()
        .await
        .iter()
        .map(|p| {
            p["markdown"]
                .as_str()
                .unwrap()
                .lines()
                .nth(2)
                .unwrap()
                .to_string()
        })
        .collect()
}

db_test! {
    async fn at_opening_the_desk_gets_its_waiting_conversations_one_a_second_oldest_first(db) {
        let app = app_with(db, clinic(), "connect").await;
        three_waiting(&app).await;
        app.clock.set(at(SUNDAY_OPENING));
        assert_eq!(app.bridge.release_waiting().await.unwrap(), 3);
        // The worker sends conversations side by side: spaced, they arrive in order.
        for _ in 0..3 {
            assert_eq!(app.worker.run_once().await.unwrap(), 1);
            app.clock.advance(std::time::Duration::from_secs(1));
        }
        assert_eq!(questions(&app).await, ["> question 0", "> question 1", "> question 2"]);
    }
}

db_test! {
    async fn two_instances_at_opening_hand_each_waiting_conversation_over_once(db) {
        let app = app_with(db, clinic(), "connect").await;
        let other = app.another_instance().await;
        three_waiting(&app).await;
        // A conversation from before desks (no desk stored) is the default desk's: one is
        // made so on purpose.
        let updated = sqlx::query("UPDATE conversations SET desk = NULL WHERE customer = '14155550103'")
            .execute(&app.db)
            .await
            .unwrap();
        assert_eq!(updated.rows_affected(), 1);
        app.clock.set(at(SUNDAY_OPENING));
        other.clock.set(at(SUNDAY_OPENING));
        let (one, two) = tokio::join!(app.bridge.release_waiting(), other.bridge.release_waiting());
        assert_eq!(one.unwrap() + two.unwrap(), 3);
        app.clock.advance(std::time::Duration::from_secs(3));
        other.clock.advance(std::time::Duration::from_secs(3));
        let (one, two) = tokio::join!(app.worker.run_once(), other.worker.run_once());
        assert_eq!(one.unwrap() + two.unwrap(), 3);
        let mut got = questions(&app).await;
        got.sort();
        assert_eq!(got, ["> question 0", "> question 1", "> question 2"]);
    }
}

db_test! {
    async fn on_a_closed_date_a_desk_that_meets_after_hours_makes_the_meeting_and_says_when_it_opens(db) {
        let desk = DeskConfig {
            name: "bank".into(),
            room_id: Some(EXPERT_ROOM.into()),
            default: true,
            timezone: Some("America/New_York".into()),
            hours: vec!["mon-fri 09:00-17:00".into()],
            closed: vec!["2027-12-24".into()],
            after_hours: Some("meeting".into()),
            texts: icbridge::desks::DeskTexts {
                closed: Some("Closed for the holidays, {{ customer_name }}. The {{ desk }} opens {{ opens_at }}; join here then: {{ guest_url }}".into()),
                ..Default::default()
            },
            ..DeskConfig::default()
        };
        let app = app_with(db, desk, "response").await;
        // Friday 24 December 2027, 10:00 in New York: a weekday, but a closed date.
        app.clock.set(at("2027-12-24T15:00:00Z"));
        let body = json!({"channel": "sms", "from": "+14155550101", "to": "56263", "text": "hello", "name": "Ann"});
        let answer: Value = app.post_flow(&body.to_string()).await.json().await.unwrap();
        assert_eq!(answer["open"], false);
        assert_eq!(answer["created"], true);
        assert_eq!(answer["guestUrl"], SHORT_GUEST_URL);
        assert_eq!(
            answer["reply"],
            format!("Closed for the holidays, Ann. The bank opens Mon 27 Dec 09:00 (America/New_York); join here then: {SHORT_GUEST_URL}")
        );
        // The experts are told at once, as in hours.
        app.worker.run_once().await.unwrap();
        let posts = app.webex_posts().await;
        assert_eq!(posts.len(), 1);
        assert!(posts[0]["markdown"].as_str().unwrap().contains("Join as host"));
        let metrics = app.metrics_page().await;
        assert!(metrics.contains("icbridge_conversations_out_of_hours_total{desk=\"bank\"} 1"), "{metrics}");
        // In hours (Monday 27 December, 09:00 New York) the same customer's next meeting is
        // answered as usual.
        app.clock.set(at("2027-12-27T14:00:00Z"));
        let answer: Value = app.post_flow(&body.to_string()).await.json().await.unwrap();
        assert_eq!(answer["open"], true);
        assert_eq!(answer["reply"], format!("Join your video consultation: {SHORT_GUEST_URL}"));
    }
}

db_test! {
    async fn a_waiting_conversation_handed_over_can_be_transferred_before_it_has_a_meeting(db) {
        let dermatology = DeskConfig {
            name: "dermatology".into(),
            room_id: Some("room-dermatology".into()),
            ..DeskConfig::default()
        };
        let app = desk_app_with_desks(
            db,
            &[("EXPERT_ROOM_ID", ""), ("REPLY_MODE", "connect")],
            vec![clinic(), dermatology],
        )
        .await;
        app.clock.set(at(SATURDAY_NIGHT));
        answer(&app, &whatsapp("14155550142", "wamid.first", "A rash on my arm")).await;
        app.clock.set(at(SUNDAY_OPENING));
        assert_eq!(app.bridge.release_waiting().await.unwrap(), 1);
        app.worker.run_once().await.unwrap();
        expert_says(&app, "transfer-1", "transfer dermatology").await;
        let posts = app.webex_posts().await;
        let moved = posts.last().unwrap();
        assert_eq!(moved["roomId"], "room-dermatology");
        let markdown = moved["markdown"].as_str().unwrap();
        assert!(markdown.contains("> A rash on my arm") && markdown.contains("No meeting yet"), "{markdown}");
        assert!(!markdown.contains("Join as host"), "{markdown}");
        assert!(app.broker_requests().await.is_empty());
        // Told at once, the other desk does not get it again at its opening.
        assert_eq!(app.bridge.release_waiting().await.unwrap(), 0);
    }
}
