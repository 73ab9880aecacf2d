//! The expert console in a real browser (Debian's headless Chromium, driven by
//! playwright-core): sign in through the Webex stand-in, see a conversation in the queue,
//! close it, and check what the Space Widget was started with. Saves a screenshot at
//! `target/screenshots/console.png`.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (`.ci/run` installs both).
//! Without them the test is reported as ignored (decided by `build.rs` when the tests are
//! built), unless `ICB_TEST_BROWSER=required`, as in CI, where a missing piece fails it.

use std::path::PathBuf;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::console::{mount_expert_login, user_token, CLIENT_ID};
use crate::helpers::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A stand-in of the Space Widget that records how the page starts it.
const WIDGET_JS: &str = r#"
window.webex = {
  widget: function (element) {
    return {
      spaceWidget: function (options) {
        (window.__widgetInits = window.__widgetInits || []).push({
          accessToken: options.accessToken,
          destinationId: options.destinationId,
          destinationType: options.destinationType,
          initialActivity: options.initialActivity
        });
        element.textContent = 'Space Widget stand-in: ' + options.destinationType + ' ' + options.destinationId;
        return this;
      },
      remove: function () { window.__widgetRemoved = (window.__widgetRemoved || 0) + 1; }
    };
  }
};
"#;

/// Webex's login page, approving at once.
struct ApproveLogin;

impl Respond for ApproveLogin {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let params: std::collections::HashMap<String, String> =
            request.url.query_pairs().into_owned().collect();
        assert_eq!(params["client_id"], CLIENT_ID);
        let mut back = url::Url::parse(&params["redirect_uri"]).unwrap();
        back.query_pairs_mut()
            .append_pair("code", "browser-code")
            .append_pair("state", &params["state"]);
        ResponseTemplate::new(302).insert_header("Location", back.as_str())
    }
}

#[tokio::test]
#[cfg_attr(
    not(icb_browser),
    ignore = "browser: needs /usr/bin/chromium (Debian chromium) and `npm ci --prefix tests/browser`; .ci/run installs both"
)]
async fn an_expert_signs_in_sees_the_queue_takes_and_closes_a_conversation() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = manifest.join("tests/browser");
    assert!(
        std::path::Path::new(CHROMIUM).exists()
            && browser_dir.join("node_modules/playwright-core").exists(),
        "{CHROMIUM} or tests/browser/node_modules is missing (ICB_TEST_BROWSER=required)"
    );

    // The console's public URL is its own address: pick a free port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let widget = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/space/bundle.js"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(WIDGET_JS, "text/javascript"))
        .mount(&widget)
        .await;
    Mock::given(method("GET"))
        .and(path("/space/main.css"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("#widget { outline: 1px dashed #aaa; }", "text/css"),
        )
        .mount(&widget)
        .await;

    let mut upstreams = Upstreams::start(TestDb::Sqlite).await;
    upstreams
        .set("LISTEN", &format!("127.0.0.1:{port}"))
        .set("PUBLIC_URL", &base)
        .set("OAUTH_CLIENT_ID", CLIENT_ID)
        .set("OAUTH_CLIENT_SECRET", "browser-test-secret")
        .set("WIDGET_BASE_URL", &format!("{}/space", widget.uri()));
    Mock::given(method("GET"))
        .and(path("/v1/authorize"))
        .respond_with(ApproveLogin)
        .mount(&upstreams.webex)
        .await;
    mount_expert_login(&upstreams.webex).await;
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    let answer: Value = app
        .post_signed(&fixture("connect-whatsapp-mo.json"))
        .await
        .json()
        .await
        .unwrap();
    let conversation_id = answer["conversationId"].as_str().unwrap().to_string();

    let screenshot = manifest.join("target/screenshots/console.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let output = tokio::process::Command::new("node")
        .arg("console.mjs")
        .current_dir(&browser_dir)
        .env("BASE", &base)
        .env("CONVERSATION_ID", &conversation_id)
        .env("SCREENSHOT", &screenshot)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();

    assert_eq!(seen["url"], format!("{base}/console"));
    assert_eq!(
        seen["shown"],
        json!({
            "channel": "WhatsApp",
            "customer": "+1415•••0142",
            "lastMessage": "Hello, can I get a video call with an advisor?",
            "join": seen["shown"]["join"],
        })
    );
    // The host link is icbridge's own (ICB_PUBLIC_URL is the console's address).
    assert!(
        seen["shown"]["join"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/j/")),
        "{seen}"
    );
    assert_eq!(
        seen["widgetInits"],
        json!([{
            "accessToken": user_token(),
            "destinationId": EXPERT_ROOM,
            "destinationType": "spaceId",
            "initialActivity": "message",
        }])
    );
    // The meeting's links with their roles, then what was said.
    assert_eq!(
        seen["transcript"],
        json!([
            ["meeting-link", "Host link"],
            ["meeting-link", "Guest link"],
            ["customer", "Hello, can I get a video call with an advisor?"]
        ])
    );
    assert_eq!(seen["desk"], "default");
    assert_eq!(seen["taken"], "taken by expert@example.com");
    assert_eq!(seen["takeLeft"], 0, "Take gives way to Release");
    assert_eq!(seen["status"], "No open conversations.");
    assert_eq!(
        seen["problems"],
        json!([]),
        "no script errors or CSP violations"
    );
    let conversation = app.stored().the_conversation().await;
    assert_eq!(
        (
            conversation.state.as_str(),
            conversation.closed_by.as_deref()
        ),
        ("closed", Some("expert@example.com"))
    );
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 1000,
        "a screenshot was saved"
    );
    eprintln!("console screenshot: {}", screenshot.display());
}
