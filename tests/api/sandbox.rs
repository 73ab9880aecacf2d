//! `icbridge serve --sandbox`, run as a newcomer would: the printed curl, a guest link,
//! both sent messages, and a clean stop.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::{eventually, eventually_found};

/// A running `serve --sandbox`, as its banner describes it.
struct Sandbox {
    child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`
    base: String,
    url: String,
    token: String,
    sample: String,
    logs: tokio::task::JoinHandle<String>,
    /// Kept open: the process writes to it.
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    _dir: tempfile::TempDir,
}

async fn start_sandbox() -> Sandbox {
    start_sandbox_with(None).await
}

/// The sandbox, with `desks.toml` holding `config` when given (`--config desks.toml`).
async fn start_sandbox_with(config: Option<&str>) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["serve", "--sandbox"];
    if let Some(config) = config {
        std::fs::write(dir.path().join("desks.toml"), config).unwrap();
        args.extend(["--config", "desks.toml"]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_icbridge"))
        .args(args)
        .env_clear()
        .env("ICB_LISTEN", "127.0.0.1:0")
        .env(
            "ICB_DATABASE_URL",
            format!("sqlite://{}/sandbox.db", dir.path().display()),
        )
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.unwrap();
        text
    });

    // The banner: a curl with the address, the token and a sample body.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("/sandbox/messages");
            banner.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .expect("the sandbox prints its banner");
    let banner = banner.join("\n");
    let url = banner
        .split_whitespace()
        .find(|word| word.ends_with("/webhooks/connect"))
        .expect("the curl names the endpoint")
        .to_string();
    let base = url.trim_end_matches("/webhooks/connect").to_string();
    let token = banner
        .split("Bearer ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    let sample = banner
        .split("-d '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    Sandbox {
        child,
        base,
        url,
        token,
        sample,
        logs,
        _stdout: lines,
        _dir: dir,
    }
}

impl Sandbox {
    /// Posts a customer's message as the printed curl does; its answer.
    async fn message(&self, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

#[tokio::test]
async fn the_sandbox_runs_the_whole_flow_without_credentials() {
    let Sandbox {
        mut child,
        base,
        url,
        token,
        sample,
        logs,
        _stdout,
        _dir,
    } = start_sandbox().await;

    let http = reqwest::Client::new();
    // The stand-ins answer HEAD wherever they answer GET, like the rest of icbridge.
    for route in ["/sandbox/messages", "/sandbox/webex/v1/rooms"] {
        let head = http
            .head(format!("{base}{route}"))
            .bearer_auth("x")
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {route}");
    }
    let response = http
        .post(&url)
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(sample.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    // The sandbox hands out icbridge's own links (its ICB_PUBLIC_URL is its address),
    // leading to the stand-in broker's meeting page.
    let own_link = answer["guestUrl"].as_str().unwrap().to_string();
    assert!(own_link.starts_with(&format!("{base}/j/")), "{own_link}");
    assert_eq!(answer["created"], true);

    // The worker sends the expert notification and the customer reply to the stand-ins.
    let sent = sent_messages(&base, 2).await;
    let to_experts = sent
        .iter()
        .find(|m| m["via"] == "webex")
        .expect("an expert notification");
    let to_customer = sent
        .iter()
        .find(|m| m["via"] == "whatsapp")
        .expect("a customer reply");
    assert!(to_experts["text"]
        .as_str()
        .unwrap()
        .contains("Join as host"));
    assert!(!to_experts["text"].as_str().unwrap().contains(&own_link));
    assert_eq!(to_customer["to"], "14155550142");
    assert_eq!(to_customer["text"], answer["reply"]);

    // The customer opens the link: on to the meeting; the experts' thread is told.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = no_redirects.get(&own_link).send().await.unwrap();
    assert_eq!(redirect.status(), 302);
    let guest_url = redirect.headers()["location"].to_str().unwrap().to_string();
    assert!(
        guest_url.starts_with(&format!("{base}/sandbox/visit/")),
        "{guest_url}"
    );
    assert!(!to_experts["text"].as_str().unwrap().contains(&guest_url));
    let opened = &sent_messages(&base, 3).await[2];
    assert!(
        opened["text"]
            .as_str()
            .unwrap()
            .starts_with("👀 The customer opened the link at "),
        "{opened}"
    );

    // Both links open a page.
    let page = http.get(&guest_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("guest"));

    // The Webex stand-in answers the API, not a meeting page.
    let rooms: Value = http
        .get(format!("{base}/sandbox/webex/v1/rooms"))
        .bearer_auth("any")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rooms["items"][0]["id"], "sandbox-experts-room");

    // The expert console signs in through the OAuth stand-in.
    let cookie = console_cookie(&base).await;
    let console = no_redirects
        .get(format!("{base}/console"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 200);
    assert!(console.text().await.unwrap().contains("Sandbox Expert"));

    // SIGTERM stops it cleanly.
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("stops within the grace period")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");

    // Nothing personal in the logs.
    let logs = logs.await.unwrap();
    assert!(
        logs.contains("+1415•••0142"),
        "masked numbers are logged: {logs}"
    );
    assert!(!logs.contains("14155550142"), "full number in logs: {logs}");
    assert!(
        !logs.contains("video call with an advisor"),
        "message text in logs: {logs}"
    );
}

/// Waits until the worker has recorded `count` deliveries as sent. Before the sandbox's
/// clock jumps hours ahead it must: a jump in the middle of a send ends the send's lease,
/// and the delivery would (rightly) go again.
async fn delivered_and_recorded(base: &str, count: usize) {
    let http = reqwest::Client::new();
    let line = format!("icbridge_outbox_sent_total {count}\n");
    let recorded = eventually(5, || async {
        let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
        metrics.text().await.unwrap().contains(&line)
    });
    assert!(
        recorded.await,
        "{count} deliveries were not recorded as sent"
    );
}

/// An expert answers in a conversation's thread (`POST /sandbox/expert-reply`); the answer.
/// The thread is known once the notification's send is recorded, a moment after the sandbox's
/// Webex got it: until then the sandbox answers 409 `no_thread` ("try again in a moment"),
/// and this tries again, as its answer says.
async fn expert_says(base: &str, body: Value) -> Value {
    let http = reqwest::Client::new();
    let answered = eventually_found(10, || async {
        let response = http
            .post(format!("{base}/sandbox/expert-reply"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        if status == 409 && answer["error"] == "no_thread" {
            return None;
        }
        assert_eq!(status, 202, "{answer}");
        Some(answer)
    });
    answered.await.expect("the conversation's thread is known")
}

/// Moves the sandbox's clock ahead by `advance` (`48h`, `5m`).
async fn move_clock(base: &str, advance: &str) {
    let moved = reqwest::Client::new()
        .post(format!("{base}/sandbox/clock"))
        .json(&serde_json::json!({ "advance": advance }))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
}

/// What the stand-ins received so far, once there are at least `count`.
async fn sent_messages(base: &str, count: usize) -> Vec<Value> {
    let enough = eventually_found(10, || async {
        let sent = listing(base).await;
        (sent.len() >= count).then_some(sent)
    });
    // On time out, what was sent, for the failure to show.
    let sent = match enough.await {
        Some(sent) => sent,
        None => listing(base).await,
    };
    assert_eq!(sent.len(), count, "{sent:#?}");
    sent
}

/// Signs in to the console through the OAuth stand-in; the session cookie.
async fn console_cookie(base: &str) -> String {
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirects
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let authorize = login.headers()["location"].to_str().unwrap().to_string();
    // The login's cookie, which the browser sends back with the callback.
    let login_cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(
        authorize.starts_with(&format!("{base}/sandbox/webex/v1/authorize?")),
        "{authorize}"
    );
    let approved = no_redirects.get(&authorize).send().await.unwrap();
    let callback = approved.headers()["location"].to_str().unwrap().to_string();
    assert!(
        callback.starts_with(&format!("{base}/console/callback?code=")),
        "{callback}"
    );
    let signed_in = no_redirects
        .get(&callback)
        .header("Cookie", login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// What the stand-ins received so far.
async fn listing(base: &str) -> Vec<Value> {
    let listing: Value = reqwest::Client::new()
        .get(format!("{base}/sandbox/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listing["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_sandbox_shows_photos_files_and_the_whatsapp_window() {
    let sandbox = start_sandbox().await;
    let (base, http) = (sandbox.base.clone(), reqwest::Client::new());
    let post = |body: Value| sandbox.message(body);
    // A photo without caption: a picture in the experts' thread.
    let photo = "https://media.example.com/wa/photo.jpg";
    let answer = post(
        serde_json::json!({"channel": "whatsapp", "from": "14155550142",
        "to": "a_155054536910425280", "text": "", "name": "Alice Example",
        "attachments": [{"url": photo, "mimeType": "image/jpeg"}]}),
    )
    .await;
    let conversation = answer["conversationId"].as_str().unwrap().to_string();
    let sent = sent_messages(&base, 3).await;
    assert!(sent[0]["text"].as_str().unwrap().contains("_(photo)_"));
    assert_eq!(sent[2]["request"]["files"], serde_json::json!([photo]));

    // An expert's PDF reaches the customer as a WhatsApp document, fetched from icbridge.
    let expert_reply = |body: Value| expert_says(&base, body);
    expert_reply(
        serde_json::json!({"conversationId": conversation, "text": "Your care plan", "file": true}),
    )
    .await;
    let sent = sent_messages(&base, 4).await;
    delivered_and_recorded(&base, 4).await;
    let document = &sent[3]["request"]["channels"]["OTT-Messaging"]["wa"]["document"];
    assert_eq!(document["caption"], "Your care plan");
    let file = http
        .get(document["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert!(file.bytes().await.unwrap().starts_with(b"%PDF"));

    // Two days later a reply goes through the approved template; the text follows once
    // the customer answers.
    move_clock(&base, "48h").await;
    expert_reply(serde_json::json!({"conversationId": conversation, "text": "Can we talk?"})).await;
    let sent = sent_messages(&base, 6).await;
    let template = sent
        .iter()
        .find(|m| m["request"]["message"]["template"] == "sandbox_followup");
    assert!(template.is_some(), "{sent:#?}");
    post(
        serde_json::json!({"channel": "whatsapp", "from": "14155550142",
        "to": "a_155054536910425280", "text": "Yes", "messageId": "again"}),
    )
    .await;
    let sent = sent_messages(&base, 9).await;
    assert!(
        sent.iter()
            .any(|m| m["via"] == "whatsapp" && m["text"] == "Can we talk?"),
        "{sent:#?}"
    );
}

#[tokio::test]
async fn the_sandbox_routes_by_keyword_and_keeps_an_out_of_hours_customer_until_the_desk_opens() {
    // Dermatology opens tomorrow from 10:00 to 12:00 (UTC) and at no other time this week:
    // closed now, whenever the test runs.
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let day = tomorrow.weekday().to_string()[..3].to_lowercase();
    let config = format!(
        "[[desk]]\nname = \"dermatology\"\nroom_id = \"room-dermatology\"\nkeywords = [\"skin\", \"rash\"]\n\
         timezone = \"UTC\"\nhours = [\"{day} 10:00-12:00\"]\n"
    );
    let sandbox = start_sandbox_with(Some(&config)).await;
    let (base, http) = (sandbox.base.clone(), reqwest::Client::new());
    let answer = sandbox
        .message(
            serde_json::json!({"channel": "sms", "from": "+14155550100", "to": "56263",
            "text": "I have a rash on my arm", "name": "Bo"}),
        )
        .await;
    assert_eq!(answer["open"], false, "{answer}");
    assert!(answer.get("guestUrl").is_none(), "{answer}");
    let expected = format!(
        "Thank you for your message. We are closed now and open again {} 10:00 (UTC); we will send you a link to a video consultation then.",
        tomorrow.format(time::macros::format_description!("[weekday repr:short] [day padding:none] [month repr:short]")).unwrap()
    );
    assert_eq!(answer["reply"], expected);
    // The customer is told; the experts see nothing until the desk opens.
    let sent = sent_messages(&base, 1).await;
    assert_eq!(sent[0]["via"], "sms");
    delivered_and_recorded(&base, 1).await;

    let opened: Value = http
        .post(format!("{base}/sandbox/clock"))
        .json(&serde_json::json!({"until_opening": "dermatology"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(opened["handedOver"], 1, "{opened}");
    let sent = sent_messages(&base, 2).await;
    assert_eq!(sent[1]["via"], "webex");
    assert_eq!(sent[1]["request"]["roomId"], "room-dermatology");
    let card = sent[1]["text"].as_str().unwrap();
    assert!(
        card.contains("> I have a rash on my arm") && card.contains("waiting since"),
        "{card}"
    );
}

/// Books a consultation for Bo (SMS, `+14155550100`) two hours from now, 30 minutes long,
/// with the sandbox's admin token; the admin API's answer.
async fn book_in_two_hours(base: &str, http: &reqwest::Client) -> reqwest::Response {
    let starts_at = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let starts_at = starts_at
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    http.post(format!("{base}/api/appointments"))
        .bearer_auth("sandbox-admin-token")
        .json(&serde_json::json!({
            "channel": "sms", "customer": "+14155550100", "to": "56263", "name": "Bo",
            "startsAt": starts_at, "durationMinutes": 30
        }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sandbox_books_a_consultation_reminds_at_its_time_and_adds_a_guest() {
    let sandbox = start_sandbox().await;
    let (base, http) = (sandbox.base.clone(), reqwest::Client::new());
    let booked = book_in_two_hours(&base, &http).await;
    assert_eq!(booked.status(), 201);
    let appointment: Value = booked.json().await.unwrap();
    // The invitation at once; nothing for the experts yet.
    let sent = sent_messages(&base, 1).await;
    assert_eq!(sent[0]["via"], "sms");
    assert!(
        sent[0]["text"].as_str().unwrap().contains("is booked for"),
        "{sent:?}"
    );
    delivered_and_recorded(&base, 1).await;

    // 14 minutes before the start: the reminder and the experts' card.
    move_clock(&base, "106m").await;
    let sent = sent_messages(&base, 3).await;
    let vias: Vec<&str> = sent.iter().map(|m| m["via"].as_str().unwrap()).collect();
    assert!(
        vias[1..].contains(&"sms") && vias[1..].contains(&"webex"),
        "{sent:?}"
    );
    assert!(
        sent.iter().any(|m| m["text"]
            .as_str()
            .unwrap()
            .starts_with("**Booked consultation**")),
        "{sent:?}"
    );
    delivered_and_recorded(&base, 3).await;

    // `add guest` in the thread: a second guest link of the same meeting.
    expert_says(
        &base,
        serde_json::json!({"conversationId": appointment["conversationId"], "text": "add guest"}),
    )
    .await;
    let sent = sent_messages(&base, 4).await;
    let added = sent[3]["text"].as_str().unwrap();
    assert!(added.contains("added a guest"), "{added}");
    let link = added.split("](").nth(1).unwrap().split(')').next().unwrap();
    assert_ne!(link, appointment["guestUrl"].as_str().unwrap());
    // 14 minutes before the start the links do not work yet; 9 minutes before, they do.
    let page = http.get(link).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Your consultation has not started yet"),
        "{page}"
    );
    delivered_and_recorded(&base, 4).await;
    move_clock(&base, "5m").await;
    let page = http.get(link).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<strong>guest</strong> link"), "{page}");
}

/// What the stand-ins received so far, once one of the messages matches `wanted`.
async fn sent_until(base: &str, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let found = eventually_found(10, || async {
        let sent = listing(base).await;
        sent.iter().any(&wanted).then_some(sent)
    });
    match found.await {
        Some(sent) => sent,
        None => panic!("not sent: {:#?}", listing(base).await),
    }
}

#[tokio::test]
async fn the_sandbox_asks_for_a_rating_when_a_conversation_is_closed() {
    let sandbox = start_sandbox().await;
    let base = sandbox.base.clone();
    let mut message: Value = serde_json::from_str(&sandbox.sample).unwrap();
    let answer = sandbox.message(message.clone()).await;
    let conversation_id = answer["conversationId"].as_str().unwrap().to_string();
    sent_messages(&base, 2).await;

    // The expert closes the conversation in its thread: the customer gets the question.
    let http = reqwest::Client::new();
    expert_says(
        &base,
        serde_json::json!({"conversationId": conversation_id, "text": "close"}),
    )
    .await;
    let sent = sent_until(&base, |m| {
        m["via"] == "whatsapp" && m["text"].as_str().unwrap().ends_with("[Good | OK | Poor]")
    })
    .await;
    let question = sent
        .iter()
        .find(|m| m["text"].as_str().unwrap().ends_with("[Good | OK | Poor]"))
        .unwrap();
    assert_eq!(
        question["request"]["channels"]["OTT-Messaging"]["wa"]["type"],
        "reply"
    );

    // A reply of 5 is thanked, posted in the thread and shown in the console.
    for (key, value) in [("message", "5"), ("tid", "sandbox-rating-1")] {
        for name in [
            key,
            if key == "message" {
                "text"
            } else {
                "messageId"
            },
        ] {
            if message.get(name).is_some() {
                message[name] = serde_json::json!(value);
            }
        }
    }
    let rated = sandbox.message(message).await;
    assert_eq!(rated["reply"], "Thank you for your rating!");
    assert_eq!(rated["conversationId"], serde_json::json!(conversation_id));
    sent_until(&base, |m| {
        m["text"] == "The customer rated the consultation 5/5."
    })
    .await;

    let cookie = console_cookie(&base).await;
    let queue: Value = http
        .get(format!("{base}/console/api/queue"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        queue["ratings"][0]["conversationId"],
        serde_json::json!(conversation_id)
    );
    assert_eq!(queue["ratings"][0]["rating"], 5);
}

#[tokio::test]
async fn the_sandbox_mends_a_disabled_webhook_and_catches_up_on_what_it_lost() {
    let sandbox = start_sandbox().await;
    let base = sandbox.base.clone();
    let message: Value = serde_json::from_str(&sandbox.sample).unwrap();
    let answer = sandbox.message(message).await;
    let conversation_id = answer["conversationId"].as_str().unwrap().to_string();
    sent_messages(&base, 2).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();

    // Webex disables the messages webhook: what the expert writes meanwhile brings no event.
    let disabled: Value = post(
        "/sandbox/disable-webhook",
        serde_json::json!({"resource": "messages"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(disabled["status"], "inactive");
    let reply = expert_says(
        &base,
        serde_json::json!({"conversationId": conversation_id, "text": "I am here"}),
    )
    .await;
    assert_eq!(reply["status"], "lost");

    // icbridge's check (every minute; here at once) re-activates it and catches up.
    let checked: Value = post("/sandbox/check-webhooks", serde_json::json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        checked["webhooks"][0],
        serde_json::json!({"resource": "messages", "state": "re-activated (it was disabled)"})
    );
    let sent = sent_until(&base, |m| {
        m["via"] == "whatsapp" && m["text"] == "I am here"
    })
    .await;
    let relays = sent.iter().filter(|m| m["text"] == "I am here").count();
    assert_eq!(relays, 1);
}

/// Sends `request`; its answer, checked for `status` and the security headers every HTML
/// answer carries (`what` names it in a failure).
async fn secure_page(
    request: reqwest::RequestBuilder,
    status: u16,
    what: &str,
) -> reqwest::Response {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), status, "{what}");
    crate::helpers::assert_secure_html(&response, what);
    response
}

#[tokio::test]
async fn every_html_answer_carries_the_security_headers() {
    let sandbox = start_sandbox().await;
    let base = sandbox.base.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = sandbox
        .message(serde_json::from_str(&sandbox.sample).unwrap())
        .await;
    let own_link = answer["guestUrl"].as_str().unwrap().to_string();

    // A link's previews, and the sandbox's meeting pages it leads to.
    let whatsapp = http
        .get(&own_link)
        .header("User-Agent", "WhatsApp/2.23.20.0 A");
    secure_page(whatsapp, 200, "/j/ preview").await;
    secure_page(http.head(&own_link), 200, "/j/ preview (HEAD)").await;
    let redirect = http.get(&own_link).send().await.unwrap();
    assert_eq!(redirect.status(), 302);
    let meeting = redirect.headers()["location"].to_str().unwrap().to_string();
    for (url, status) in [
        (meeting, 200),
        (format!("{base}/sandbox/visit/unknown"), 404),
        (
            format!("{base}/sandbox/gen/v1/talk?int=jose&v=1&data=x"),
            200,
        ),
    ] {
        secure_page(http.get(&url), status, &url).await;
    }

    // A booked consultation's link before it works.
    let booked: Value = book_in_two_hours(&base, &http).await.json().await.unwrap();
    let not_yet = http.get(booked["guestUrl"].as_str().unwrap());
    secure_page(not_yet, 200, "/j/ not yet").await;

    // The console: its page, a sign-in problem, a refused sign-out, the signed-out page.
    let cookie = console_cookie(&base).await;
    let logout = format!("{base}/console/logout");
    for (request, status, what) in [
        (
            http.get(format!("{base}/console"))
                .header("Cookie", &cookie),
            200,
            "/console",
        ),
        (
            http.get(format!("{base}/console/callback?code=x&state=never-issued")),
            400,
            "/console/callback problem",
        ),
        (
            http.post(&logout)
                .header("Cookie", &cookie)
                .form(&[("csrf", "forged")]),
            403,
            "/console/logout refused",
        ),
        (
            http.post(&logout).form(&[("csrf", "")]),
            200,
            "/console/logout",
        ),
    ] {
        secure_page(request, status, what).await;
    }

    // The expert closes the conversation: its link shows the ended page.
    expert_says(
        &base,
        serde_json::json!({"conversationId": answer["conversationId"], "text": "close"}),
    )
    .await;
    let ended = eventually(5, || async {
        http.get(&own_link).send().await.unwrap().status() == 410
    });
    assert!(ended.await, "the link ends");
    secure_page(http.get(&own_link), 410, "/j/ ended").await;

    // Unknown codes, then the refusal past the limit.
    let code = own_link.rsplit_once("/j/").unwrap().1;
    let unknown_link = own_link.replace(code, "0000000000000000000000");
    for _ in 0..20 {
        secure_page(http.get(&unknown_link), 404, "/j/ unknown").await;
    }
    secure_page(http.get(&own_link), 429, "/j/ refused").await;
}

/// What the sandbox's own event receiver got, once it has at least `count` events.
async fn received_events(base: &str, count: usize) -> Vec<Value> {
    let all = || async {
        let listing: Value = reqwest::get(format!("{base}/sandbox/messages"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listing["events"].as_array().unwrap().clone()
    };
    let enough = eventually_found(10, || async {
        let events = all().await;
        (events.len() >= count).then_some(events)
    });
    match enough.await {
        Some(events) => events,
        None => all().await,
    }
}

#[tokio::test]
async fn the_sandbox_receives_its_events_signed_and_without_personal_data() {
    let sandbox = start_sandbox().await;
    let answer = sandbox
        .message(serde_json::from_str(&sandbox.sample).unwrap())
        .await;
    let events = received_events(&sandbox.base, 3).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["body"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types[..3],
        ["conversation.opened", "message.received", "meeting.created"],
        "{events:#?}"
    );
    for event in &events {
        assert_eq!(event["verified"], true, "{event}");
        assert_eq!(
            event["body"]["data"]["conversation_id"],
            answer["conversationId"]
        );
        let text = event.to_string();
        assert!(!text.contains("14155550142"), "a full number: {text}");
        assert!(
            !text.contains("video call with an advisor"),
            "a text: {text}"
        );
    }
}

#[tokio::test]
async fn a_subscription_that_is_sent_personal_data_says_so_at_start_up() {
    let secret = "whsec_c2FuZGJveC1ldmVudHMtc2VjcmV0LWZvci10ZXN0cw==";
    let config = format!(
        "[[event_subscription]]\nname = \"emr\"\nurl = \"http://127.0.0.1:9/hooks\"\n\
         secret = \"{secret}\"\ninclude = {{ texts = true, customer_number = true }}\n"
    );
    let sandbox = start_sandbox_with(Some(&config)).await;
    let pid = sandbox.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let logs = sandbox.logs.await.unwrap();
    let warning = logs
        .lines()
        .find(|line| line.contains("this subscription is sent personal data"))
        .unwrap_or_else(|| panic!("no warning: {logs}"));
    assert!(
        warning.contains("emr") && warning.contains("texts,customer_number"),
        "{warning}"
    );
    assert!(!logs.contains(&secret[6..]), "the secret is logged: {logs}");
}
