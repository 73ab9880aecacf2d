//! The expert's notification: written with the meeting, sent after the answer by the worker.

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

db_test! {
    async fn the_notification_is_queued_with_the_meeting_and_sent_by_the_worker(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header(
            "authorization",
            format!("Bearer {BOT_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("webex-message-created-response.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&app.webex)
        .await;

    let answer: Value = app
        .post_signed(&fixture("connect-whatsapp-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    // The answer did not wait for Webex: nothing was sent yet, the row is pending.
    assert!(app.webex_posts().await.is_empty());
    assert_eq!(app.stored().the_outbox_row().await.state, "pending");

    assert_eq!(app.worker.run_once().await.unwrap(), 1);
    let posts = app.webex_posts().await;
    assert_eq!(posts.len(), 1);
    let expires_at = app.stored().the_meeting().await.expires_at;
    let expiry = time::OffsetDateTime::from_unix_timestamp(expires_at / 1000)
        .unwrap()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap();
    assert_eq!(
        posts[0],
        json!({
            "roomId": EXPERT_ROOM,
            "markdown": format!(
                "**Video consultation request** · WhatsApp · +1415•••0142 (Alice Example)\n\n\
                 > Hello, can I get a video call with an advisor?\n\n\
                 **[Join as host]({SHORT_HOST_URL})** · link valid until {expiry}"
            ),
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "body": [
                        {"type": "TextBlock", "text": "Video consultation request", "weight": "Bolder", "size": "Medium"},
                        {"type": "FactSet", "facts": [
                            {"title": "Channel", "value": "WhatsApp"},
                            {"title": "Customer", "value": "+1415•••0142 (Alice Example)"},
                            {"title": "Link valid until", "value": expiry},
                        ]},
                        {"type": "TextBlock", "text": "Hello, can I get a video call with an advisor?", "wrap": true},
                    ],
                    "actions": [
                        {"type": "Action.OpenUrl", "title": "Join as host", "url": SHORT_HOST_URL},
                        {"type": "Action.Submit", "title": "Take", "data": {"action": "take"}},
                        {"type": "Action.Submit", "title": "New link", "data": {"action": "new_link"}},
                        {"type": "Action.Submit", "title": "Add guest", "data": {"action": "add_guest"}},
                        {"type": "Action.Submit", "title": "Close", "data": {"action": "close"}},
                    ],
                },
            }],
        })
    );
    let markdown = posts[0]["markdown"].as_str().unwrap();
    assert!(
        !markdown.contains(answer["guestUrl"].as_str().unwrap()),
        "never the guest link"
    );
    assert!(!markdown.contains("14155550142"), "never the full number");

    let row = app.stored().the_outbox_row().await;
    assert_eq!(row.state, "sent");
    assert_eq!(row.kind, "expert_notification");
    assert_eq!(row.attempts, 1);
    assert_eq!(
        row.upstream_id.as_deref(),
        fixture_json("webex-message-created-response.json")["id"].as_str()
    );
    // Nothing left to do.
    assert_eq!(app.worker.run_once().await.unwrap(), 0);
}
}

db_test! {
    async fn a_failed_send_stays_pending_and_is_retried(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_raw(fixture("webex-error-429.json"), "application/json"),
        )
        .up_to_n_times(1)
        .mount(&app.webex)
        .await;
    mount_webex_messages(&app.webex).await;

    assert_eq!(
        app.post_signed(&fixture("connect-sms-mo.json"))
            .await
            .status(),
        200
    );
    app.worker.run_once().await.unwrap();
    let row = app.stored().the_outbox_row().await;
    let (state, error) = (row.state, row.last_error.unwrap());
    assert_eq!(state, "pending");
    assert!(error.contains("503"), "{error}");
    assert!(
        error.contains("ROUTER_6740F1C2"),
        "the tracking id is kept: {error}"
    );

    // The test schedule retries after 1 ms.
    app.clock.advance(std::time::Duration::from_millis(5));
    app.worker.run_once().await.unwrap();
    let row = app.stored().the_outbox_row().await;
    let (state, attempts) = (row.state, row.attempts);
    assert_eq!(state, "sent");
    assert_eq!(attempts, 2);
    assert_eq!(app.webex_posts().await.len(), 2);
}
}

db_test! {
    async fn a_permanent_refusal_makes_the_row_dead(db) {
    let app = spawn_app(db).await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "Unable to post message to room", "trackingId": "T-400"
        })))
        .expect(1)
        .mount(&app.webex)
        .await;
    assert_eq!(
        app.post_signed(&fixture("connect-sms-mo.json"))
            .await
            .status(),
        200
    );
    app.worker.run_once().await.unwrap();
    let row = app.stored().the_outbox_row().await;
    let (state, error) = (row.state, row.last_error.unwrap());
    assert_eq!(state, "dead");
    assert!(error.contains("Unable to post message to room"), "{error}");
    app.clock.advance(std::time::Duration::from_millis(5));
    assert_eq!(app.worker.run_once().await.unwrap(), 0);
}
}

db_test! {
    async fn notifications_can_go_to_a_person_by_email(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .unset("EXPERT_ROOM_ID")
        .set("EXPERT_EMAIL", "expert@example.com");
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    app.post_signed(&fixture("connect-sms-mo.json")).await;
    app.worker.run_once().await.unwrap();
    let posts = app.webex_posts().await;
    assert_eq!(posts[0]["toPersonEmail"], "expert@example.com");
    assert!(posts[0].get("roomId").is_none());
}
}

db_test! {
    async fn a_room_title_is_resolved_at_start_across_pages(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .unset("EXPERT_ROOM_ID")
        .set("EXPERT_ROOM_TITLE", "Video Experts");
    let next = format!("{}/v1/rooms?cursor=page2", upstreams.webex.uri());
    Mock::given(method("GET"))
        .and(path("/v1/rooms"))
        .and(query_param("type", "group"))
        .and(query_param("max", "1000"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Link", format!("<{next}>; rel=\"next\"").as_str())
                .set_body_json(json!({"items": [{"id": "other", "title": "Sales"}]})),
        )
        .expect(1)
        .mount(&upstreams.webex)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/rooms"))
        .and(query_param("cursor", "page2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("webex-rooms.json"), "application/json"),
        )
        .expect(1)
        .mount(&upstreams.webex)
        .await;
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    mount_webex_messages(&app.webex).await;
    app.post_signed(&fixture("connect-sms-mo.json")).await;
    app.worker.run_once().await.unwrap();
    assert_eq!(app.webex_posts().await[0]["roomId"], EXPERT_ROOM);
}
}

db_test! {
    async fn an_unknown_or_ambiguous_room_title_stops_start_up_listing_what_was_found(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .unset("EXPERT_ROOM_ID")
        .set("EXPERT_ROOM_TITLE", "Experts");
    mount_webex_rooms(&upstreams.webex).await;
    let error = upstreams
        .build()
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(error.contains("\"Experts\""), "{error}");
    assert!(
        error.contains("\"Video Experts\""),
        "lists the titles found: {error}"
    );

    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .unset("EXPERT_ROOM_ID")
        .set("EXPERT_ROOM_TITLE", "Video Experts");
    Mock::given(method("GET"))
        .and(path("/v1/rooms"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [
            {"id": "room-a", "title": "Video Experts"}, {"id": "room-b", "title": "Video Experts"}
        ]})))
        .mount(&upstreams.webex)
        .await;
    let error = upstreams
        .build()
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        error.contains("room-a") && error.contains("room-b"),
        "{error}"
    );
}
}

db_test! {
    async fn start_up_names_a_missing_expert_target(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.unset("EXPERT_ROOM_ID");
    let error = upstreams
        .build()
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(error.contains("ICB_EXPERT_ROOM_ID"), "{error}");
}
}

db_test! {
    async fn in_connect_mode_the_customer_gets_the_guest_link_by_whatsapp(db) {
    let app = spawn_replying_app(db).await;
    Mock::given(method("POST"))
        .and(path("/resources/v1/messaging"))
        .and(header("key", SERVICE_KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("connect-whatsapp-send-ok.json"), "application/json"),
        )
        .expect(1)
        .mount(&app.connect)
        .await;
    let answer: Value = app
        .post_signed(&fixture("connect-whatsapp-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(app.worker.run_once().await.unwrap(), 2);
    let requests = app.connect.received_requests().await.unwrap();
    let reply_row = app.stored().outbox_of_kind("customer_reply").await[0].id;
    assert_eq!(
        requests[0].body_json::<Value>().unwrap(),
        json!({
            "deliverychannel": "whatsapp",
            "appid": "a_155054536910425280",
            "destination": [{"waid": ["14155550142"]}],
            "channels": {"OTT-Messaging": {"wa": {
                "type": "text",
                "text": {"body": format!("Join your video consultation: {SHORT_GUEST_URL}")},
                "preview_url": "true",
            }}},
            "correlationid": format!("icb-{reply_row}"),
            "callbackData": answer["conversationId"],
        })
    );
    let upstream_id = app.stored().outbox_row(reply_row).await.upstream_id;
    assert_eq!(upstream_id.as_deref(), Some("7c1e2f0a-5b7d-4d6e-9a51-3f1b2c4d5e6f"));
}
}
