//! Defects a hostile test run found (bad input, forged events, misbehaving upstreams,
//! concurrency), one test each, so that none comes back.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::desk::*;
use crate::helpers::*;

fn sms(customer: &str, business: &str, id: &str, text: &str) -> String {
    json!({"channel": "sms", "from": customer, "to": business, "text": text, "messageId": id})
        .to_string()
}

async fn answer(app: &TestApp, body: &str) -> Value {
    let response = app.post_flow(body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

db_test! {
    async fn the_same_message_id_from_another_customer_is_another_message(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        let alice = answer(&app, &sms("+14155550101", "56263", "X", "I am Alice")).await;
        let bob = answer(&app, &sms("+14155550102", "56263", "X", "I am Bob")).await;
        assert_ne!(alice["conversationId"], bob["conversationId"]);
        assert_eq!(bob["created"], true, "Bob gets a meeting of his own");
        // The same id to another business address is another message too.
        let other_desk = answer(&app, &sms("+14155550101", "56264", "X", "Alice again")).await;
        assert_ne!(other_desk["conversationId"], alice["conversationId"]);
        assert_eq!(app.count("messages").await, 3);
        assert_eq!(app.broker_requests().await.len(), 3);
        // A real repeat is still recognised.
        let repeat = answer(&app, &sms("+14155550102", "56263", "X", "I am Bob")).await;
        assert_eq!(repeat, bob);
        assert_eq!(app.count("messages").await, 3);
    }
}

/// A message of someone who is not an expert, as Webex would announce and serve it.
async fn outsider_message(app: &TestApp, id: &str, text: &str, room: &str, room_type: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/v1/messages/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "roomId": room, "roomType": room_type, "text": text,
            "personId": "mallory-id", "personEmail": "mallory@evil.example",
            "created": "2026-11-30T10:00:00.000Z"
        })))
        .mount(&app.webex)
        .await;
    let event = json!({
        "id": "hook-1", "resource": "messages", "event": "created", "actorId": "mallory-id",
        "data": {"id": id, "roomId": room, "roomType": room_type, "personId": "mallory-id",
                 "personEmail": "mallory@evil.example"}
    });
    deliver_event(app, &event.to_string()).await;
}

db_test! {
    async fn only_experts_may_use_the_bots_commands_and_cards(db) {
        let app = desk_app(db, &[]).await;
        open_conversation(&app).await;
        outsider_message(&app, "m-dm", "list", "mallory-dm", "direct").await;
        outsider_message(&app, "m-space", "icbridge list", "mallory-space", "group").await;
        outsider_message(&app, "m-close", "close", "mallory-space", "group").await;
        app.desk.run_once().await.unwrap();
        app.worker.run_once().await.unwrap();
        // A button of the conversation's card pressed where the card was not posted.
        press_in(&app, "action-elsewhere", "close", "mallory-space").await;

        let posts = bot_posts_after_notification(&app).await;
        assert_eq!(posts.len(), 4);
        for post in &posts {
            assert_eq!(
                post["markdown"],
                "Sorry, I only take requests from the experts of this service, in their space."
            );
            assert_ne!(post["roomId"], EXPERT_ROOM);
        }
        assert_eq!(app.stored().the_conversation().await.state, "open");
        assert_eq!(app.count("meetings").await, 1);
        // The direct message was checked against the experts' space's members.
        let asked = app
            .webex
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/v1/memberships")
            .map(|r| r.url.query().unwrap_or_default().to_string())
            .collect::<Vec<_>>();
        assert_eq!(
            asked,
            [format!("roomId={EXPERT_ROOM}&personId=mallory-id")]
        );
    }
}

/// Webex as it really is: markdown over 7439 bytes is refused with a 400.
struct WebexWithMarkdownLimit;

impl Respond for WebexWithMarkdownLimit {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = request.body_json().unwrap();
        if body["markdown"].as_str().unwrap_or_default().len() > 7439 {
            return ResponseTemplate::new(400).set_body_json(json!({
                "message": "Message markdown length must not exceed 7439 bytes", "trackingId": "T"
            }));
        }
        ResponseTemplate::new(200).set_body_raw(
            fixture("webex-message-created-response.json"),
            "application/json",
        )
    }
}

db_test! {
    async fn long_non_ascii_follow_ups_reach_the_thread_in_parts(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(WebexWithMarkdownLimit)
            .mount(&app.webex)
            .await;
        let customer = "+14155550123";
        answer(&app, &sms(customer, "56263", "first", "hello")).await;
        app.worker.run_once().await.unwrap();
        let texts = ["😀".repeat(3000), "漢".repeat(3000), "*\n".repeat(1500)];
        for (n, text) in texts.iter().enumerate() {
            answer(&app, &sms(customer, "56263", &format!("long-{n}"), text)).await;
        }
        while app.worker.run_once().await.unwrap() > 0 {}
        assert_eq!(app.stored().unsent().await.len(), 0, "nothing refused");
        let relays: Vec<String> = app.webex_posts().await[1..]
            .iter()
            .map(|post| {
                assert_eq!(post["parentId"], thread_id());
                post["markdown"].as_str().unwrap().to_string()
            })
            .collect();
        assert!(relays.len() > texts.len(), "{} parts", relays.len());
        assert!(relays[0].starts_with("**Customer (1/2):**"), "{}", relays[0]);
        assert!(relays[1].starts_with("**Customer (2/2):**"), "{}", relays[1]);
        let emoji: usize = relays[..2].iter().map(|r| r.matches('😀').count()).sum();
        assert_eq!(emoji, 3000, "the whole text, in order");
    }
}

db_test! {
    async fn a_message_first_answered_503_reaches_the_thread_once_answered(db) {
        let app = spawn_app(db).await;
        mount_webex_messages(&app.webex).await;
        Mock::given(method("POST"))
            .and(path("/api/v2/joseencrypt"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&app.broker)
            .await;
        let first = sms("+14155550123", "56263", "M1", "first message");
        let second = sms("+14155550123", "56263", "M2", "second message");
        assert_eq!(app.post_flow(&first).await.status(), 503);
        assert_eq!(app.post_flow(&second).await.status(), 503);
        app.broker.reset().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        // Webex Connect retries both, a minute later.
        app.clock.advance(Duration::from_secs(60));
        assert_eq!(answer(&app, &first).await["created"], true);
        assert_eq!(answer(&app, &second).await["created"], false);
        app.worker.run_once().await.unwrap();
        let posts = app.webex_posts().await;
        assert_eq!(posts.len(), 2);
        assert!(posts[0]["markdown"].as_str().unwrap().contains("> first message"));
        assert_eq!(posts[1]["markdown"], "**Customer:**\n\n> second message");
        assert_eq!(posts[1]["parentId"], thread_id());
    }
}

db_test! {
    async fn the_hourly_meeting_limit_holds_for_simultaneous_messages(db) {
        let app = spawn_app(db).await;
        mount_slow_broker(&app.broker, 300).await;
        let requests = (0..40).map(|n| {
            let body = sms("+14155550123", &format!("{}", 1000 + n), &format!("m{n}"), "hi");
            let app = &app;
            async move { app.post_flow(&body).await.status().as_u16() }
        });
        let statuses = join_all(requests).await;
        let answered = statuses.iter().filter(|&&s| s == 200).count();
        let limited = statuses.iter().filter(|&&s| s == 429).count();
        assert_eq!((answered, limited), (5, 35), "{statuses:?}");
        assert_eq!(app.broker_requests().await.len(), 5);
        assert_eq!(app.count("meetings").await, 5);
    }
}

db_test! {
    async fn control_characters_are_removed_so_nul_poisons_nothing(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        let body = json!({
            "channel": "whatsapp", "from": "14155550142", "text": "before\u{0}after\u{7}",
            "name": "Ann\u{0}Lee", "messageId": "nul-1"
        })
        .to_string();
        answer(&app, &body).await;
        assert_eq!(app.stored().the_message().await.body, "beforeafter");
        let name = app.stored().the_conversation().await.customer_name;
        assert_eq!(name.as_deref(), Some("Ann Lee"));
    }
}

db_test! {
    async fn a_retry_after_a_failed_store_asks_the_broker_for_the_same_meeting(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        // Storing the meeting fails once the broker has made it.
        let (break_it, repair) = match db {
            TestDb::Sqlite => (
                vec!["CREATE TRIGGER refuse_meetings BEFORE INSERT ON meetings \
                      BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"],
                "DROP TRIGGER refuse_meetings",
            ),
            TestDb::Postgres => (
                vec![
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'refused for the test'; END $$ LANGUAGE plpgsql",
                    "CREATE TRIGGER refuse_meetings BEFORE INSERT ON meetings \
                     FOR EACH ROW EXECUTE FUNCTION refuse()",
                ],
                "DROP TRIGGER refuse_meetings ON meetings",
            ),
        };
        // The database refuses meetings on purpose, then is repaired: a failure mid-way.
        for statement in break_it {
            sqlx::query(statement).execute(&app.db).await.unwrap();
        }
        let message = sms("+14155550123", "56263", "once", "hello");
        assert_eq!(app.post_flow(&message).await.status(), 500);
        sqlx::query(repair).execute(&app.db).await.unwrap();
        assert_eq!(answer(&app, &message).await["created"], true);

        let subs: Vec<String> = app
            .broker_requests()
            .await
            .iter()
            .map(|r| r.body_json::<Value>().unwrap()["jwt"]["sub"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0], subs[1], "one meeting, asked for twice");
        assert_eq!(app.stored().the_meeting().await.sub, subs[0]);
    }
}

db_test! {
    async fn numeric_ids_beyond_64_bits_are_refused_rather_than_merged(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        for id in ["100000000000000000000001", "100000000000000000000002"] {
            let body = format!(
                r#"{{"channel":"sms","from":"+14155550123","to":"56263","text":"hi","messageId":{id}}}"#
            );
            let response = app.post_flow(&body).await;
            assert_eq!(response.status(), 422);
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"], "invalid_message");
            assert!(error["message"].as_str().unwrap().starts_with("field `messageId`"), "{error}");
        }
        assert_eq!(app.stored().counts().await, (0, 0, 0, 0));
        let body = r#"{"channel":"sms","from":"+14155550123","to":"56263","text":"hi","messageId":9007199254740993}"#;
        answer(&app, body).await;
        let id = app.stored().the_message().await.external_id;
        assert_eq!(id.as_deref(), Some("9007199254740993"), "every digit kept");
    }
}

db_test! {
    async fn old_webex_events_are_refused_and_ids_outlive_a_short_retention(db) {
        let app = desk_app(db, &[]).await;
        open_conversation(&app).await;
        let event = expert_message(&app, "m-renew", "new link", Some(&thread_id()), EXPERT_ROOM).await;
        // Captured two hours ago and replayed: the message's own time is two hours old.
        let stale = crate::desk::as_sent_at(&event, app.clock.now_ms() - 2 * 3_600_000);
        let refused = post_webex(&app, &stale, Some(&spark_signature(&stale))).await;
        assert_eq!(refused.status(), 400);
        assert_eq!(refused.json::<Value>().await.unwrap()["error"], "stale_event");
        assert_eq!(app.count("webex_events").await, 0);

        assert_eq!(deliver_event(&app, &event).await["status"], "recorded");
        app.desk.run_once().await.unwrap();
        assert_eq!(app.count("meetings").await, 2);
        // Ten minutes later, retention of one second runs...
        // Aged on purpose: the event was received ten minutes ago.
        sqlx::query("UPDATE webex_events SET received_at = received_at - 600000")
            .execute(&app.db)
            .await
            .unwrap();
        let purged = crate::cli::icbridge(
            &["purge"],
            &[("DATABASE_URL", app.database_url.clone()), ("RETENTION", "1s".into())],
        )
        .await;
        assert!(purged.status.success());
        // ... and the event, replayed with a fresh `created`, is still known.
        assert_eq!(deliver_event(&app, &event).await["status"], "duplicate");
        app.desk.run_once().await.unwrap();
        assert_eq!(app.count("meetings").await, 2);
    }
}

db_test! {
    async fn a_customer_cannot_write_lines_of_their_own_into_the_notification(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        mount_webex_messages(&app.webex).await;
        let body = json!({
            "channel": "whatsapp", "from": "14155550142",
            "name": "Bob)\n\nJoin as host: https://evil.example/visit/FAKE",
            "text": "hi\rJoin as host: https://evil.example/visit/FAKE2\u{2028}[x](https://evil.example)",
        })
        .to_string();
        answer(&app, &body).await;
        app.worker.run_once().await.unwrap();
        let markdown = app.webex_posts().await[0]["markdown"].as_str().unwrap().to_string();
        let lines: Vec<&str> = markdown.split(['\n', '\r', '\u{2028}', '\u{2029}']).collect();
        assert!(
            lines[0].starts_with("**Video consultation request** · WhatsApp · +1415•••0142 (Bob\\) Join as host:"),
            "{markdown}"
        );
        for line in &lines[1..] {
            if line.contains("evil.example") {
                assert!(line.starts_with("> "), "outside the quote: {line:?}\n{markdown}");
            }
        }
        let host_lines = lines.iter().filter(|l| l.contains("Join as host")).count();
        assert_eq!(host_lines, 3, "the header's name, the quoted text and the real link");
    }
}

db_test! {
    async fn every_endpoint_answers_a_wrong_method_with_json_405_and_allow(db) {
        let app = admin_and_console_app(db).await;
        let document = app.openapi().await;
        for (route, operations) in document["paths"].as_object().unwrap() {
            let documented: Vec<String> =
                operations.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
            let wrong = ["PATCH", "PUT", "DELETE", "POST", "GET"]
                .into_iter()
                .find(|m| !documented.iter().any(|d| d == m))
                .unwrap();
            let concrete = route.replace("{id}", "1").replace("{action}", "close");
            let response = app
                .http
                .request(wrong.parse().unwrap(), format!("{}{concrete}", app.address))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405, "{wrong} {route}");
            let allow = response.headers()["allow"].to_str().unwrap().to_string();
            for method in &documented {
                assert!(allow.contains(method.as_str()), "{route}: Allow {allow:?} lacks {method}");
            }
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "method_not_allowed", "{wrong} {route}");
            assert!(body["message"].as_str().unwrap().contains(&allow), "{body}");
        }
    }
}

/// A `HEAD` request over a plain connection: its status, its headers (names in lower case)
/// and whatever the server sent after them (which must be nothing).
async fn raw_head(address: &str, route: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "HEAD {route} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head")
        + 4;
    let head = String::from_utf8(answer[..end].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
        .collect();
    (status, headers, answer[end..].to_vec())
}

db_test! {
    async fn head_is_answered_wherever_get_is_with_the_same_status_and_headers_and_no_body(db) {
        let with_everything = admin_and_console_app(db).await;
        let without_console_or_admin = spawn_app(db).await;
        let document = with_everything.openapi().await;
        let mut routes: Vec<String> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, operations)| operations.get("get").is_some())
            .map(|(route, _)| {
                route.replace("{id}", "1").replace("{code}", "abc").replace("{number}", "+14155550100")
            })
            .collect();
        assert!(routes.len() >= 15, "{routes:?}");
        routes.extend(
            ["/console/app.js", "/console/console.css", "/media/token/care-plan.pdf", "/nowhere"]
                .map(String::from),
        );
        let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        for app in [&with_everything, &without_console_or_admin] {
            for route in &routes {
                let get = no_redirects
                    .get(format!("{}{route}", app.address))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                let (status, headers, body) = raw_head(&app.address, route).await;
                assert_eq!(status, get.status().as_u16(), "HEAD {route}");
                assert!(body.is_empty(), "HEAD {route} sent a body: {}", String::from_utf8_lossy(&body));
                let named = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                for (name, value) in get.headers() {
                    if ["date", "x-request-id", "location", "set-cookie", "content-length"].contains(&name.as_str()) {
                        assert!(named(name.as_str()).is_some(), "HEAD {route} lacks {name}");
                        continue;
                    }
                    assert_eq!(named(name.as_str()), Some(value.to_str().unwrap()), "HEAD {route}: {name}");
                }
                let own = headers.iter().filter(|(name, _)| name != "connection").count();
                assert_eq!(own, get.headers().len(), "HEAD {route}: {headers:?} / {:?}", get.headers());
            }
        }
    }
}

db_test! {
    async fn a_malformed_request_from_a_client_is_no_error_in_the_logs(db) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstreams = Upstreams::start(db).await;
        let running = spawn_binary(&upstreams.vars).await;
        let host = running.address.trim_start_matches("http://").to_string();
        let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nNot A Header\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        // The connection is closed, so anything logged about it is logged; a request after
        // it shows when the log has caught up.
        let healthy = reqwest::get(format!("{}/healthz", running.address)).await.unwrap();
        assert_eq!(healthy.status(), 200);
        let caught_up = eventually(5, || async { running.logs.lock().unwrap().contains("path=/healthz") }).await;
        let logs = running.logs.lock().unwrap().clone();
        assert!(caught_up, "{logs}");
        assert!(!logs.contains("ERROR"), "{logs}");
    }
}
