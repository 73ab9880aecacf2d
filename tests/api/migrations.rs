//! Upgrades: what an earlier version stored reads the same after the later migrations.

use sqlx::migrate::MigrateDatabase;

use crate::helpers::*;

/// Runs the migrations older than `version` on the database at `url`, as the version of
/// icbridge before that migration would have.
async fn migrate_before(db: TestDb, url: &str, version: i64) {
    let dialect = match db {
        TestDb::Sqlite => "sqlite",
        TestDb::Postgres => "postgres",
    };
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let older = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let this_version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if this_version < version {
            std::fs::copy(&path, older.path().join(name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(older.path()).await.unwrap();
    sqlx::any::install_default_drivers();
    if !sqlx::Any::database_exists(url).await.unwrap() {
        sqlx::Any::create_database(url).await.unwrap();
    }
    let pool = open_db(url).await;
    migrator.run(&pool).await.unwrap();
    pool.close().await;
}

db_test! {
    async fn messages_stored_before_the_chains_are_in_their_transcripts(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("ADMIN_TOKEN", ADMIN_TOKEN);
    let url = upstreams.database.url.clone();
    migrate_before(db, &url, 20261121000008).await;
    // Two conversations whose messages arrived interleaved, and a message never answered.
    let pool = open_db(&url).await;
    let far_future = 4_102_444_800_000_i64; // 2100
    for statement in [
        "INSERT INTO conversations (id, channel, customer, business, created_at)
         VALUES ('conv-a', 'sms', '+14155550123', '56263', 1), ('conv-b', 'sms', '+14155550199', '56263', 2)",
        &format!("INSERT INTO meetings (id, conversation_id, sub, host_url, guest_url, expires_at, created_at)
         VALUES ('meet-a', 'conv-a', 'sub-a', 'https://h/a', 'https://g/a', {far_future}, 1)"),
        "INSERT INTO messages (channel, customer, business, body, received_at, conversation_id)
         VALUES ('sms', '+14155550123', '56263', 'a1', 1, 'conv-a'),
                ('sms', '+14155550199', '56263', 'b1', 2, 'conv-b'),
                ('sms', '+14155550123', '56263', 'a2', 3, 'conv-a'),
                ('sms', '+14155550177', '56263', 'never answered', 4, NULL),
                ('sms', '+14155550199', '56263', 'b2', 5, 'conv-b'),
                ('sms', '+14155550123', '56263', 'a3', 6, 'conv-a')",
    ] {
        // An older version's rows, as it wrote them.
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;

    // The new version migrates on start.
    let app = upstreams.spawn().await;
    assert_eq!(app.transcript("conv-a").await, ["a1", "a2", "a3"]);
    assert_eq!(app.transcript("conv-b").await, ["b1", "b2"]);
    // A follow-up continues the conversation's chain.
    let follow_up = serde_json::json!({"channel": "sms", "from": "+14155550123", "to": "56263",
                                       "text": "a4", "messageId": "after-upgrade"});
    assert_eq!(app.post_flow(&follow_up.to_string()).await.status(), 200);
    assert_eq!(app.transcript("conv-a").await, ["a1", "a2", "a3", "a4"]);
    assert_eq!(app.transcript("conv-b").await, ["b1", "b2"]);
}
}

db_test! {
    async fn a_database_of_the_chain_schema_upgrades_in_place(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("ADMIN_TOKEN", ADMIN_TOKEN);
    let url = upstreams.database.url.clone();
    // Everything up to migration 8: messages chained, the conversation naming its last.
    migrate_before(db, &url, 20261130000009).await;
    let pool = open_db(&url).await;
    let far_future = 4_102_444_800_000_i64; // 2100
    let old_thread_message = serde_json::json!({
        "type": "thread_message",
        "destination": {"roomId": EXPERT_ROOM},
        "markdown": "**Customer:**\n\n> queued before the upgrade",
    });
    for statement in [
        "INSERT INTO conversations (id, channel, customer, business, created_at, thread_message_id)
         VALUES ('conv-a', 'sms', '+14155550123', '56263', 1, 'thread-a')".to_string(),
        format!("INSERT INTO meetings (id, conversation_id, sub, host_url, guest_url, expires_at, created_at)
         VALUES ('meet-a', 'conv-a', 'sub-a', 'https://h/a', 'https://g/a', {far_future}, 1)"),
        "INSERT INTO messages (channel, customer, business, external_id, body, received_at,
                               conversation_id, meeting_id)
         VALUES ('sms', '+14155550123', '56263', 'x-1', 'a1', 1, 'conv-a', 'meet-a')".to_string(),
        "INSERT INTO messages (channel, customer, business, external_id, body, received_at,
                               conversation_id, meeting_id, previous_message_id)
         SELECT 'sms', '+14155550123', '56263', 'x-2', 'a2', 2, 'conv-a', 'meet-a', id
         FROM messages WHERE external_id = 'x-1'".to_string(),
        "UPDATE conversations SET last_message_id = (SELECT id FROM messages WHERE external_id = 'x-2')
         WHERE id = 'conv-a'".to_string(),
        format!("INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at)
         VALUES ('expert_notice', 'conv-a', '{old_thread_message}', 1, 1)"),
    ] {
        // An older version's rows, as it wrote them.
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    pool.close().await;

    // The new version migrates on start; nothing stored is lost.
    let app = upstreams.spawn().await;
    mount_webex_messages(&app.webex).await;
    assert_eq!(app.transcript("conv-a").await, ["a1", "a2"]);
    // The same message id from the same customer is still a repeat...
    let repeat = serde_json::json!({"channel": "sms", "from": "+14155550123", "to": "56263",
                                    "text": "a2", "messageId": "x-2"});
    assert_eq!(app.post_flow(&repeat.to_string()).await.status(), 200);
    assert_eq!(app.count("messages").await, 2);
    // ...and a follow-up joins the conversation, in order.
    let follow_up = serde_json::json!({"channel": "sms", "from": "+14155550123", "to": "56263",
                                       "text": "a3", "messageId": "after-upgrade"});
    assert_eq!(app.post_flow(&follow_up.to_string()).await.status(), 200);
    assert_eq!(app.transcript("conv-a").await, ["a1", "a2", "a3"]);
    // A delivery queued by the old version goes out under its thread, before the new one.
    assert_eq!(app.worker.run_once().await.unwrap(), 2);
    let posts = app.webex_posts().await;
    assert_eq!(posts[0]["markdown"], "**Customer:**\n\n> queued before the upgrade");
    assert_eq!(posts[0]["parentId"], "thread-a");
    assert_eq!(posts[0]["roomId"], EXPERT_ROOM);
    assert_eq!(posts[1]["markdown"], "**Customer:**\n\n> a3");
}
}

db_test! {
    async fn the_outbox_rebuilt_for_cancelled_rows_keeps_its_rows_ids_and_receipts(db) {
    let mut upstreams = Upstreams::start(db).await;
    upstreams.set("ADMIN_TOKEN", ADMIN_TOKEN);
    let url = upstreams.database.url.clone();
    migrate_before(db, &url, 20261130000019).await;
    // Three deliveries (one held, one with a receipt); the newest, row 4, since purged.
    let pool = open_db(&url).await;
    for statement in [
        "INSERT INTO conversations (id, channel, customer, business, created_at)
         VALUES ('conv-a', 'sms', '+14155550123', '56263', 1)",
        "INSERT INTO outbox (kind, conversation_id, payload, state, next_attempt_at, created_at, held)
         VALUES ('customer_reply', 'conv-a', '{\"a\":1}', 'sent', 1, 1, 0),
                ('customer_reply', 'conv-a', '{\"a\":2}', 'pending', 2, 2, 1),
                ('expert_notice', 'conv-a', '{\"a\":3}', 'dead', 3, 3, 0),
                ('expert_notice', 'conv-a', '{\"a\":4}', 'sent', 4, 4, 0)",
        "DELETE FROM outbox WHERE id = 4",
        "INSERT INTO delivery_receipts (outbox_id, code, status, payload, received_at)
         VALUES (1, '6000', 'delivered', '{}', 5)",
    ] {
        // An older version's rows, as it wrote them.
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let app = upstreams.spawn().await;
    let rows: Vec<(i64, String, String, i64)> = app.stored().outbox().await.into_iter()
        .map(|row| (row.id, row.state, row.payload, row.held))
        .collect();
    assert_eq!(
        rows,
        [
            (1, "sent".to_string(), "{\"a\":1}".to_string(), 0),
            (2, "pending".to_string(), "{\"a\":2}".to_string(), 1),
            (3, "dead".to_string(), "{\"a\":3}".to_string(), 0),
        ]
    );
    let receipts = app.stored().receipts().await;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0].outbox_id, Some(1));
    // A row may be cancelled now; ids go on past the purged one; receipts still need a row
    // (the rebuilt table's own rules, so written to directly).
    sqlx::query("UPDATE outbox SET state = 'cancelled' WHERE id = 2")
        .execute(&app.db)
        .await
        .unwrap();
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at)
         VALUES ('expert_notice', 'conv-a', '{}', 5, 5) RETURNING id",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(next, 5);
    assert!(sqlx::query("INSERT INTO delivery_receipts (outbox_id, payload, received_at) VALUES (99, '{}', 6)")
        .execute(&app.db)
        .await
        .is_err());
}
}
