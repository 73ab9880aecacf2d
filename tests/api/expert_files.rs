//! Files an expert attaches to a thread reply reach the customer: on WhatsApp as media
//! messages, on SMS as links. Webex Connect fetches them from icbridge
//! (`ICB_PUBLIC_URL/media/<token>/<name>`), which streams them from Webex with the bot
//! token to whoever holds a valid signed token, and to nobody else.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::console::PUBLIC_URL;
use crate::desk::*;
use crate::helpers::*;

const PDF: &str = "%PDF-1.7 the care plan";

/// Webex serves a message's file: its type and name on `HEAD`, its bytes on `GET`.
pub async fn webex_file(
    app: &TestApp,
    id: &str,
    mime_type: &str,
    name: &str,
    body: &str,
) -> String {
    for verb in ["HEAD", "GET"] {
        Mock::given(method(verb))
            .and(path(format!("/v1/contents/{id}")))
            .and(header(
                "authorization",
                format!("Bearer {BOT_TOKEN}").as_str(),
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", mime_type)
                    .insert_header(
                        "content-disposition",
                        format!("attachment; filename=\"{name}\"").as_str(),
                    )
                    .set_body_raw(body.as_bytes().to_vec(), mime_type),
            )
            .mount(&app.webex)
            .await;
    }
    format!("{}/v1/contents/{id}", app.webex.uri())
}

/// An expert's thread reply with files, delivered and handled, and its relays sent.
pub async fn expert_sends(app: &TestApp, text: &str, files: &[String]) {
    let id = "expert-files-1";
    Mock::given(method("GET"))
        .and(path(format!("/v1/messages/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "roomId": EXPERT_ROOM, "roomType": "group", "text": text,
            "parentId": thread_id(), "files": files,
            "personId": EXPERT_ID, "personEmail": "expert@example.com",
        })))
        .mount(&app.webex)
        .await;
    let mut event = fixture_json("webex-webhook-message-created.json");
    event["data"]["id"] = json!(id);
    event["data"]["roomId"] = json!(EXPERT_ROOM);
    event["data"]["parentId"] = json!(thread_id());
    deliver_event(app, &event.to_string()).await;
    app.desk.run_once().await.unwrap();
    app.worker.run_once().await.unwrap();
}

fn link_path(link: &str) -> String {
    link.strip_prefix(PUBLIC_URL).unwrap().to_string()
}

db_test! {
    async fn an_experts_pdf_reaches_a_whatsapp_customer_as_a_document(db) {
        let app = desk_app(
            db,
            &[("REPLY_MODE", "connect"), ("PUBLIC_URL", PUBLIC_URL), ("ADMIN_TOKEN", ADMIN_TOKEN)],
        )
        .await;
        let answer = open_conversation(&app).await;
        let file = webex_file(&app, "plan", "application/pdf", "care plan.pdf", PDF).await;
        expert_sends(&app, "Here is your plan", &[file]).await;

        let sent = app.connect.received_requests().await.unwrap();
        let body: Value = sent.last().unwrap().body_json().unwrap();
        let link = body["channels"]["OTT-Messaging"]["wa"]["document"]["url"].as_str().unwrap().to_string();
        assert!(link.starts_with(&format!("{PUBLIC_URL}/media/")), "{link}");
        assert!(link.ends_with("/care_plan.pdf"), "{link}");
        let row: i64 = app.stored().newest_reply_id().await;
        assert_eq!(
            body,
            json!({
                "deliverychannel": "whatsapp",
                "appid": "a_155054536910425280",
                "destination": [{"waid": ["14155550142"]}],
                "channels": {"OTT-Messaging": {"wa": {"type": "document", "document": {
                    "url": link, "mimeType": "application/pdf",
                    "caption": "Here is your plan", "filename": "care_plan.pdf",
                }}}},
                "correlationid": format!("icb-{row}"),
                "callbackData": answer["conversationId"],
            })
        );
        // Webex Connect fetches it from icbridge, which reads it from Webex.
        let response = app.http.get(format!("{}{}", app.address, link_path(&link))).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/pdf");
        assert_eq!(response.text().await.unwrap(), PDF);
        assert_eq!(
            app.transcript(answer["conversationId"].as_str().unwrap()).await[1],
            "Here is your plan\n[file: care_plan.pdf]"
        );
    }
}

db_test! {
    async fn each_file_goes_as_its_whatsapp_type(db) {
        let app = desk_app(db, &[("REPLY_MODE", "connect"), ("PUBLIC_URL", PUBLIC_URL)]).await;
        open_conversation(&app).await;
        let files = [
            webex_file(&app, "a", "audio/ogg", "note.ogg", "ogg").await,
            webex_file(&app, "b", "image/jpeg", "x-ray.jpg", "jpg").await,
            webex_file(&app, "c", "video/mp4", "exercise.mp4", "mp4").await,
            webex_file(&app, "d", "application/zip", "scans.zip", "zip").await,
        ];
        expert_sends(&app, "Four files", &files).await;
        let sent = whatsapp_after_the_link(&app).await;
        // A voice note takes no caption: the text goes first, on its own.
        assert_eq!(sent[0], json!({"type": "text", "text": {"body": "Four files"}, "preview_url": "true"}));
        let link = |wa: &Value, kind: &str| wa[kind]["url"].as_str().unwrap().to_string();
        assert_eq!(sent[1], json!({"type": "audio", "audio": {"url": link(&sent[1], "audio"), "mimeType": "audio/ogg"}}));
        assert_eq!(sent[2], json!({"type": "image", "image": {"url": link(&sent[2], "image"), "mimeType": "image/jpeg"}}));
        assert_eq!(sent[3], json!({"type": "video", "video": {"url": link(&sent[3], "video"), "mimeType": "video/mp4"}}));
        // WhatsApp does not carry archives: a link instead.
        let text = sent[4]["text"]["body"].as_str().unwrap();
        assert!(text.starts_with(&format!("scans.zip: {PUBLIC_URL}/media/")) && text.ends_with("/scans.zip"), "{text}");
        assert_eq!(sent.len(), 5);
    }
}

db_test! {
    async fn on_sms_the_files_are_links_after_the_text(db) {
        let app = desk_app(db, &[("REPLY_MODE", "connect"), ("PUBLIC_URL", PUBLIC_URL)]).await;
        Mock::given(method("POST"))
            .and(path("/v1/sms/messages"))
            .respond_with(ResponseTemplate::new(202).set_body_raw(fixture("connect-sms-send-accepted.json"), "application/json"))
            .mount(&app.connect)
            .await;
        assert_eq!(app.post_signed(&fixture("connect-sms-mo.json")).await.status(), 200);
        app.worker.run_once().await.unwrap();
        let file = webex_file(&app, "plan", "application/pdf", "plan.pdf", PDF).await;
        expert_sends(&app, "Your plan", &[file]).await;
        let sent = app.connect.received_requests().await.unwrap();
        let sms: Value = sent.last().unwrap().body_json().unwrap();
        let content = sms["content"].as_str().unwrap();
        let (text, link) = content.split_once("\n\nplan.pdf: ").unwrap();
        assert_eq!(text, "Your plan");
        assert!(link.starts_with(&format!("{PUBLIC_URL}/media/")) && link.ends_with("/plan.pdf"), "{content}");
    }
}

db_test! {
    async fn only_a_valid_unexpired_token_for_that_name_opens_a_file(db) {
        let app = desk_app(db, &[("REPLY_MODE", "connect"), ("PUBLIC_URL", PUBLIC_URL)]).await;
        open_conversation(&app).await;
        let files = [
            webex_file(&app, "plan", "application/pdf", "plan.pdf", PDF).await,
            webex_file(&app, "other", "application/pdf", "other.pdf", "other").await,
        ];
        expert_sends(&app, "", &files).await;
        let sent = whatsapp_after_the_link(&app).await;
        let plan = link_path(sent[0]["document"]["url"].as_str().unwrap());
        let other = link_path(sent[1]["document"]["url"].as_str().unwrap());
        let token = plan.split('/').nth(2).unwrap().to_string();
        let other_token = other.split('/').nth(2).unwrap().to_string();
        let (payload, signature) = token.split_once('.').unwrap();
        let get = |route: String| {
            let http = app.http.clone();
            let address = app.address.clone();
            async move { http.get(format!("{address}{route}")).send().await.unwrap() }
        };
        assert_eq!(get(plan.clone()).await.status(), 200);
        let nothing = json!({"error": "not_found", "message": "no such file"});
        for route in [
            format!("/media/{other_token}/plan.pdf"),
            format!("/media/{token}/other.pdf"),
            format!("/media/{payload}.{}/plan.pdf", &signature[1..]),
            format!("/media/{}x.{signature}/plan.pdf", payload),
            format!("/media/{token}/..%2F..%2Fpeople%2Fme"),
            format!("/media/{token}/%2E%2E"),
            "/media/x.y/plan.pdf".to_string(),
        ] {
            let response = get(route.clone()).await;
            assert_eq!(response.status(), 404, "{route}");
            // Nothing is said of why (a path that leaves /media/ matches no endpoint).
            let body = response.json::<Value>().await.unwrap();
            assert!(body == nothing || body["message"] == "no such endpoint", "{route}: {body}");
        }
        assert_eq!(get(format!("{plan}/more")).await.status(), 404);
        // An hour later the link has expired.
        app.clock.advance(Duration::from_secs(3600));
        let response = get(plan).await;
        assert_eq!(response.status(), 404);
        assert_eq!(response.json::<Value>().await.unwrap(), nothing);
        // Webex was asked for the file once: for the one valid request.
        let reads = app.webex.received_requests().await.unwrap().iter()
            .filter(|r| r.method.as_str() == "GET" && r.url.path().starts_with("/v1/contents/")).count();
        assert_eq!(reads, 1);
    }
}

db_test! {
    async fn without_a_public_url_the_bot_says_files_cannot_be_relayed(db) {
        let app = desk_app(db, &[("REPLY_MODE", "connect")]).await;
        open_conversation(&app).await;
        let file = webex_file(&app, "plan", "application/pdf", "plan.pdf", PDF).await;
        expert_sends(&app, "See the plan", &[file]).await;
        app.worker.run_once().await.unwrap();
        let sent = whatsapp_after_the_link(&app).await;
        assert_eq!(sent, vec![json!({"type": "text", "text": {"body": "See the plan"}, "preview_url": "true"})]);
        let notice = &bot_posts_after_notification(&app).await[0];
        assert!(notice["markdown"].as_str().unwrap().contains("ICB_PUBLIC_URL"), "{notice}");
        assert_eq!(notice["parentId"], thread_id());
    }
}

db_test! {
    async fn a_public_url_alone_is_a_valid_configuration(db) {
        let mut upstreams = Upstreams::start(db).await;
        upstreams.set("PUBLIC_URL", PUBLIC_URL);
        let app = upstreams.spawn().await;
        let response = app.http.get(format!("{}/console/login", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 503, "the console is simply not configured");
    }
}

/// The links to experts' files in `sent` (what Webex Connect was asked to send), by the
/// file name they end with.
fn media_links(sent: &[Value]) -> std::collections::HashMap<String, String> {
    let prefix = format!("{PUBLIC_URL}/media/");
    let text = serde_json::to_string(sent).unwrap();
    text.split(&prefix)
        .skip(1)
        .map(|rest| {
            let link: String = rest
                .chars()
                .take_while(|c| !matches!(c, '"' | ' ' | '\\'))
                .collect();
            let name = link.rsplit('/').next().unwrap().to_string();
            (name, format!("{prefix}{link}"))
        })
        .collect()
}

db_test! {
    async fn an_experts_html_or_svg_is_a_download_and_nothing_under_media_runs(db) {
        let app = desk_app(db, &[("REPLY_MODE", "connect"), ("PUBLIC_URL", PUBLIC_URL)]).await;
        open_conversation(&app).await;
        let script = "<script>fetch('/console/api/queue')</script>";
        let svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\">{script}</svg>");
        let files = [
            webex_file(&app, "h", "text/html", "page.html", &format!("<!doctype html>{script}")).await,
            webex_file(&app, "s", "image/svg+xml", "pic.svg", &svg).await,
            webex_file(&app, "p", "application/pdf", "plan.pdf", PDF).await,
            webex_file(&app, "j", "image/jpeg", "x-ray.jpg", "jpg").await,
        ];
        expert_sends(&app, "Four files", &files).await;
        let links = media_links(&whatsapp_after_the_link(&app).await);
        assert_eq!(links.len(), 4, "{links:?}");
        let sandboxed = |response: &reqwest::Response, what: &str| {
            let headers = response.headers();
            assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
            assert_eq!(headers["content-security-policy"], "sandbox; default-src 'none'", "{what}");
        };
        for (name, mime_type, disposition) in [
            ("page.html", "text/html", "attachment"),
            ("pic.svg", "image/svg+xml", "attachment"),
            ("plan.pdf", "application/pdf", "inline"),
            ("x-ray.jpg", "image/jpeg", "inline"),
        ] {
            let route = link_path(&links[name]);
            let response = app.http.get(format!("{}{route}", app.address)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{name}");
            assert_eq!(response.headers()["content-type"], mime_type, "{name}");
            assert_eq!(
                response.headers()["content-disposition"],
                format!("{disposition}; filename=\"{name}\""),
                "{name}"
            );
            sandboxed(&response, name);
        }
        // Every other answer under /media/ is sandboxed too.
        let page = link_path(&links["page.html"]);
        for (method, route, status) in [
            (reqwest::Method::GET, "/media/x.y/page.html".to_string(), 404),
            (reqwest::Method::GET, "/media/x".to_string(), 404),
            (reqwest::Method::GET, format!("{page}/more"), 404),
            (reqwest::Method::POST, page.clone(), 405),
        ] {
            let response = app.http.request(method.clone(), format!("{}{route}", app.address)).send().await.unwrap();
            assert_eq!(response.status(), status, "{method} {route}");
            sandboxed(&response, &route);
            assert!(response.json::<Value>().await.unwrap()["error"].is_string(), "{method} {route}");
        }
    }
}
