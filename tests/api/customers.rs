//! Customers' data on request: an export of everything held about a number, erasing it
//! (nothing of it left in the database file), and the audit log of who did what.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::opt_out::{customer_texts, expert_replies, sms_app_with};
use icbridge::desks::DeskConfig;

const NUMBER: &str = "+14155550123";

fn dermatology() -> DeskConfig {
    DeskConfig {
        name: "dermatology".into(),
        room_id: Some("room-dermatology".into()),
        ..DeskConfig::default()
    }
}

/// The customer writes by SMS (an expert answers, a receipt comes) and by WhatsApp with a
/// photo; someone else writes too. Returns the SMS conversation's id.
async fn a_customer_on_both_channels(app: &TestApp) -> String {
    let sms = customer_texts(app, "m-1", "Hello from the customer to erase").await;
    expert_replies(app, "e-1", "Your results are in").await;
    app.worker.run_once().await.unwrap();
    let reply_row = app.stored().newest_reply_id().await;
    let mut receipt = fixture_json("connect-delivery-receipt.json");
    receipt["deliveryInfoNotification"]["correlationid"] = json!(format!("icb-{reply_row}"));
    receipt["deliveryInfoNotification"]["deliveryInfo"]["destination"] = json!(NUMBER);
    assert_eq!(app.post_signed(&receipt.to_string()).await.status(), 200);
    // A receipt icbridge cannot match to a delivery, naming the number.
    receipt["deliveryInfoNotification"]["correlationid"] = json!("someone-else");
    receipt["deliveryInfoNotification"]["transid"] = json!("unknown-transid");
    assert_eq!(app.post_signed(&receipt.to_string()).await.status(), 200);
    app.clock.advance(std::time::Duration::from_secs(1));
    let mut photo = fixture_json("connect-whatsapp-mo-image.json");
    photo["waid"] = json!("14155550123");
    assert_eq!(app.post_signed(&photo.to_string()).await.status(), 200);
    let other = json!({"channel": "sms", "from": "+14155550199", "to": "56263", "text": "Someone else entirely", "messageId": "o-1"});
    assert_eq!(app.post_flow(&other.to_string()).await.status(), 200);
    app.worker.run_once().await.unwrap();
    sms["conversationId"].as_str().unwrap().to_string()
}

async fn export(app: &TestApp) -> Value {
    let response = admin(
        app,
        reqwest::Method::GET,
        &format!("/api/customers/{NUMBER}/export"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// How many rows of `table` mention the number (`column` as text).
async fn mentions(app: &TestApp, table: &str, column: &str) -> i64 {
    app.stored()
        .rows_mentioning(table, column, "4155550123")
        .await
}

db_test! {
    async fn export_gives_everything_about_a_number_and_erase_leaves_nothing_of_it(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        let sms_conversation = a_customer_on_both_channels(&app).await;

        // The receipt matched to no delivery is kept without its body, which named the
        // number: no erasure could have found it.
        assert_eq!(mentions(&app, "delivery_receipts", "payload").await, 1);

        let all = export(&app).await;
        assert_eq!(all["addresses"], json!([NUMBER, "14155550123"]));
        let conversations = all["conversations"].as_array().unwrap();
        assert_eq!(conversations.len(), 2, "not the other customer's");
        let sms = &conversations[0];
        assert_eq!((sms["id"].as_str(), sms["channel"].as_str(), sms["customer"].as_str()), (Some(sms_conversation.as_str()), Some("sms"), Some(NUMBER)));
        let texts: Vec<(&str, &str)> = sms["messages"].as_array().unwrap().iter()
            .map(|m| (m["author"].as_str().unwrap(), m["text"].as_str().unwrap()))
            .collect();
        assert_eq!(texts, [("customer", "Hello from the customer to erase"), ("expert", "Your results are in")]);
        assert_eq!(sms["meetings"].as_array().unwrap().len(), 1);
        let deliveries = sms["deliveries"].as_array().unwrap();
        let kinds: Vec<&str> = deliveries.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["expert_notification", "customer_reply", "customer_reply"]);
        assert_eq!(deliveries[2]["content"]["content"], "Your results are in");
        assert_eq!(deliveries[2]["receipts"][0]["code"], "7500");
        let whatsapp = &conversations[1];
        assert_eq!(whatsapp["channel"], "whatsapp");
        let photo = &whatsapp["messages"][0]["media"]["attachments"][0];
        assert_eq!(photo["mimeType"], "image/jpeg");
        assert!(photo["url"].as_str().unwrap().starts_with("https://"), "{photo}");
        // The command line prints the same.
        let vars: Vec<(&str, String)> = vec![("DATABASE_URL", app.database_url.clone())];
        let output = crate::cli::icbridge(&["customer", "export", NUMBER], &vars).await;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(printed["conversations"], all["conversations"]);

        let response = admin(&app, reqwest::Method::POST, &format!("/api/customers/{NUMBER}/erase")).await;
        assert_eq!(response.status(), 200);
        let erasure: Value = response.json().await.unwrap();
        assert_eq!(erasure, json!({"conversations": 2, "messages": 3, "deliveries": 6,
            "deliveriesCancelled": 0, "receipts": 1, "optOuts": 0}));

        // Nothing of the customer is left: only what counts.
        let after = export(&app).await;
        assert_eq!(after["conversations"], json!([]));
        assert_eq!(after["otherMessages"], json!([]));
        for (table, column) in [("conversations", "customer"), ("messages", "customer"), ("outbox", "payload"), ("delivery_receipts", "payload")] {
            assert_eq!(mentions(&app, table, column).await, 0, "{table}");
        }
        let texts = app.stored().messages().await.iter().filter(|m| !m.body.is_empty()).count();
        assert_eq!(texts, 1, "only the other customer's");
        assert_eq!(app.count("conversations").await, 3, "the counts stay");
        let states: Vec<String> = app.stored().conversations().await.into_iter()
            .filter(|c| c.customer == "erased")
            .map(|c| c.state)
            .collect();
        assert_eq!(states, ["closed", "closed"]);
        // The write-ahead log is emptied at the next checkpoint; here, at once (as
        // `icbridge customer erase` does). PostgreSQL keeps no such log.
        let emptied = app.bridge.empty_database_log().await;
        assert_eq!(emptied, (db == TestDb::Sqlite).then_some(true));
        if db == TestDb::Sqlite {
            // Not in the file's free space, not in the write-ahead log.
            let path = app.database_url.trim_start_matches("sqlite://").to_string();
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
            for erased in ["4155550123", "Hello from the customer to erase", "Your results are in", "media.example"] {
                assert!(!bytes.windows(erased.len()).any(|w| w == erased.as_bytes()), "{erased} is still in the file");
            }
            assert!(bytes.windows(21).any(|w| w == b"Someone else entirely"), "the scan reads the file");
        }
        let bad = admin(&app, reqwest::Method::POST, "/api/customers/not-a-number/erase").await;
        assert_eq!(bad.status(), 422);
        assert_eq!(bad.json::<Value>().await.unwrap()["error"], "invalid");
    }
}

db_test! {
    async fn every_admin_action_is_audited_with_who_did_it(db) {
        let app = sms_app_with(db, &[("ADMIN_NAME", "ops")], vec![dermatology()]).await;
        let conversation = a_customer_on_both_channels(&app).await;
        // An expert transfers; the admin API retries a row and closes; the command line
        // closes another; the admin API exports and erases.
        expert_replies(&app, "e-2", "transfer dermatology").await;
        let row = app.stored().outbox().await[0].id;
        // Made dead on purpose, for the admin API to retry.
        sqlx::query("UPDATE outbox SET state = 'dead' WHERE id = $1").bind(row).execute(&app.db).await.unwrap();
        assert_eq!(admin(&app, reqwest::Method::POST, &format!("/api/outbox/{row}/retry")).await.status(), 200);
        assert_eq!(admin(&app, reqwest::Method::POST, &format!("/api/conversations/{conversation}/close")).await.status(), 200);
        // Closing it again changes nothing, and writes no audit row.
        assert_eq!(admin(&app, reqwest::Method::POST, &format!("/api/conversations/{conversation}/close")).await.status(), 200);
        let conversations = app.stored().conversations().await;
        let other = conversations.iter().find(|c| c.customer == "+14155550199").unwrap().id.clone();
        let vars: Vec<(&str, String)> = vec![("DATABASE_URL", app.database_url.clone())];
        let closed = crate::cli::icbridge(&["conversations", "close", &other], &vars).await;
        assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
        export(&app).await;
        assert_eq!(admin(&app, reqwest::Method::POST, &format!("/api/customers/{NUMBER}/erase")).await.status(), 200);

        let audit: Value = admin(&app, reqwest::Method::GET, "/api/audit").await.json().await.unwrap();
        let rows: Vec<(String, String, String)> = audit["audit"].as_array().unwrap().iter().rev()
            .map(|r| (r["actor"].as_str().unwrap().to_string(), r["action"].as_str().unwrap().to_string(), r["subject"].as_str().unwrap().to_string()))
            .collect();
        let cli_actor = rows[3].0.clone();
        assert!(cli_actor.starts_with("cli:"), "{cli_actor}");
        assert_eq!(
            rows,
            [
                ("expert:expert@example.com".to_string(), "transfer".to_string(), format!("conversation {conversation}")),
                ("admin:ops".into(), "retry".into(), format!("delivery {row}")),
                ("admin:ops".into(), "close".into(), format!("conversation {conversation}")),
                (cli_actor, "close".into(), format!("conversation {other}")),
                ("admin:ops".into(), "export".into(), "+1415•••0123".into()),
                ("admin:ops".into(), "erase".into(), "+1415•••0123".into()),
            ]
        );
        let erase = &audit["audit"][0];
        assert!(erase["detail"].as_str().unwrap().contains("\"conversations\":2"), "{erase}");
        // The command line lists the same.
        let listed = crate::cli::icbridge(&["audit", "list"], &vars).await;
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(listed.lines().nth(1).unwrap().contains("admin:ops") && listed.contains("erase"), "{listed}");
        assert!(!listed.contains("14155550123") && !listed.contains(NUMBER), "{listed}");
    }
}

/// Two customers whose messages to one business number carry the same message id (a flow
/// that maps an id that is not unique), both in closed conversations.
async fn two_customers_with_the_same_message_ids(app: &TestApp) {
    for customer in ["+14155550101", "+14155550102"] {
        let body = json!({"channel": "sms", "from": customer, "to": "56263", "text": "hi", "messageId": "1"});
        assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
    }
    // Closed long ago, on purpose: as an old release could have left them.
    sqlx::query("UPDATE conversations SET state = 'closed', closed_at = 1")
        .execute(&app.db)
        .await
        .unwrap();
}

db_test! {
    async fn customers_whose_messages_had_the_same_ids_can_all_be_erased(db) {
        let app = admin_and_console_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        two_customers_with_the_same_message_ids(&app).await;
        for customer in ["+14155550101", "+14155550102"] {
            let erased = admin(&app, reqwest::Method::POST, &format!("/api/customers/{customer}/erase")).await;
            assert_eq!(erased.status(), 200, "{customer}");
            assert_eq!(erased.json::<Value>().await.unwrap()["messages"], 1);
        }
        assert_eq!(app.stored().messages().await.iter().filter(|m| m.customer == "erased" && m.external_id.is_none()).count(), 2);
    }
}

db_test! {
    async fn retention_anonymises_customers_whose_messages_had_the_same_ids(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        two_customers_with_the_same_message_ids(&app).await;
        let purged = crate::cli::icbridge(
            &["purge"],
            &[("DATABASE_URL", app.database_url.clone()), ("RETENTION", "1day".into())],
        )
        .await;
        assert!(purged.status.success(), "{}", String::from_utf8_lossy(&purged.stderr));
        assert!(String::from_utf8_lossy(&purged.stdout).contains("2 conversations anonymised"));
        assert_eq!(app.stored().messages().await.iter().filter(|m| m.customer == "erased" && m.external_id.is_none()).count(), 2);
    }
}

db_test! {
    async fn an_invitation_to_the_number_from_another_customers_conversation_is_exported_and_erased(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        crate::guests::mount_one_more_guest(&app).await;
        // Someone else's conversation invites the number as a guest.
        let other = json!({"channel": "sms", "from": "+14155550199", "to": "56263", "text": "Can my son join?", "messageId": "o-1"});
        assert_eq!(app.post_flow(&other.to_string()).await.status(), 200);
        app.worker.run_once().await.unwrap();
        expert_replies(&app, "e-1", "add guest +1 415 555 0123").await;
        app.worker.run_once().await.unwrap();

        let all = export(&app).await;
        let invitations: Vec<&Value> = all["otherDeliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["content"]["to"] == NUMBER)
            .collect();
        assert_eq!(invitations.len(), 1, "{all}");

        assert_eq!(admin(&app, reqwest::Method::POST, &format!("/api/customers/{NUMBER}/erase")).await.status(), 200);
        assert_eq!(mentions(&app, "outbox", "payload").await, 0);
        assert_eq!(mentions(&app, "outbox", "recipient").await, 0);
        // The other customer's own conversation is theirs still.
        assert_eq!(app.stored().conversations().await.iter().filter(|c| c.customer == "+14155550199").count(), 1);
    }
}

db_test! {
    async fn what_still_waited_to_be_sent_is_cancelled_by_an_erasure_and_never_sent(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        a_customer_on_both_channels(&app).await;
        // A follow-up whose relay to the experts has not gone yet (the worker has not run).
        let body = json!({"channel": "sms", "from": NUMBER, "to": "56263", "text": "One more thing", "messageId": "m-2"});
        assert_eq!(app.post_flow(&body.to_string()).await.status(), 200);
        let waiting: Vec<i64> = app.stored().outbox_in_state("pending").await.iter().map(|row| row.id).collect();
        assert!(!waiting.is_empty(), "the relay waits");
        let (connect_before, webex_before) = (app.connect.received_requests().await.unwrap().len(), app.webex_posts().await.len());

        let response = admin(&app, reqwest::Method::POST, &format!("/api/customers/{NUMBER}/erase")).await;
        assert_eq!(response.status(), 200);
        let erasure: Value = response.json().await.unwrap();
        // What the first test counts, with the follow-up and its waiting deliveries: each
        // counted once, though a conversation's sent deliveries are erased in a write of
        // their own before the one that cancels what waits.
        assert_eq!(erasure, json!({"conversations": 2, "messages": 4, "deliveries": 6 + waiting.len(),
            "deliveriesCancelled": waiting.len(), "receipts": 1, "optOuts": 0}));
        for row in app.stored().outbox().await.iter().filter(|row| waiting.contains(&row.id)) {
            assert_eq!((row.state.as_str(), row.payload.as_str(), row.recipient.as_deref()), ("cancelled", "{}", None));
        }
        app.clock.advance(std::time::Duration::from_secs(3600));
        app.worker.run_once().await.unwrap();
        assert_eq!(app.connect.received_requests().await.unwrap().len(), connect_before, "nothing sent to the customer");
        assert_eq!(app.webex_posts().await.len(), webex_before, "nothing sent to the experts");
        assert_eq!(mentions(&app, "outbox", "payload").await, 0);
    }
}

db_test! {
    async fn an_erasure_that_fails_after_its_conversations_is_finished_by_running_it_again(db) {
        let app = sms_app_with(db, &[], Vec::new()).await;
        a_customer_on_both_channels(&app).await;
        // The database refuses to take the number off the conversations (the erasure's last
        // write), after the writes of each conversation's contents went through: an erasure
        // that stops half-way, as one whose process dies there.
        let (break_it, repair) = match db {
            TestDb::Sqlite => (
                vec!["CREATE TRIGGER refuse_erasure BEFORE UPDATE ON conversations
                      WHEN NEW.customer = 'erased'
                      BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"],
                "DROP TRIGGER refuse_erasure",
            ),
            TestDb::Postgres => (
                vec![
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'refused for the test'; END $$ LANGUAGE plpgsql",
                    "CREATE TRIGGER refuse_erasure BEFORE UPDATE ON conversations \
                     FOR EACH ROW WHEN (NEW.customer = 'erased') EXECUTE FUNCTION refuse()",
                ],
                "DROP TRIGGER refuse_erasure ON conversations",
            ),
        };
        for statement in break_it {
            sqlx::query(statement).execute(&app.db).await.unwrap();
        }
        let erase = format!("/api/customers/{NUMBER}/erase");
        let failed = admin(&app, reqwest::Method::POST, &erase).await;
        assert_eq!(failed.status(), 500);
        // Half-way: the texts are gone, the number is still on the conversations, and no
        // erasure is audited (none was done).
        let texts = app.stored().messages().await.iter().filter(|m| !m.body.is_empty()).count();
        assert_eq!(texts, 1, "only the other customer's");
        assert_eq!(mentions(&app, "conversations", "customer").await, 2);
        assert_eq!(app.stored().audited(&["erase"]).await.len(), 0);

        sqlx::query(repair).execute(&app.db).await.unwrap();
        let response = admin(&app, reqwest::Method::POST, &erase).await;
        assert_eq!(response.status(), 200);
        let erasure: Value = response.json().await.unwrap();
        // What this run changed: the contents were erased by the first (each counted by the
        // run that erased it, never twice); the conversations by this one.
        assert_eq!(erasure, json!({"conversations": 2, "messages": 0, "deliveries": 0,
            "deliveriesCancelled": 0, "receipts": 0, "optOuts": 0}));
        for (table, column) in [("conversations", "customer"), ("messages", "customer"), ("outbox", "payload"), ("delivery_receipts", "payload")] {
            assert_eq!(mentions(&app, table, column).await, 0, "{table}");
        }
        assert_eq!(export(&app).await["conversations"], json!([]));
        assert_eq!(app.stored().audited(&["erase"]).await.len(), 1);
    }
}
