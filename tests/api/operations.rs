//! What operators rely on: metrics, the admin API and its CLI verbs, the OpenAPI document,
//! readiness, request logs and retention.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::cli::icbridge;
use crate::helpers::*;

async fn admin_app(db: TestDb) -> TestApp {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("ADMIN_TOKEN", ADMIN_TOKEN);
    let app = upstreams.spawn().await;
    mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
    app
}

/// The value of the sample `name{labels…}` in a Prometheus text page.
fn sample(page: &str, name: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            let (metric, _) = line.split_once(' ').unwrap();
            let (metric_name, rest) = metric.split_once('{').unwrap_or((metric, ""));
            metric_name == name && labels.iter().all(|label| rest.contains(label))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{page}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

db_test! {
    async fn metrics_count_a_known_sequence(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(fixture("webex-message-created-response.json"), "application/json"))
            .up_to_n_times(1)
            .mount(&app.webex)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "not in the room"})))
            .mount(&app.webex)
            .await;

        let sms = fixture("connect-sms-mo.json");
        assert_eq!(app.post_signed(&sms).await.status(), 200); // opens a meeting
        assert_eq!(app.post_signed(&sms).await.status(), 200); // repeat: answered
        let follow_up = r#"{"channel":"sms","from":"+14155550123","to":"56263","text":"hi again","messageId":"m-9"}"#;
        assert_eq!(app.post_flow(follow_up).await.status(), 200); // answered, relayed
        assert_eq!(app.post_flow(r#"{"hello":1}"#).await.status(), 422);
        assert_eq!(app.post_with_signature(&sms, "00").await.status(), 401);
        assert_eq!(app.post_signed(&fixture("connect-delivery-receipt.json")).await.status(), 200);
        app.worker.run_once().await.unwrap(); // notification sent, relay refused for good

        let page = app.metrics_page().await;
        assert_eq!(sample(&page, "icbridge_intake_total", &["channel=\"sms\"", "outcome=\"answered\""]), 3.0);
        assert_eq!(sample(&page, "icbridge_intake_total", &["channel=\"unknown\"", "outcome=\"invalid\""]), 1.0);
        assert_eq!(sample(&page, "icbridge_intake_total", &["channel=\"unknown\"", "outcome=\"unauthorized\""]), 1.0);
        assert_eq!(sample(&page, "icbridge_intake_total", &["channel=\"whatsapp\"", "outcome=\"receipt\""]), 1.0);
        assert_eq!(sample(&page, "icbridge_meetings_created_total", &[]), 1.0);
        assert_eq!(
            sample(&page, "icbridge_upstream_request_duration_seconds_count", &["upstream=\"instant_connect\"", "status=\"2xx\""]),
            1.0
        );
        assert_eq!(sample(&page, "icbridge_upstream_request_duration_seconds_count", &["upstream=\"webex\"", "status=\"2xx\""]), 1.0);
        assert_eq!(sample(&page, "icbridge_upstream_request_duration_seconds_count", &["upstream=\"webex\"", "status=\"4xx\""]), 1.0);
        assert_eq!(sample(&page, "icbridge_outbox_sent_total", &[]), 1.0);
        assert_eq!(sample(&page, "icbridge_outbox_rows", &["state=\"dead\""]), 1.0);
        assert_eq!(sample(&page, "icbridge_outbox_rows", &["state=\"pending\""]), 0.0);
        assert_eq!(sample(&page, "icbridge_outbox_dead_letters_total", &[]), 1.0);
    }
}

db_test! {
    async fn the_admin_api_needs_its_token_and_is_off_without_one(db) {
        let app = spawn_app(db).await;
        let off = app.http.get(format!("{}/api/conversations", app.address)).send().await.unwrap();
        assert_eq!(off.status(), 404);
        assert_eq!(off.json::<Value>().await.unwrap()["error"], "admin_api_off");

        let app = admin_app(db).await;
        let routes = [
            (reqwest::Method::GET, "/api/conversations"),
            (reqwest::Method::GET, "/api/conversations/x"),
            (reqwest::Method::POST, "/api/conversations/x/close"),
            (reqwest::Method::GET, "/api/outbox"),
            (reqwest::Method::POST, "/api/outbox/1/retry"),
        ];
        for (verb, route) in routes {
            let missing = app.http.request(verb.clone(), format!("{}{route}", app.address)).send().await.unwrap();
            assert_eq!(missing.status(), 401, "{route}");
            let wrong = app
                .http
                .request(verb.clone(), format!("{}{route}", app.address))
                .bearer_auth("guess")
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status(), 401, "{route}");
            assert_ne!(admin(&app, verb, route).await.status(), 401, "{route}");
        }
    }
}

db_test! {
    async fn the_admin_api_shows_closes_and_retries(db) {
        let app = admin_app(db).await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "bad room"})))
            .up_to_n_times(1)
            .mount(&app.webex)
            .await;
        mount_webex_messages(&app.webex).await;
        let answer: Value = app.post_signed(&fixture("connect-whatsapp-mo.json")).await.json().await.unwrap();
        let id = answer["conversationId"].as_str().unwrap();
        app.worker.run_once().await.unwrap(); // the notification dies

        let list: Value = admin(&app, reqwest::Method::GET, "/api/conversations?state=open").await.json().await.unwrap();
        assert_eq!(list["conversations"][0]["id"], id);
        assert_eq!(list["conversations"][0]["customer"], "+1415•••0142");
        let detail: Value = admin(&app, reqwest::Method::GET, &format!("/api/conversations/{id}")).await.json().await.unwrap();
        assert_eq!(detail["meetings"][0]["guestUrl"], SHORT_GUEST_URL);
        assert_eq!(detail["transcript"][0]["author"], "customer");
        assert_eq!(detail["transcript"][0]["text"], "Hello, can I get a video call with an advisor?");
        assert_eq!(admin(&app, reqwest::Method::GET, "/api/conversations/nope").await.status(), 404);

        let dead: Value = admin(&app, reqwest::Method::GET, "/api/outbox?state=dead").await.json().await.unwrap();
        let row = &dead["outbox"][0];
        assert_eq!(row["kind"], "expert_notification");
        assert!(row["lastError"].as_str().unwrap().contains("bad room"));
        assert!(row.get("payload").is_none(), "payloads hold texts: not shown");
        let retried = admin(&app, reqwest::Method::POST, &format!("/api/outbox/{}/retry", row["id"])).await;
        assert_eq!(retried.status(), 200);
        app.worker.run_once().await.unwrap();
        let sent: Value = admin(&app, reqwest::Method::GET, "/api/outbox?state=sent").await.json().await.unwrap();
        assert_eq!(sent["outbox"][0]["id"], row["id"]);
        assert_eq!(admin(&app, reqwest::Method::POST, "/api/outbox/999/retry").await.status(), 404);
        assert_eq!(admin(&app, reqwest::Method::GET, "/api/outbox?state=lost").await.status(), 422);

        let closed: Value = admin(&app, reqwest::Method::POST, &format!("/api/conversations/{id}/close")).await.json().await.unwrap();
        assert_eq!(closed, json!({"status": "closed"}));
        let again: Value = admin(&app, reqwest::Method::POST, &format!("/api/conversations/{id}/close")).await.json().await.unwrap();
        assert_eq!(again, json!({"status": "already_closed"}));
        let open: Value = admin(&app, reqwest::Method::GET, "/api/conversations?state=open").await.json().await.unwrap();
        assert_eq!(open["conversations"], json!([]));
    }
}

db_test! {
    async fn the_cli_verbs_match_the_admin_api(db) {
        let app = admin_app(db).await;
        let answer: Value = app.post_signed(&fixture("connect-sms-mo.json")).await.json().await.unwrap();
        let id = answer["conversationId"].as_str().unwrap().to_string();
        let db_url = [("DATABASE_URL", app.database_url.clone())];
        let listed = icbridge(&["conversations", "list"], &db_url).await;
        let text = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(text.contains(&id) && text.contains("+1415•••0123") && !text.contains("14155550123"), "{text}");
        let shown = icbridge(&["conversations", "show", &id], &db_url).await;
        let detail: Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(detail["transcript"][0]["text"], "Hi, I need to talk to someone about my prescription");
        let mut with_experts = db_url.to_vec();
        with_experts.push(("EXPERT_ROOM_ID", EXPERT_ROOM.to_string()));
        with_experts.push(("WEBEX_TOKEN", "bot".to_string()));
        let closed = icbridge(&["conversations", "close", &id], &with_experts).await;
        assert_eq!(String::from_utf8_lossy(&closed.stdout).trim(), "closed");
        let notice = app.stored().newest_outbox_row().await.kind;
        assert_eq!(notice, "expert_notice", "the thread is told");
        assert_eq!(app.stored().the_conversation().await.state, "closed");
    }
}

db_test! {
    async fn every_operation_in_the_openapi_document_exists_and_answers_as_documented(db) {
        let app = admin_app(db).await;
        let document = app.openapi().await;
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().unwrap();
        assert!(paths.len() >= 15);
        let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        for (route, operations) in paths {
            let concrete = route.replace("{id}", "1").replace("{action}", "close").replace("{number}", "+14155550100");
            for (verb, operation) in operations.as_object().unwrap() {
                let method: reqwest::Method = verb.to_uppercase().parse().unwrap();
                let response = no_redirects
                    .request(method, format!("{}{concrete}", app.address))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16().to_string();
                let documented = operation["responses"].as_object().unwrap();
                assert!(documented.contains_key(&status), "{verb} {route} answered {status}, documented: {:?}", documented.keys());
                if status == "404" {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    assert_ne!(body["message"], "no such endpoint", "{verb} {route} does not exist");
                }
            }
        }
    }
}

db_test! {
    async fn readyz_follows_the_database(db) {
        let app = spawn_app(db).await;
        let ready = app.http.get(format!("{}/readyz", app.address)).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        if db == TestDb::Postgres {
            // The database goes away under the running service.
            let name = url::Url::parse(&app.database_url).unwrap().path().trim_start_matches('/').to_string();
            let admin_pool = open_db(&std::env::var("ICB_TEST_POSTGRES_URL").unwrap()).await;
            // Dropped on purpose, from under the running service.
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin_pool).await.unwrap();
            let down = app.http.get(format!("{}/readyz", app.address)).send().await.unwrap();
            assert_eq!(down.status(), 503);
            assert_eq!(down.json::<Value>().await.unwrap()["error"], "database_unavailable");
            let healthy = app.http.get(format!("{}/healthz", app.address)).send().await.unwrap();
            assert_eq!(healthy.status(), 200, "the process itself is up");
        }
    }
}

db_test! {
    async fn each_request_is_logged_as_json_with_a_request_id_and_nothing_personal(db) {
        let mut upstreams = Upstreams::start(db).await;
        upstreams.set("LOG_FORMAT", "json");
        mount_broker(&upstreams.broker, "ic-joseencrypt-short.json").await;
        let running = spawn_binary(&upstreams.vars).await;
        let body = fixture("connect-whatsapp-mo.json");
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/connect", running.address))
            .header("X-Hub-Signature", sign_sha256(body.as_bytes()))
            .header("X-Request-Id", "proxy-id-123")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-request-id"], "proxy-id-123");
        let generated = reqwest::Client::new().get(format!("{}/healthz", running.address)).send().await.unwrap();
        assert_eq!(generated.headers()["x-request-id"].len(), 32);

        let logged = eventually(5, || async { running.logs.lock().unwrap().contains("\"path\":\"/healthz\"") }).await;
        let logs = running.logs.lock().unwrap().clone();
        assert!(logged, "{logs}");
        let line: Value = logs
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["fields"]["path"] == "/webhooks/connect")
            .expect("a log line for the request");
        assert_eq!(line["fields"]["method"], "POST");
        assert_eq!(line["fields"]["status"], 200);
        assert!(line["fields"]["duration_ms"].as_f64().is_some());
        assert_eq!(line["span"]["request_id"], "proxy-id-123");
        assert!(!logs.contains("14155550142"), "no full numbers");
        assert!(!logs.contains("video call with an advisor"), "no message texts");
    }
}

db_test! {
    async fn the_request_log_names_routes_not_the_numbers_codes_or_tokens_in_paths(db) {
        let mut upstreams = Upstreams::start(db).await;
        upstreams
            .set("LOG_FORMAT", "json")
            .set("ADMIN_TOKEN", ADMIN_TOKEN)
            .set("PUBLIC_URL", "https://bridge.example.com");
        let running = spawn_binary(&upstreams.vars).await;
        let http = reqwest::Client::new();
        let number = "12344945956";
        let requests = [
            (reqwest::Method::GET, format!("/api/customers/+{number}/export"), false, 401),
            (reqwest::Method::GET, format!("/api/customers/%2B{number}/export"), true, 200),
            (reqwest::Method::POST, format!("/api/customers/+{number}/erase"), false, 401),
            (reqwest::Method::GET, format!("/api/customers/+{number}/nothing-here"), false, 404),
            (reqwest::Method::GET, "/j/CodeOfAMeetingLink0042".to_string(), false, 404),
            (reqwest::Method::GET, "/media/TokenOfAFile.0042/plan.pdf".to_string(), false, 404),
        ];
        for (method, route, with_token, status) in &requests {
            let mut request = http.request(method.clone(), format!("{}{route}", running.address));
            if *with_token {
                request = request.bearer_auth(ADMIN_TOKEN);
            }
            assert_eq!(request.send().await.unwrap().status(), *status, "{method} {route}");
        }
        let logged = |logs: &str| {
            logs.lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|line| line["fields"]["message"] == "request")
                .map(|line| {
                    let fields = &line["fields"];
                    (fields["path"].as_str().unwrap().to_string(), fields["status"].as_u64().unwrap())
                })
                .collect::<Vec<_>>()
        };
        let all_logged = eventually(5, || async { logged(&running.logs.lock().unwrap()).len() == requests.len() }).await;
        let logs = running.logs.lock().unwrap().clone();
        assert!(all_logged, "{logs}");
        assert_eq!(
            logged(&logs),
            [
                ("/api/customers/{number}/export".to_string(), 401),
                ("/api/customers/{number}/export".to_string(), 200),
                ("/api/customers/{number}/erase".to_string(), 401),
                ("/api/customers/+1234•••5956/nothing-here".to_string(), 404),
                ("/j/{code}".to_string(), 404),
                ("/media/{token}/{name}".to_string(), 404),
            ]
        );
        for secret in [&number[1..], "CodeOfAMeetingLink", "TokenOfAFile", "plan.pdf"] {
            assert!(!logs.contains(secret), "{secret} in the logs: {logs}");
        }
    }
}

db_test! {
    async fn purge_erases_exactly_what_is_past_retention(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        let old: Value = app.post_signed(&fixture("connect-sms-mo.json")).await.json().await.unwrap();
        app.clock.advance(std::time::Duration::from_secs(1));
        let recent: Value = app.post_signed(&fixture("connect-whatsapp-mo.json")).await.json().await.unwrap();
        let two_days_ago = (time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 86_400) * 1000;
        // The SMS conversation is two days old and closed a day and a half ago (rows aged on
        // purpose, as are the receipts below).
        sqlx::query("UPDATE messages SET received_at = $1 WHERE conversation_id = $2")
            .bind(two_days_ago)
            .bind(old["conversationId"].as_str())
            .execute(&app.db)
            .await
            .unwrap();
        sqlx::query("UPDATE conversations SET state = 'closed', closed_at = $1 WHERE id = $2")
            .bind(two_days_ago + 12 * 3_600_000)
            .bind(old["conversationId"].as_str())
            .execute(&app.db)
            .await
            .unwrap();
        sqlx::query("UPDATE delivery_receipts SET received_at = $1")
            .bind(two_days_ago)
            .execute(&app.db)
            .await
            .unwrap();
        app.post_signed(&fixture("connect-delivery-receipt.json")).await;
        sqlx::query(
            "UPDATE delivery_receipts SET received_at = $1
             WHERE id = (SELECT MIN(id) FROM delivery_receipts)",
        )
        .bind(two_days_ago)
        .execute(&app.db)
        .await
        .unwrap();
        app.post_signed(&fixture("connect-delivery-receipt.json")).await;

        let output = icbridge(&["purge"], &[("DATABASE_URL", app.database_url.clone()), ("RETENTION", "1day".into())]).await;
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(printed.contains("1 message texts erased, 1 conversations anonymised, 1 receipts"), "{printed}");

        let rows: Vec<(String, String, String)> = app.stored().messages().await.into_iter()
            .map(|m| (m.conversation_id.unwrap(), m.customer, m.body))
            .collect();
        assert_eq!(rows[0], (old["conversationId"].as_str().unwrap().to_string(), "erased".to_string(), String::new()));
        assert_eq!(rows[1].1, "14155550142", "the recent conversation is untouched");
        assert_eq!(rows[1].2, "Hello, can I get a video call with an advisor?");
        let customers: Vec<(String, String, Option<String>)> = app.stored().conversations().await.into_iter()
            .map(|c| (c.id, c.customer, c.customer_name))
            .collect();
        assert_eq!(customers[0].1, "erased");
        assert_eq!(customers[1], (recent["conversationId"].as_str().unwrap().to_string(), "14155550142".to_string(), Some("Alice Example".to_string())));
        assert_eq!(app.count("delivery_receipts").await, 1, "the recent receipt stays");

        // Running it again changes nothing.
        let again = icbridge(&["purge"], &[("DATABASE_URL", app.database_url.clone()), ("RETENTION", "1day".into())]).await;
        assert!(String::from_utf8_lossy(&again.stdout).contains("0 message texts erased, 0 conversations anonymised, 0 receipts"));
    }
}

db_test! {
    async fn purge_clears_a_busy_day_a_slice_at_a_time_until_none_is_left(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        // Today's message, which stays.
        assert_eq!(app.post_signed(&fixture("connect-sms-mo.json")).await.status(), 200);
        // A busy day two days ago: 1,234 messages and receipts, and 25 conversations
        // closed, more than one slice of each (written here directly: as many webhooks
        // would take the test a minute). The messages are those conversations'.
        let two_days_ago = (time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 86_400) * 1000;
        const BUSY_DAY: i64 = 1_234;
        const CLOSED: i64 = 25;
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $1 - 1)
             INSERT INTO conversations (id, channel, customer, business, customer_name, state,
                                        created_at, closed_at, closed_by)
             SELECT 'old-' || CAST(i AS TEXT), 'sms', '+14155550123', 'biz', 'Ana', 'closed',
                    $2, $2 + i, 'expert@example.com'
             FROM n",
        )
        .bind(CLOSED)
        .bind(two_days_ago)
        .execute(&app.db)
        .await
        .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
             INSERT INTO messages (channel, customer, business, external_id, body, received_at,
                                   conversation_id)
             SELECT 'sms', '+14155550123', 'biz', 'old-' || CAST(i AS TEXT), 'an old text', $2 + i,
                    'old-' || CAST(i % $3 AS TEXT)
             FROM n",
        )
        .bind(BUSY_DAY)
        .bind(two_days_ago)
        .bind(CLOSED)
        .execute(&app.db)
        .await
        .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
             INSERT INTO delivery_receipts (code, status, channel, payload, received_at)
             SELECT '7500', 'delivered', 'sms', '{}', $2 + i FROM n",
        )
        .bind(BUSY_DAY)
        .bind(two_days_ago)
        .execute(&app.db)
        .await
        .unwrap();

        let output = icbridge(&["purge"], &[("DATABASE_URL", app.database_url.clone()), ("RETENTION", "1day".into())]).await;
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(printed.contains(&format!("{BUSY_DAY} message texts erased, {CLOSED} conversations anonymised, {BUSY_DAY} receipts")), "{printed}");
        let texts: Vec<String> = app.stored().messages().await.into_iter().map(|m| m.body).collect();
        assert_eq!(texts.len() as i64, BUSY_DAY + 1);
        assert_eq!(texts.iter().filter(|text| text.is_empty()).count() as i64, BUSY_DAY, "every old text, none of today's");
        assert_eq!(app.count("delivery_receipts").await, 0);
        let numbers_left: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM conversations WHERE id LIKE 'old-%' AND customer != 'erased'),
                    (SELECT COUNT(*) FROM messages WHERE conversation_id LIKE 'old-%' AND customer != 'erased')",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(numbers_left, (0, 0), "every closed conversation and its messages anonymised");
    }
}
