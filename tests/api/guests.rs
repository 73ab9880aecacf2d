//! More people in a meeting: `add guest` (and the card's button) gets one more guest link for
//! the same meeting, maybe sent to a number; meetings with more links per role.

use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::desk::*;
use crate::helpers::*;
use crate::opt_out::{customer_texts, expert_replies, sms_app_with};

const SECOND_GUEST_URL: &str = "https://instant.webex.com/visit/gUeSt02";

/// The broker answers a call for one more guest link with its own short code.
pub async fn mount_one_more_guest(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path("/api/v2/joseencrypt"))
        .and(body_partial_json(json!({"numHost": 0, "numGuest": 1})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "host": [], "guest": [{"cipher": "c2", "short": "gUeSt02"}],
            "baseUrl": "https://instant.webex.com/visit/"
        })))
        .with_priority(1)
        .mount(&app.broker)
        .await;
}

async fn links(app: &TestApp, conversation: &str) -> Vec<Value> {
    let detail: Value = admin(
        app,
        reqwest::Method::GET,
        &format!("/api/conversations/{conversation}"),
    )
    .await
    .json()
    .await
    .unwrap();
    detail["links"].as_array().unwrap().clone()
}

async fn last_thread_post(app: &TestApp) -> String {
    app.webex_posts().await.last().unwrap()["markdown"]
        .as_str()
        .unwrap()
        .to_string()
}

db_test! {
    async fn add_guest_gives_one_more_guest_link_for_the_same_meeting(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        mount_one_more_guest(&app).await;
        let answer = customer_texts(&app, "m-1", "Can my daughter join?").await;
        let conversation = answer["conversationId"].as_str().unwrap();

        expert_replies(&app, "e-1", "add guest").await;
        app.worker.run_once().await.unwrap();
        let requests = app.broker_requests().await;
        assert_eq!(requests.len(), 2);
        let first: Value = requests[0].body_json().unwrap();
        let more: Value = requests[1].body_json().unwrap();
        // The same subject (the same meeting room), valid as long as the meeting's links.
        assert_eq!(more, json!({
            "aud": "a4d886b0-979f-4e2c-a958-3e8c14605e51",
            "jwt": {"sub": first["jwt"]["sub"], "exp": first["jwt"]["exp"]},
            "provideShortUrls": true, "verticalType": "gen", "loginUrlForHost": false,
            "numHost": 0, "numGuest": 1,
        }));
        let post = last_thread_post(&app).await;
        assert!(post.contains(&format!("added a guest: **[guest link]({SECOND_GUEST_URL})**")), "{post}");
        assert!(post.ends_with("Share it with the guest."), "{post}");

        // With a number, the link is also sent there, by the conversation's channel.
        expert_replies(&app, "e-2", "add guest +1 415 555 0199").await;
        app.worker.run_once().await.unwrap();
        let sent: Vec<Value> = app.connect.received_requests().await.unwrap().iter()
            .map(|r| r.body_json().unwrap()).collect();
        let invitation = sent.last().unwrap();
        assert_eq!(invitation["to"], "+14155550199");
        assert_eq!(invitation["content"], format!("You are invited to join a video consultation: {SECOND_GUEST_URL}"));
        assert!(last_thread_post(&app).await.ends_with("It is being sent to +1415•••0199."), "{}", last_thread_post(&app).await);

        // The card's button does the same.
        press(&app, "action-1", "add_guest").await;
        assert_eq!(app.broker_requests().await.len(), 4);

        let links = links(&app, conversation).await;
        let roles: Vec<(&str, &str, Option<&str>)> = links.iter()
            .map(|l| (l["role"].as_str().unwrap(), l["url"].as_str().unwrap(), l["sentTo"].as_str()))
            .collect();
        assert_eq!(roles, [
            ("host", SHORT_HOST_URL, None),
            ("guest", SHORT_GUEST_URL, None),
            ("guest", SECOND_GUEST_URL, None),
            ("guest", SECOND_GUEST_URL, Some("+1415•••0199")),
            ("guest", SECOND_GUEST_URL, None),
        ]);
        let audit = app.stored().audited(&["add_guest"]).await;
        assert_eq!(audit.len(), 3);
    }
}

db_test! {
    async fn add_guest_says_why_when_it_cannot(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        customer_texts(&app, "m-1", "Hello").await;
        expert_replies(&app, "e-1", "add guest +12").await;
        app.worker.run_once().await.unwrap();
        assert!(last_thread_post(&app).await.starts_with("Not a phone number"), "{:?}", app.webex_posts().await);
        assert_eq!(app.broker_requests().await.len(), 1, "no broker call");

        // A broker answer without the guest link asked for is a failure the expert sees.
        Mock::given(method("POST"))
            .and(path("/api/v2/joseencrypt"))
            .and(body_partial_json(json!({"numHost": 0})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "host": [], "guest": [], "baseUrl": "https://instant.webex.com/visit/"
            })))
            .with_priority(1)
            .mount(&app.broker)
            .await;
        expert_replies(&app, "e-3", "add guest").await;
        app.worker.run_once().await.unwrap();
        let post = last_thread_post(&app).await;
        assert!(post.contains("0 and 0 given"), "{post}");
        assert_eq!(app.count("meeting_links").await, 2);
        app.broker.reset().await;

        // Once the meeting's links ran out, there is nothing to add a guest to.
        app.clock.advance(std::time::Duration::from_secs(2 * 3600));
        expert_replies(&app, "e-2", "add guest").await;
        app.worker.run_once().await.unwrap();
        assert!(last_thread_post(&app).await.starts_with("This conversation has no meeting whose links still work"));
        assert!(app.broker_requests().await.is_empty(), "no broker call since the reset");
        assert_eq!(app.count("meeting_links").await, 2);
    }
}

db_test! {
    async fn a_meeting_has_as_many_links_of_each_role_as_configured(db) {
        let app = sms_app_with(db, &[("MEETING_GUESTS", "2"), ("PUBLIC_URL", "https://bridge.example.com")], Vec::new()).await;
        app.broker.reset().await;
        Mock::given(method("POST"))
            .and(path("/api/v2/joseencrypt"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "host": [{"short": "hOsT001"}],
                "guest": [{"short": "gUeSt01"}, {"short": "gUeSt02"}],
                "baseUrl": "https://instant.webex.com/visit/"
            })))
            .mount(&app.broker)
            .await;
        let answer = customer_texts(&app, "m-1", "Hello").await;
        let body: Value = app.broker_requests().await[0].body_json().unwrap();
        assert_eq!((body["numHost"].clone(), body["numGuest"].clone()), (json!(1), json!(2)));

        let links = links(&app, answer["conversationId"].as_str().unwrap()).await;
        assert_eq!(links.len(), 3);
        let roles: Vec<&str> = links.iter().map(|l| l["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["host", "guest", "guest"]);
        // Each is icbridge's own link, leading to its own Instant Connect link; opening the
        // second guest link is not the customer opening theirs.
        let second = links[2]["url"].as_str().unwrap();
        assert_eq!(app.own_link_target(second).await, Ok("https://instant.webex.com/visit/gUeSt02".into()));
        let stored_links = app.stored().links().await;
        let first_guest = stored_links.iter().find(|link| link.extra == 0 && link.role == "guest").unwrap();
        let opened = first_guest.opened_at;
        assert_eq!(opened, None);
        assert_eq!(answer["guestUrl"], links[1]["url"]);
    }
}

/// `STOP` (or any text) from the number `from` to the business number.
async fn number_texts(app: &TestApp, from: &str, id: &str, text: &str) {
    let body =
        json!({"channel": "sms", "from": from, "to": "56263", "text": text, "messageId": id});
    assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
    app.worker.run_once().await.unwrap();
}

fn sms_to(requests: &[wiremock::Request], number: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.body_json::<Value>().is_ok_and(|b| b["to"] == number))
        .count()
}

db_test! {
    async fn a_guest_who_opted_out_is_not_invited_whenever_they_stopped(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        mount_one_more_guest(&app).await;
        // The guest's number had texted STOP to this business number.
        number_texts(&app, "+14155550199", "g-1", "STOP").await;
        let before = sms_to(&app.connect.received_requests().await.unwrap(), "+14155550199");
        customer_texts(&app, "m-1", "Can my daughter join?").await;
        expert_replies(&app, "e-1", "add guest +1 415 555 0199").await;
        app.worker.run_once().await.unwrap();
        assert_eq!(sms_to(&app.connect.received_requests().await.unwrap(), "+14155550199"), before);
        assert!(last_thread_post(&app).await.contains("It is not sent to +1415•••0199: that number opted out (STOP)."));

        // Another guest, invited while still in, who stops before the invitation goes out.
        expert_replies(&app, "e-2", "add guest +1 415 555 0198").await;
        let body = json!({"channel": "sms", "from": "+14155550198", "to": "56263", "text": "STOP", "messageId": "g-2"});
        assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
        app.worker.run_once().await.unwrap();
        let sent = app.connect.received_requests().await.unwrap();
        let invitations: Vec<Value> = sent
            .iter()
            .filter_map(|r| r.body_json::<Value>().ok())
            .filter(|b| b["to"] == "+14155550198" && b["content"].as_str().unwrap().starts_with("You are invited"))
            .collect();
        assert!(invitations.is_empty(), "{invitations:?}");
        let cancelled = app.stored().outbox_in_state("cancelled").await.into_iter()
            .filter(|row| row.recipient.as_deref() == Some("+14155550198"))
            .count();
        assert_eq!(cancelled, 1);
    }
}

db_test! {
    async fn a_whatsapp_guest_outside_their_window_gets_no_free_text(db) {
        // No template: a free-form invitation to a WhatsApp number that never wrote is not
        // sent (WhatsApp would refuse it), and it is not held for ever either.
        let app = desk_app(db, &[]).await;
        mount_one_more_guest(&app).await;
        open_conversation(&app).await;
        expert_replies(&app, "e-1", "add guest 14155550198").await;
        app.worker.run_once().await.unwrap();
        let bodies = connect_texts(&app, "/channels/OTT-Messaging/wa/text/body").await;
        assert!(bodies.iter().all(|b| !b.starts_with("You are invited")), "{bodies:?}");
        let outbox = app.stored().outbox().await;
        let to_the_guest = outbox.iter().find(|row| row.recipient.as_deref() == Some("14155550198")).unwrap();
        assert_eq!(to_the_guest.last_error.as_deref(), Some(icbridge::delivery::RECIPIENT_OUTSIDE_WINDOW));
    }
}
