//! Booked consultations: the meeting made at booking with links valid around the slot, the
//! invitation at once, the reminder and the experts' card at their time (also across a
//! restart), the customer who writes early, cancelling, idempotency and validation.

use std::str::FromStr;

use serde_json::{json, Value};

use crate::desk::*;
use crate::helpers::*;
use crate::opt_out::{customer_texts, sms_app_with};

const MINUTE: i64 = 60_000;
const CUSTOMER: &str = "+14155550123";

/// A time as the default desk (UTC) words it for customers.
fn local(ms: i64) -> String {
    let at = jiff::Timestamp::from_millisecond(ms).unwrap();
    format!(
        "{} (UTC)",
        at.to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .strftime("%a %-d %b %H:%M")
    )
}

/// The start of a slot `minutes` from the app's now, on a whole second.
fn slot_in(app: &TestApp, minutes: i64) -> i64 {
    (app.clock.now_ms() / 1000) * 1000 + minutes * MINUTE
}

fn booking(starts_at: i64) -> Value {
    json!({
        "channel": "sms", "customer": CUSTOMER, "to": "56263", "name": "Ann",
        "startsAt": icbridge::domain::clock::rfc3339(starts_at), "durationMinutes": 30,
        "note": "Follow-up on the blood test"
    })
}

async fn book(app: &TestApp, body: &Value, key: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/api/appointments", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

async fn booked(app: &TestApp, body: &Value) -> Value {
    let response = book(app, body, None).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn sms_got(app: &TestApp) -> Vec<String> {
    connect_texts(app, "/content").await
}

db_test! {
    async fn a_booking_makes_the_meeting_for_the_slot_and_invites_reminds_and_hands_over_in_time(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let start = slot_in(&app, 120);
        let appointment = booked(&app, &booking(start)).await;
        assert_eq!(appointment["state"], "booked");
        assert_eq!(appointment["startsAt"], icbridge::domain::clock::rfc3339(start));
        assert_eq!(appointment["endsAt"], icbridge::domain::clock::rfc3339(start + 30 * MINUTE));
        assert_eq!(appointment["linksFrom"], icbridge::domain::clock::rfc3339(start - 10 * MINUTE));
        assert_eq!(appointment["linksUntil"], icbridge::domain::clock::rfc3339(start + 40 * MINUTE));
        assert_eq!(appointment["guestUrl"], SHORT_GUEST_URL);
        assert_eq!(appointment["customer"], "+1415•••0123");

        // The broker gets the slot's window: valid from 10 minutes before the start until
        // 10 minutes after the end.
        let requests = app.broker_requests().await;
        assert_eq!(requests.len(), 1);
        let body: Value = requests[0].body_json().unwrap();
        let sub = body["jwt"]["sub"].as_str().unwrap();
        assert_eq!(body, json!({
            "aud": "a4d886b0-979f-4e2c-a958-3e8c14605e51",
            "jwt": {"sub": sub, "nbf": (start - 10 * MINUTE) / 1000, "exp": (start + 40 * MINUTE) / 1000},
            "provideShortUrls": true, "verticalType": "gen", "loginUrlForHost": false,
            "numHost": 1, "numGuest": 1,
        }));

        // The invitation goes at once; the experts hear nothing yet.
        app.worker.run_once().await.unwrap();
        let invitation = format!(
            "Hello Ann, your video consultation with default is booked for {}. Join with this link from {}: {SHORT_GUEST_URL}",
            local(start), local(start - 10 * MINUTE)
        );
        assert_eq!(sms_got(&app).await, std::slice::from_ref(&invitation));
        assert!(app.webex_posts().await.is_empty());

        // A second before the reminder's time, nothing more.
        app.clock.set(start - 15 * MINUTE - 1000);
        app.worker.run_once().await.unwrap();
        assert_eq!(sms_got(&app).await.len(), 1);
        assert!(app.webex_posts().await.is_empty());

        // At 15 minutes before the start: the reminder, and the card with the host link.
        app.clock.set(start - 15 * MINUTE);
        app.worker.run_once().await.unwrap();
        let reminder = format!(
            "Hello Ann, a reminder: your video consultation with default starts {}. Join here: {SHORT_GUEST_URL}",
            local(start)
        );
        assert_eq!(sms_got(&app).await, [invitation, reminder]);
        let posts = app.webex_posts().await;
        assert_eq!(posts.len(), 1);
        let markdown = posts[0]["markdown"].as_str().unwrap();
        let when = local(start).replace('(', "\\(").replace(')', "\\)");
        assert!(markdown.starts_with(&format!("**Booked consultation** · {when}")), "{markdown}");
        assert!(markdown.contains("on the blood test"), "{markdown}");
        assert!(markdown.contains(SHORT_HOST_URL), "{markdown}");
        let audit: Value = admin(&app, reqwest::Method::GET, "/api/audit").await.json().await.unwrap();
        assert_eq!(audit["audit"][0]["action"], "book", "{audit}");
    }
}

db_test! {
    async fn a_customer_who_writes_before_the_slot_is_told_when_it_is_and_gets_no_new_meeting(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let start = slot_in(&app, 24 * 60);
        let appointment = booked(&app, &booking(start)).await;
        app.worker.run_once().await.unwrap();

        let answer = customer_texts(&app, "m-1", "Is it still on tomorrow?").await;
        let slot = format!(
            "Your video consultation with default is booked for {}. The link works from {}: {SHORT_GUEST_URL}",
            local(start), local(start - 10 * MINUTE)
        );
        assert_eq!(answer["reply"], slot);
        assert_eq!(answer["created"], false);
        assert_eq!(answer["conversationId"], appointment["conversationId"]);
        assert_eq!(answer["guestUrl"], SHORT_GUEST_URL);
        assert_eq!(app.broker_requests().await.len(), 1, "no new meeting");
        assert_eq!(sms_got(&app).await.last().unwrap(), &slot);
        let conversation = appointment["conversationId"].as_str().unwrap();
        assert_eq!(app.transcript(conversation).await, ["Is it still on tomorrow?"]);
        // The same message delivered again gets the same answer; nothing more is queued.
        let queued = app.count("outbox").await;
        assert_eq!(customer_texts(&app, "m-1", "Is it still on tomorrow?").await, answer);
        assert_eq!(app.count("outbox").await, queued);
        // The experts see it, although the card comes later.
        let posts = app.webex_posts().await;
        assert!(posts[0]["markdown"].as_str().unwrap().contains("Is it still on tomorrow?"), "{posts:?}");

        // Once the links work, a message is answered with the booked meeting as usual.
        app.clock.set(start - 5 * MINUTE);
        let answer = customer_texts(&app, "m-2", "I am ready").await;
        assert_eq!(answer["guestUrl"], SHORT_GUEST_URL);
        assert_eq!(answer["meetingId"], appointment["meetingId"]);
        assert_eq!(app.broker_requests().await.len(), 1, "still no new meeting");
    }
}

db_test! {
    async fn a_reminder_due_while_the_service_was_down_is_sent_after_the_restart_unless_the_slot_is_over(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let soon = slot_in(&app, 60);
        booked(&app, &booking(soon)).await;
        let later = slot_in(&app, 90);
        let mut other = booking(later);
        other["customer"] = json!("+14155550124");
        booked(&app, &other).await;
        app.worker.run_once().await.unwrap();
        assert_eq!(sms_got(&app).await.len(), 2, "two invitations");

        // The service is down from before the first reminder until after the first slot
        // ended and the second reminder was due.
        app.clock.set(soon + 45 * MINUTE);
        let restarted = app.another_instance().await;
        restarted.worker.run_once().await.unwrap();
        let texts = sms_got(&app).await;
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(texts[2].contains(&format!("starts {}", local(later))), "{texts:?}");
        assert_eq!(app.webex_posts().await.len(), 1, "one card: the second appointment's");
        let cancelled: Value = admin(&app, reqwest::Method::GET, "/api/outbox?state=cancelled").await.json().await.unwrap();
        let cancelled = cancelled["outbox"].as_array().unwrap();
        assert_eq!(cancelled.len(), 2, "the first slot's reminder and card: {cancelled:?}");
        for row in cancelled {
            assert_eq!(row["lastError"], "cancelled: its appointment's slot was over before it could be sent");
        }
    }
}

db_test! {
    async fn cancelling_tells_the_customer_ends_the_links_and_sends_no_reminder(db) {
        let app = sms_app_with(db, &[("PUBLIC_URL", "https://bridge.example.com")], Vec::new()).await;
        let start = slot_in(&app, 120);
        let appointment = booked(&app, &booking(start)).await;
        let guest_url = appointment["guestUrl"].as_str().unwrap().to_string();
        assert!(guest_url.starts_with("https://bridge.example.com/j/"), "{guest_url}");
        // Before its links work, icbridge's own link says from when they do.
        assert_eq!(app.own_link_target(&guest_url).await, Err(200));
        let page = app.http.get(guest_url.replace("https://bridge.example.com", &app.address))
            .send().await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!("This link works from {}.", local(start - 10 * MINUTE))), "{page}");
        app.worker.run_once().await.unwrap();
        // From 10 minutes before the start it leads to the meeting. The reminder and the
        // card are due, not sent yet, when the appointment is cancelled.
        app.clock.set(start - 8 * MINUTE);
        assert_eq!(app.own_link_target(&guest_url).await, Ok(SHORT_GUEST_URL.to_string()));

        let id = appointment["id"].as_str().unwrap();
        let cancelled = admin(&app, reqwest::Method::DELETE, &format!("/api/appointments/{id}")).await;
        assert_eq!(cancelled.status(), 200);
        assert_eq!(cancelled.json::<Value>().await.unwrap()["state"], "cancelled");
        app.worker.run_once().await.unwrap();
        let texts = sms_got(&app).await;
        assert_eq!(texts.len(), 2);
        assert_eq!(texts[1], format!("Your video consultation with default on {} is cancelled.", local(start)));
        assert_eq!(app.own_link_target(&guest_url).await, Err(410), "the ended page");

        app.clock.set(start);
        app.worker.run_once().await.unwrap();
        assert_eq!(sms_got(&app).await.len(), 2, "no reminder");
        assert!(app.webex_posts().await.iter().all(|post| !post["markdown"].as_str().unwrap().starts_with("**Booked")));
        assert_eq!(app.stored().the_conversation().await.state, "closed");
        let again = admin(&app, reqwest::Method::DELETE, &format!("/api/appointments/{id}")).await;
        assert_eq!(again.status(), 409);
        let unknown = admin(&app, reqwest::Method::DELETE, "/api/appointments/nope").await;
        assert_eq!(unknown.status(), 404);
    }
}

db_test! {
    async fn the_same_idempotency_key_and_body_get_the_same_answer_another_body_409(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let body = booking(slot_in(&app, 120));
        let first = book(&app, &body, Some("crm-42")).await;
        assert_eq!(first.status(), 201);
        let first: Value = first.json().await.unwrap();
        let second = book(&app, &body, Some("crm-42")).await;
        assert_eq!(second.status(), 201);
        assert_eq!(second.headers()["idempotent-replayed"], "true");
        assert_eq!(second.json::<Value>().await.unwrap(), first);
        assert_eq!(app.broker_requests().await.len(), 1);
        assert_eq!(app.count("appointments").await, 1);

        let mut other = body.clone();
        other["durationMinutes"] = json!(45);
        let conflict = book(&app, &other, Some("crm-42")).await;
        assert_eq!(conflict.status(), 409);
        assert_eq!(conflict.json::<Value>().await.unwrap()["error"], "idempotency_key_reused");
        // Without the key, the customer's appointment that is not over is named.
        let busy = book(&app, &other, None).await;
        assert_eq!(busy.status(), 409);
        let busy: Value = busy.json().await.unwrap();
        assert_eq!(busy["error"], "customer_booked");
        assert!(busy["message"].as_str().unwrap().contains(first["id"].as_str().unwrap()));
        assert_eq!(app.count("appointments").await, 1);
        assert_eq!(app.broker_requests().await.len(), 1, "refused before the broker is asked");

        let listed: Value = admin(&app, reqwest::Method::GET, "/api/appointments").await.json().await.unwrap();
        assert_eq!(listed["appointments"].as_array().unwrap().len(), 1);
        assert_eq!(listed["appointments"][0]["id"], first["id"]);
        let later = icbridge::domain::clock::rfc3339(slot_in(&app, 180));
        let none: Value = admin(&app, reqwest::Method::GET, &format!("/api/appointments?from={}", later.replace('+', "%2B"))).await.json().await.unwrap();
        assert_eq!(none["appointments"], json!([]));
    }
}

db_test! {
    async fn a_whole_number_of_minutes_written_as_a_float_is_taken(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let mut body = booking(slot_in(&app, 120));
        body["durationMinutes"] = json!(30.0);
        let appointment = booked(&app, &body).await;
        let length = jiff::Timestamp::from_str(appointment["endsAt"].as_str().unwrap()).unwrap()
            - jiff::Timestamp::from_str(appointment["startsAt"].as_str().unwrap()).unwrap();
        assert_eq!(length.as_secs(), 30 * 60, "{appointment}");
    }
}

db_test! {
    async fn an_invalid_booking_is_refused_naming_the_field_and_nothing_is_stored(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let start = slot_in(&app, 120);
        let cases = [
            ("startsAt", json!(icbridge::domain::clock::rfc3339(app.clock.now_ms() - MINUTE))),
            ("startsAt", json!("tomorrow at nine")),
            ("durationMinutes", json!(481)),
            ("durationMinutes", json!(0)),
            ("desk", json!("nope")),
            ("customer", json!("not a number")),
            ("channel", json!("fax")),
            ("channel", json!("")),
        ];
        for (field, value) in cases {
            let mut body = booking(start);
            body[field] = value.clone();
            let response = book(&app, &body, None).await;
            assert_eq!(response.status(), 422, "{field} = {value}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["field"], field, "{error}");
            if value == "" {
                assert!(error["message"].as_str().unwrap().contains("is empty"), "{error}");
            }
        }
        let mut fraction = booking(start);
        fraction["durationMinutes"] = json!(30.5);
        let response = book(&app, &fraction, None).await;
        assert_eq!(response.status(), 422);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid");
        assert!(error["message"].as_str().unwrap().contains("`durationMinutes` must be a whole number"), "{error}");
        let not_json = app.http.post(format!("{}/api/appointments", app.address))
            .bearer_auth(ADMIN_TOKEN).header("content-type", "application/json").body("{").send().await.unwrap();
        assert_eq!(not_json.status(), 400);
        assert_eq!(not_json.json::<Value>().await.unwrap()["error"], "invalid_json");
        assert_eq!(app.count("appointments").await, 0);
        assert_eq!(app.count("conversations").await, 0);
        assert_eq!(app.count("outbox").await, 0);
        assert!(app.broker_requests().await.is_empty());
    }
}

db_test! {
    async fn a_whatsapp_invitation_is_the_approved_template_with_the_time(db) {
        let settings = [
            ("WHATSAPP_TEMPLATE", "consultation_booked"),
            ("WHATSAPP_TEMPLATE_PARAMS", "name={customer_name},when={appointment},link={guest_url}"),
        ];
        let app = sms_app_with(db, &settings, Vec::new()).await;
        let start = slot_in(&app, 120);
        let mut body = booking(start);
        body["channel"] = json!("whatsapp");
        body["to"] = json!("wa-app-1");
        booked(&app, &body).await;
        app.worker.run_once().await.unwrap();
        let sent: Vec<Value> = app.connect.received_requests().await.unwrap().iter()
            .map(|r| r.body_json().unwrap()).collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["appid"], "wa-app-1");
        assert_eq!(sent[0]["destination"], json!([{"waid": ["14155550123"]}]));
        assert_eq!(sent[0]["message"], json!({
            "template": "consultation_booked",
            "parameters": {"name": "Ann", "when": local(start), "link": SHORT_GUEST_URL}
        }));

        // The reminder is the template too: the customer has not written.
        app.clock.set(start - 15 * MINUTE);
        app.worker.run_once().await.unwrap();
        let sent: Vec<Value> = app.connect.received_requests().await.unwrap().iter()
            .map(|r| r.body_json().unwrap()).collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1]["message"], sent[0]["message"]);

        // Cancelled, they cannot be told on WhatsApp (no template cancels); the thread says so.
        let listed: Value = admin(&app, reqwest::Method::GET, "/api/appointments").await.json().await.unwrap();
        let id = listed["appointments"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(admin(&app, reqwest::Method::DELETE, &format!("/api/appointments/{id}")).await.status(), 200);
        app.worker.run_once().await.unwrap();
        assert_eq!(app.connect.received_requests().await.unwrap().len(), 2, "nothing more to the customer");
        let note = app.webex_posts().await.last().unwrap()["markdown"].as_str().unwrap().to_string();
        assert!(note.ends_with("The customer could not be told: on WhatsApp only within 24 hours of their last message."), "{note}");
    }
}

db_test! {
    async fn whatsapp_bookings_need_the_template_and_bookings_need_webex_connect(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let mut body = booking(slot_in(&app, 120));
        body["channel"] = json!("whatsapp");
        body["to"] = json!("wa-app-1");
        let response = book(&app, &body, None).await;
        assert_eq!(response.status(), 409);
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "cannot_invite");

        let unreachable = desk_app(db, &[("ADMIN_TOKEN", ADMIN_TOKEN), ("CONNECT_API_URL", ""), ("CONNECT_SERVICE_KEY", "")]).await;
        let response = book(&unreachable, &booking(slot_in(&unreachable, 120)), None).await;
        assert_eq!(response.status(), 409);
        assert_eq!(unreachable.count("appointments").await, 0);
    }
}

db_test! {
    async fn the_cli_books_lists_and_cancels(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let vars: Vec<(&str, String)> = app.vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let starts_at = icbridge::domain::clock::rfc3339(slot_in(&app, 24 * 60));
        let added = crate::cli::icbridge(
            &["appointments", "add", "--channel", "sms", "--customer", CUSTOMER, "--to", "56263",
              "--starts-at", &starts_at, "--duration-minutes", "20"],
            &vars,
        ).await;
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
        let appointment: Value = serde_json::from_slice(&added.stdout).unwrap();
        assert_eq!(appointment["startsAt"], starts_at);
        let listed = crate::cli::icbridge(&["appointments", "list"], &vars).await;
        assert!(String::from_utf8_lossy(&listed.stdout).contains(appointment["id"].as_str().unwrap()));
        let cancelled = crate::cli::icbridge(&["appointments", "cancel", appointment["id"].as_str().unwrap()], &vars).await;
        assert!(cancelled.status.success());
        assert_eq!(app.stored().the_appointment().await.state, "cancelled");
        let audit: Vec<String> = app.stored().audited(&["book", "cancel"]).await.into_iter().map(|entry| entry.actor).collect();
        assert_eq!(audit.len(), 2);
        assert!(audit.iter().all(|actor| actor.starts_with("cli:")), "{audit:?}");
    }
}

db_test! {
    async fn the_console_shows_a_booked_conversation_with_its_slot_and_links(db) {
        use crate::console::{get, log_in, mount_expert_login, CLIENT_ID, CLIENT_SECRET, PUBLIC_URL};
        let settings = [
            ("PUBLIC_URL", PUBLIC_URL),
            ("OAUTH_CLIENT_ID", CLIENT_ID),
            ("OAUTH_CLIENT_SECRET", CLIENT_SECRET),
            ("WIDGET_BASE_URL", "https://widgets.example.net/space"),
        ];
        let app = sms_app_with(db, &settings, Vec::new()).await;
        mount_expert_login(&app.webex).await;
        let start = slot_in(&app, 120);
        let appointment = booked(&app, &booking(start)).await;
        let cookie = log_in(&app).await;
        let queue: Value = get(&app, "/console/api/queue", &cookie).await.json().await.unwrap();
        let row = &queue["conversations"][0];
        assert_eq!(row["id"], appointment["conversationId"]);
        assert_eq!(row["bookedFor"], icbridge::domain::clock::rfc3339(start));
        let conversation = appointment["conversationId"].as_str().unwrap();
        let detail: Value = get(&app, &format!("/console/api/conversations/{conversation}"), &cookie)
            .await.json().await.unwrap();
        let roles: Vec<&str> = detail["links"].as_array().unwrap().iter().map(|l| l["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["host", "guest"]);
        assert_eq!(detail["links"][1]["url"], appointment["guestUrl"]);
    }
}

db_test! {
    async fn a_booked_conversation_stays_open_until_its_consultation_is_over(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let start = slot_in(&app, 120);
        let appointment = booked(&app, &booking(start)).await;
        let conversation = appointment["conversationId"].as_str().unwrap();
        app.worker.run_once().await.unwrap();
        let close = format!("/api/conversations/{conversation}/close");
        let refused = admin(&app, reqwest::Method::POST, &close).await;
        assert_eq!(refused.status(), 409);
        let refused: Value = refused.json().await.unwrap();
        assert_eq!(refused["error"], "booked");
        assert!(refused["message"].as_str().unwrap().contains(appointment["id"].as_str().unwrap()));

        // The expert's `close` in the card's thread says why not.
        app.clock.set(start - 15 * MINUTE);
        app.worker.run_once().await.unwrap();
        crate::opt_out::expert_replies(&app, "e-1", "close").await;
        app.worker.run_once().await.unwrap();
        let answer = app.webex_posts().await.last().unwrap()["markdown"].as_str().unwrap().to_string();
        assert!(answer.starts_with("Not closed: this conversation has a booked consultation on"), "{answer}");

        // Once the slot is over it closes as any other.
        app.clock.set(start + 31 * MINUTE);
        let closed = admin(&app, reqwest::Method::POST, &close).await;
        assert_eq!(closed.status(), 200);
        assert_eq!(closed.json::<Value>().await.unwrap()["status"], "closed");
    }
}

db_test! {
    async fn erasing_the_customer_erases_their_appointments_number_and_note(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        booked(&app, &booking(slot_in(&app, 120))).await;
        let export: Value = admin(&app, reqwest::Method::GET, &format!("/api/customers/{CUSTOMER}/export"))
            .await.json().await.unwrap();
        let appointment = &export["conversations"][0]["meetings"][0]["appointment"];
        assert_eq!(appointment["note"], "Follow-up on the blood test", "{export}");
        assert_eq!(appointment["state"], "booked");

        let erased = admin(&app, reqwest::Method::POST, &format!("/api/customers/{CUSTOMER}/erase")).await;
        assert_eq!(erased.status(), 200);
        let appointment = app.stored().the_appointment().await;
        let (customer, note, state) = (appointment.customer, appointment.note, appointment.state);
        assert!(!customer.contains("4155550123"), "{customer}");
        assert_eq!(note, None);
        assert_eq!(state, "cancelled", "an erased customer's consultation does not take place");
        // The reminder and the card were cancelled with the customer's other deliveries.
        assert_eq!(app.stored().outbox_in_state("pending").await.len(), 0);
    }
}

db_test! {
    async fn concurrent_bookings_with_one_key_get_one_answer_and_one_meeting(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        // The broker takes its time: the six requests overlap.
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/api/v2/joseencrypt"))
            .respond_with(slow_broker_answer(300))
            .with_priority(1)
            .mount(&app.broker)
            .await;
        let body = booking(slot_in(&app, 120));
        let answers = futures_util::future::join_all(
            (0..6).map(|_| book(&app, &body, Some("crm-race"))),
        )
        .await;
        let mut ids = Vec::new();
        for answer in answers {
            assert_eq!(answer.status(), 201);
            let answer: Value = answer.json().await.unwrap();
            ids.push(answer["id"].as_str().unwrap().to_string());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one appointment for all: {ids:?}");
        assert_eq!(app.broker_requests().await.len(), 1, "the broker is asked once");
        assert_eq!(app.count("appointments").await, 1);
        // The claim ended with the booking: the customer's next meeting is a new one.
        let answer = customer_texts(&app, "m-after", "I have a question before then").await;
        let subs: Vec<Value> = app.broker_requests().await.iter().map(|r| r.body_json::<Value>().unwrap()["jwt"]["sub"].clone()).collect();
        if answer["created"] == true {
            assert_ne!(subs[0], subs[subs.len() - 1]);
        }
    }
}
