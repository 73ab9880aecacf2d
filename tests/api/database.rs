//! The database under pressure: a write that fails does so alone, and a database that does
//! not answer in time is a `503` to retry, well before Webex Connect gives up (10 s).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

fn first_message(customer: &str) -> String {
    json!({"channel": "sms", "from": customer, "to": "56263", "text": "hello", "messageId": customer})
        .to_string()
}

db_test! {
    async fn a_failing_write_fails_alone(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        // The database refuses one customer's message.
        let refuse: &[&str] = match db {
            TestDb::Sqlite => &["CREATE TRIGGER refuse_one BEFORE INSERT ON messages
                 WHEN NEW.customer = '+14155550666'
                 BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"],
            TestDb::Postgres => &[
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN
                     IF NEW.customer = '+14155550666' THEN RAISE EXCEPTION 'refused for the test'; END IF;
                     RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_one BEFORE INSERT ON messages
                 FOR EACH ROW EXECUTE FUNCTION refuse_one()",
            ],
        };
        for statement in refuse {
            sqlx::query(statement).execute(&app.db).await.unwrap();
        }
        let customers: Vec<String> = (600..620).map(|n| format!("+14155550{n}")).chain(["+14155550666".to_string()]).collect();
        let bodies: Vec<String> = customers.iter().map(|c| first_message(c)).collect();
        let statuses: Vec<u16> = join_all(bodies.iter().map(|body| async {
            app.post_flow(body).await.status().as_u16()
        }))
        .await;
        assert_eq!(&statuses[..20], &[200; 20], "every other request is answered");
        assert_eq!(statuses[20], 500);
        assert_eq!(app.count("messages").await, 20);
        assert_eq!(app.count("conversations").await, 20);
    }
}

db_test! {
    async fn a_busy_database_is_a_503_to_retry_in_time(db) {
        let app = spawn_app(db).await;
        mount_broker(&app.broker, "ic-joseencrypt-short.json").await;
        // Another process holds the database (SQLite) or the messages table (PostgreSQL).
        let mut holder = app.db.acquire().await.unwrap();
        let hold: &[&str] = match db {
            TestDb::Sqlite => &["BEGIN IMMEDIATE"],
            TestDb::Postgres => &["BEGIN", "LOCK TABLE messages IN EXCLUSIVE MODE"],
        };
        for statement in hold {
            sqlx::query(statement).execute(&mut *holder).await.unwrap();
        }
        let body = first_message("+14155550123");
        let started = Instant::now();
        let refused = app.post_flow(&body).await;
        assert!(started.elapsed() < Duration::from_secs(6), "answered in {:?}", started.elapsed());
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.headers()["retry-after"], "1");
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["error"], "database_busy");
        // The other process is done: the retry goes through.
        sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
        drop(holder);
        let answered = app.post_flow(&body).await;
        assert_eq!(answered.status(), 200);
        assert_eq!(app.stored().counts().await, (1, 1, 1, 1));
    }
}
