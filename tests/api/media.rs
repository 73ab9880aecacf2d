//! Pictures, documents and locations from customers: validated, stored as links with the
//! message, and shown in the experts' thread, each file as its own Webex message.

use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::https_host::HttpsHost;

const NOTIFICATION_ID: &str = "Y2lzY29zcGFyazovL3VzL01FU1NBR0UvcGFyZW50LW5vdGlmaWNhdGlvbg";
const PHOTO_URL: &str =
    "https://media.example.com/wa/a_155054536910425280/7f2a9c0b-15d4-46e0-914b-3c5e8d2a6f01.jpeg";

fn flow_message(text: &str, media: Value) -> String {
    let mut body = json!({"channel": "whatsapp", "from": "14155550142", "to": "a_1", "text": text});
    body.as_object_mut()
        .unwrap()
        .extend(media.as_object().unwrap().clone());
    body.to_string()
}

async fn stored_media(app: &TestApp) -> Vec<Option<String>> {
    let messages = app.stored().messages().await.into_iter();
    messages.map(|message| message.media).collect()
}

db_test! {
    async fn a_whatsapp_photo_without_caption_opens_a_meeting_and_shows_as_a_picture(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        mount_webex_messages(&app.webex).await;
        let response = app.post_signed(&fixture("connect-whatsapp-mo-image.json")).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["created"], true);
        app.worker.run_once().await.unwrap();

        let posts = app.webex_posts().await;
        assert_eq!(posts.len(), 2, "{posts:#?}");
        let markdown = posts[0]["markdown"].as_str().unwrap();
        assert!(markdown.contains("\n\n_(photo)_\n\n"), "{markdown}");
        let card = &posts[0]["attachments"][0]["content"];
        assert_eq!(card["body"][2]["text"], "(photo)");
        assert_eq!(card["body"][1]["facts"][3], json!({"title": "Sent with", "value": "photo"}));
        assert_eq!(
            posts[1],
            json!({
                "roomId": EXPERT_ROOM,
                "markdown": "**Customer sent a photo.**",
                "parentId": NOTIFICATION_ID,
                "files": [PHOTO_URL],
            })
        );
        assert_eq!(
            stored_media(&app).await,
            vec![Some(format!(r#"{{"attachments":[{{"url":"{PHOTO_URL}","mimeType":"image/jpeg"}}]}}"#))]
        );
    }
}

db_test! {
    async fn a_later_message_relays_its_text_then_each_file_then_the_place(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        mount_webex_messages(&app.webex).await;
        assert_eq!(app.post_flow(&flow_message("hello", json!({}))).await.status(), 200);
        let later = flow_message(
            "here are the papers",
            json!({
                "attachments": [
                    {"url": "https://files.example.org/form.pdf", "mimeType": "application/pdf", "caption": "Form *B*"},
                    {"url": "https://files.example.org/arm.jpg", "mimeType": "image/jpeg"},
                ],
                "location": {"latitude": "52.52", "longitude": 13.405, "name": "Main St Clinic", "address": "Main St 1"},
            }),
        );
        assert_eq!(app.post_flow(&later).await.status(), 200);
        app.worker.run_once().await.unwrap();

        let posts = app.webex_posts().await;
        let thread: Vec<Value> = posts[1..]
            .iter()
            .map(|p| json!({"markdown": p["markdown"], "files": p["files"], "parentId": p["parentId"]}))
            .collect();
        assert_eq!(
            thread,
            vec![
                json!({"markdown": "**Customer:**\n\n> here are the papers", "files": null, "parentId": NOTIFICATION_ID}),
                json!({"markdown": "**Customer sent a document (1/2):**\n\n> Form \\*B\\*",
                       "files": ["https://files.example.org/form.pdf"], "parentId": NOTIFICATION_ID}),
                json!({"markdown": "**Customer sent a photo (2/2).**",
                       "files": ["https://files.example.org/arm.jpg"], "parentId": NOTIFICATION_ID}),
                json!({"markdown": "**Customer shared a location:** [Main St Clinic, Main St 1](https://www.openstreetmap.org/?mlat=52.52&mlon=13.405#map=17/52.52/13.405)",
                       "files": null, "parentId": NOTIFICATION_ID}),
            ]
        );
        let media = stored_media(&app).await;
        assert_eq!(media[0], None);
        let later_media: Value = serde_json::from_str(media[1].as_deref().unwrap()).unwrap();
        assert_eq!(later_media["attachments"][0]["caption"], "Form *B*");
        assert_eq!(later_media["location"]["latitude"], 52.52);
    }
}

db_test! {
    async fn a_bad_item_is_refused_by_name_and_nothing_is_stored(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        let photo = json!({"url": "https://files.example.org/a.jpg", "mimeType": "image/jpeg"});
        let eleven: Vec<Value> = (0..11).map(|_| photo.clone()).collect();
        let cases = [
            (json!({"attachments": [{"url": "http://files.example.org/a.jpg", "mimeType": "image/jpeg"}]}),
             "field `attachments[0].url` must be an https link"),
            (json!({"attachments": [{"mimeType": "image/jpeg"}]}), "field `attachments[0].url` is missing"),
            (json!({"attachments": eleven}), "field `attachments` has more than 10 items"),
            (json!({"location": {"latitude": 95, "longitude": 10}}), "field `location.latitude` must be between -90 and 90"),
            (json!({"location": {"latitude": "north", "longitude": 10}}), "field `location.latitude` must be a number"),
        ];
        for (media, error) in cases {
            let response = app.post_flow(&flow_message("", media)).await;
            assert_eq!(response.status(), 422);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["message"], error, "{body}");
            assert_eq!(body["error"], "invalid_message");
        }
        // Webex Connect's MO events carry the list as a JSON string.
        let mut event = fixture_json("connect-whatsapp-mo-image.json");
        event["attachments"] = json!("[{\"mime_type\":\"image/jpeg\",\"caption\":\"\",\"url\":\"ftp://x.example/a.jpg\"}]");
        let response = app.post_signed(&event.to_string()).await;
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], "field `attachments[0].url` must be an https link");
        assert_eq!(app.count("messages").await, 0);
        assert!(app.broker_requests().await.is_empty());
    }
}

/// An app whose customers' files are on `files` (behind HTTPS), with Webex refusing to fetch
/// file links itself; no Webex Connect API.
async fn app_with_unfetchable_links(
    db: TestDb,
    files: &MockServer,
    max_mb: &str,
) -> (TestApp, HttpsHost) {
    let host = HttpsHost::start(files).await;
    let mut upstreams = Upstreams::start(db).await;
    upstreams
        .unset("CONNECT_API_URL")
        .unset("CONNECT_SERVICE_KEY")
        .set("MEDIA_CA_FILE", host.ca_file.to_str().unwrap())
        .set("MEDIA_PRIVATE_ADDRESSES", "true")
        .set("MEDIA_MAX_MB", max_mb);
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_partial_json(
            json!({"files": [format!("{}/p/arm.jpg", host.base)]}),
        ))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"message": "Unable to retrieve content.", "trackingId": "t"}),
            ),
        )
        .with_priority(1)
        .mount(&app.webex)
        .await;
    mount_webex_messages(&app.webex).await;
    (app, host)
}

async fn post_photo(app: &TestApp, host: &HttpsHost) {
    let body = flow_message(
        "",
        json!({"attachments": [{"url": format!("{}/p/arm.jpg", host.base), "mimeType": "image/jpeg"}]}),
    );
    assert_eq!(app.post_flow(&body).await.status(), 200);
    app.worker.run_once().await.unwrap();
}

/// The messages Webex received, the last one raw: the upload is not JSON.
async fn last_webex_post(app: &TestApp) -> wiremock::Request {
    app.webex
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .rfind(|r| r.url.path() == "/v1/messages")
        .unwrap()
}

db_test! {
    async fn a_link_webex_cannot_fetch_is_downloaded_and_uploaded(db) {
        let files = MockServer::start().await;
        let jpeg = b"\xff\xd8\xff\xe0 a small picture".to_vec();
        Mock::given(method("GET"))
            .and(path("/p/arm.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
            .mount(&files)
            .await;
        let (app, host) = app_with_unfetchable_links(db, &files, "25").await;
        post_photo(&app, &host).await;

        let downloads = files.received_requests().await.unwrap();
        assert_eq!(downloads.len(), 1);
        assert!(downloads[0].headers.get("key").is_none(), "no key to a host that is not Webex Connect's");
        let upload = last_webex_post(&app).await;
        let content_type = upload.headers.get("content-type").unwrap().to_str().unwrap().to_string();
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
        assert_eq!(upload.headers.get("authorization").unwrap(), &format!("Bearer {BOT_TOKEN}"));
        let mut expected = Vec::new();
        for (name, value) in [("roomId", EXPERT_ROOM), ("parentId", NOTIFICATION_ID), ("markdown", "**Customer sent a photo.**")] {
            expected.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes());
        }
        expected.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").bytes());
        expected.extend(&jpeg);
        expected.extend(format!("\r\n--{boundary}--\r\n").bytes());
        assert_eq!(String::from_utf8_lossy(&upload.body), String::from_utf8_lossy(&expected));
        let sent = app.stored().newest_outbox_row().await.state;
        assert_eq!(sent, "sent");
    }
}

db_test! {
    async fn a_file_too_large_is_named_but_not_attached_and_any_type_is_passed_on(db) {
        let files = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/p/arm.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(vec![0u8; 1024 * 1024 + 1], "image/jpeg"))
            .up_to_n_times(1)
            .mount(&files)
            .await;
        Mock::given(method("GET"))
            .and(path("/p/arm.jpg"))
            .respond_with(ResponseTemplate::new(200).set_body_raw("<html>login</html>", "text/html"))
            .mount(&files)
            .await;
        let (app, host) = app_with_unfetchable_links(db, &files, "1").await;
        post_photo(&app, &host).await;
        let told: Value = last_webex_post(&app).await.body_json().unwrap();
        assert_eq!(
            told,
            json!({"roomId": EXPERT_ROOM, "parentId": NOTIFICATION_ID,
                   "markdown": "**Customer sent a photo.**\n\n_The file cannot be shown here: it is larger than 1 MiB._"})
        );
        // A later picture whose link answers with a login page instead.
        let body = flow_message(
            "",
            json!({"attachments": [{"url": format!("{}/p/arm.jpg", host.base), "mimeType": "image/jpeg"}]}),
        );
        assert_eq!(app.post_flow(&body).await.status(), 200);
        app.worker.run_once().await.unwrap();
        // Whatever the link gives is passed on, as what it says it is.
        let upload = last_webex_post(&app).await;
        assert!(String::from_utf8_lossy(&upload.body)
            .contains("filename=\"file.html\"\r\nContent-Type: text/html\r\n\r\n<html>login</html>"));
        assert_eq!(app.stored().outbox_in_state("dead").await.len(), 0);
    }
}

db_test! {
    async fn a_webex_connect_link_is_fetched_with_the_service_key_and_uploaded(db) {
        let mut upstreams = Upstreams::start(db).await;
        // The Connect API's host serves its media links too, over HTTPS here.
        let host = HttpsHost::start(&upstreams.connect).await;
        upstreams.set("MEDIA_CA_FILE", host.ca_file.to_str().unwrap());
        // The key goes to Webex Connect's configured origins only: here its SMS API's.
        upstreams.set("CONNECT_SMS_URL", &host.base);
        upstreams.set("MEDIA_PRIVATE_ADDRESSES", "true");
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        mount_webex_messages(&app.webex).await;
        Mock::given(method("GET"))
            .and(path("/media/v1/abc.pdf"))
            .and(header("key", SERVICE_KEY))
            .respond_with(ResponseTemplate::new(200).set_body_raw("%PDF-1.7", "application/pdf"))
            .mount(&app.connect)
            .await;
        let body = flow_message(
            "my form",
            json!({"attachments": [{"url": format!("{}/media/v1/abc.pdf", host.base), "mimeType": "application/pdf"}]}),
        );
        assert_eq!(app.post_flow(&body).await.status(), 200);
        app.worker.run_once().await.unwrap();
        let upload = last_webex_post(&app).await;
        assert!(upload.headers.get("content-type").unwrap().to_str().unwrap().starts_with("multipart/form-data"));
        assert!(String::from_utf8_lossy(&upload.body).contains("filename=\"document.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\r\n"));
        // Webex was never handed a link it cannot open.
        let json_posts = app
            .webex
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| r.body_json::<Value>().ok())
            .filter(|b| b.get("files").is_some())
            .count();
        assert_eq!(json_posts, 0);
    }
}

db_test! {
    async fn no_link_or_caption_reaches_the_logs(db) {
        let upstreams = Upstreams::start(db).await;
        mount_broker(&upstreams.broker, "ic-joseencrypt-short.json").await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(body_partial_json(json!({"files": ["https://files.example.org/secret-rash.jpg"]})))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "Unable to retrieve content."})))
            .with_priority(1)
            .mount(&upstreams.webex)
            .await;
        mount_webex_messages(&upstreams.webex).await;
        let binary = spawn_binary(&upstreams.vars).await;
        let body = flow_message(
            "",
            json!({"attachments": [{"url": "https://files.example.org/secret-rash.jpg", "mimeType": "image/jpeg", "caption": "private caption"}]}),
        );
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/connect", binary.address))
            .bearer_auth(FLOW_TOKEN)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let webex = &upstreams.webex;
        // The notification, the link Webex refuses, and the note that the file cannot be had
        // (the download fails: files.example.org does not answer here).
        assert!(eventually(20, || async {
            webex.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/v1/messages").count() >= 3
        }).await, "{}", binary.logs.lock().unwrap());
        // A link to an expert's file is a token: the request log leaves it out.
        let file = reqwest::get(format!("{}/media/secret-token-123.abc/plan.pdf", binary.address))
            .await
            .unwrap();
        assert_eq!(file.status(), 404);
        assert!(eventually(5, || async { binary.logs.lock().unwrap().contains("path=/media/{token}/{name}") }).await);
        let logs = binary.logs.lock().unwrap().clone();
        for secret in ["secret-rash", "files.example.org", "private caption", "secret-token-123", "plan.pdf"] {
            assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
        }
    }
}

db_test! {
    async fn the_service_key_goes_to_webex_connects_origin_only_never_where_it_redirects(db) {
        let mut upstreams = Upstreams::start(db).await;
        let connect_host = HttpsHost::start(&upstreams.connect).await;
        let elsewhere = MockServer::start().await;
        let elsewhere_host = HttpsHost::start(&elsewhere).await;
        // Both hosts' certificates, as one bundle.
        let bundle = connect_host.ca_file.with_extension("bundle.pem");
        std::fs::write(
            &bundle,
            [std::fs::read(&connect_host.ca_file).unwrap(), std::fs::read(&elsewhere_host.ca_file).unwrap()].concat(),
        )
        .unwrap();
        upstreams
            .set("MEDIA_CA_FILE", bundle.to_str().unwrap())
            .set("CONNECT_SMS_URL", &connect_host.base)
            .set("MEDIA_PRIVATE_ADDRESSES", "true");
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        mount_webex_messages(&app.webex).await;
        Mock::given(method("GET"))
            .and(path("/media/v1/moved.pdf"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", format!("{}/files/moved.pdf", elsewhere_host.base)))
            .mount(&app.connect)
            .await;
        Mock::given(method("GET"))
            .and(path("/files/moved.pdf"))
            .respond_with(ResponseTemplate::new(200).set_body_raw("%PDF-1.7 moved", "application/pdf"))
            .mount(&elsewhere)
            .await;
        let body = flow_message(
            "",
            json!({"attachments": [{"url": format!("{}/media/v1/moved.pdf", connect_host.base), "mimeType": "application/pdf"}]}),
        );
        assert_eq!(app.post_flow(&body).await.status(), 200);
        app.worker.run_once().await.unwrap();
        let asked_connect = &app.connect.received_requests().await.unwrap()[0];
        assert_eq!(asked_connect.headers.get("key").unwrap(), SERVICE_KEY);
        let asked_elsewhere = elsewhere.received_requests().await.unwrap();
        assert_eq!(asked_elsewhere.len(), 1);
        assert!(asked_elsewhere[0].headers.get("key").is_none(), "the key followed the redirect");
        assert!(String::from_utf8_lossy(&last_webex_post(&app).await.body).contains("%PDF-1.7 moved"));
    }
}

db_test! {
    async fn a_link_into_a_private_network_is_neither_fetched_nor_handed_to_webex(db) {
        let files = MockServer::start().await;
        let host = HttpsHost::start(&files).await;
        let mut upstreams = Upstreams::start(db).await;
        upstreams.set("MEDIA_CA_FILE", host.ca_file.to_str().unwrap());
        let app = upstreams.spawn().await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        mount_webex_messages(&app.webex).await;
        let body = flow_message(
            "",
            json!({"attachments": [{"url": format!("{}/p/arm.jpg", host.base), "mimeType": "image/jpeg"}]}),
        );
        assert_eq!(app.post_flow(&body).await.status(), 200);
        app.worker.run_once().await.unwrap();
        assert!(files.received_requests().await.unwrap().is_empty());
        let told: Value = last_webex_post(&app).await.body_json().unwrap();
        assert_eq!(
            told["markdown"],
            "**Customer sent a photo.**\n\n_The file cannot be shown here: the link points at a private network address._"
        );
        assert!(told.get("files").is_none());
    }
}
