//! The real binary killed and stopped: nothing acknowledged is lost.

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stored::Stored;

db_test! {
    async fn a_notification_survives_sigkill_and_is_delivered_once_after_restart(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("RETRY_SCHEDULE", "50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms");
    // A send cut off by the kill is sent again once its lease runs out: a short one here.
    upstreams.set("OUTBOX_LEASE", "1s");
    mount_broker(&upstreams.broker, "ic-joseencrypt-short.json").await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&upstreams.webex)
        .await;

    let mut first = spawn_binary(&upstreams.vars).await;
    let body = fixture("connect-sms-mo.json");
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/webhooks/connect", first.address))
        .header("X-Hub-Signature", sign_sha256(body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();

    // Webex is down; the worker keeps trying.
    let webex = &upstreams.webex;
    assert!(
        eventually(10, || async {
            webex.received_requests().await.unwrap().len() >= 2
        })
        .await
    );
    first.signal("-KILL");
    first.wait().await;

    // Webex recovers; a new process on the same database delivers what was pending.
    webex.reset().await;
    mount_webex_messages(webex).await;
    let mut second = spawn_binary(&upstreams.vars).await;
    let db = open_db(&upstreams.vars["DATABASE_URL"]).await;
    let stored = Stored::in_db(&db);
    // A send cut off mid-flight waits for its lease (1 s here) to run out.
    let delivered = eventually(20, || async {
        stored.the_outbox_row().await.state == "sent"
    })
    .await;
    assert!(delivered, "{}", second.logs.lock().unwrap());
    // Once the second process has stopped, nothing more can reach Webex: count then.
    second.signal("-TERM");
    assert!(second.wait().await.success(), "{}", second.logs.lock().unwrap());
    // The new process also tries its token (`GET /people/me`) on start-up.
    let posts: Vec<_> = webex
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/v1/messages")
        .collect();
    assert_eq!(posts.len(), 1, "delivered exactly once after recovery");
    let markdown: Value = posts[0].body_json().unwrap();
    assert!(markdown["markdown"]
        .as_str()
        .unwrap()
        .contains("+1415•••0123"));

    // The acknowledged message and its meeting are all there.
    let (messages, _, meetings, _) = stored.counts().await;
    assert_eq!((messages, meetings), (1, 1));
    assert_eq!(answer["guestUrl"], stored.the_meeting().await.guest_url);
}
}

db_test! {
    async fn sigterm_lets_the_request_in_flight_finish_and_exits_0(db) {
    let upstreams = Upstreams::start(db).await;
    mount_slow_broker(&upstreams.broker, 1500).await;
    mount_webex_messages(&upstreams.webex).await;
    let mut app = spawn_binary(&upstreams.vars).await;
    let url = format!("{}/webhooks/connect", app.address);
    let body = fixture("connect-sms-mo.json");
    let signature = sign_sha256(body.as_bytes());
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("X-Hub-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    });
    // Wait until the request reached the broker, then ask icbridge to stop.
    let broker = &upstreams.broker;
    assert!(
        eventually(10, || async {
            !broker.received_requests().await.unwrap().is_empty()
        })
        .await
    );
    app.signal("-TERM");
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the request in flight is answered"
    );
    let status = app.wait().await;
    assert!(status.success(), "exit status {status:?}");
    if db == TestDb::Sqlite {
        // The database is whole in its file: no write-ahead log is left beside it.
        let path = upstreams.vars["DATABASE_URL"].trim_start_matches("sqlite://");
        let path = path.split('?').next().unwrap();
        let log = std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len());
        assert_eq!(log, 0, "the log is emptied at the stop");
    }
    // New connections are refused once it stopped.
    let after = reqwest::Client::new()
        .get(format!("{}/healthz", app.address))
        .send()
        .await;
    assert!(after.is_err());
}
}
