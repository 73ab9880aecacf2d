//! What icbridge stored, read back for assertions: `app.stored()` is a view of the test's
//! database with one named reader per question the tests ask of it. The SQL that reads the
//! tables lives here, so that a test says what it expects and not how the rows are laid out.
//! (The few tests that corrupt or age a row on purpose still write SQL of their own.)

use icbridge::domain::Meeting;
use sqlx::AnyPool;

use crate::helpers::TestApp;

/// A read-only view of a test's database.
pub struct Stored<'a> {
    db: &'a AnyPool,
}

impl TestApp {
    /// What this app stored, read back.
    pub fn stored(&self) -> Stored<'_> {
        Stored::in_db(&self.db)
    }

    /// The number of rows of `table`.
    pub async fn count(&self, table: &str) -> i64 {
        self.stored().count(table).await
    }

    /// The text and media (as stored, JSON) of the customer's message with this id.
    pub async fn stored_message(&self, external_id: &str) -> (String, Option<String>) {
        let message = self.stored().message(external_id).await;
        (message.body, message.media)
    }
}

/// A row of `messages`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub channel: String,
    pub customer: String,
    pub business: String,
    pub external_id: Option<String>,
    pub body: String,
    pub media: Option<String>,
    pub received_at: i64,
    pub conversation_id: Option<String>,
    pub meeting_id: Option<String>,
    /// 1 when this message opened its meeting.
    pub opened_meeting: i64,
    /// `customer` or `expert`.
    pub author: String,
    pub author_email: Option<String>,
}

/// A row of `conversations`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Conversation {
    pub id: String,
    pub channel: String,
    pub customer: String,
    pub business: String,
    pub customer_name: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    pub closed_by: Option<String>,
    pub thread_message_id: Option<String>,
    pub assignee: Option<String>,
    pub desk: Option<String>,
    pub waiting_since: Option<i64>,
}

/// A row of the outbox: one delivery to Webex or to a customer.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub conversation_id: Option<String>,
    pub recipient: Option<String>,
    pub payload: String,
    pub state: String,
    /// 1 while a WhatsApp message waits for the customer's window to open.
    pub held: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub leased_until: Option<i64>,
    pub last_error: Option<String>,
    pub upstream_id: Option<String>,
    pub delivery_status: Option<String>,
    pub delivery_code: Option<String>,
    pub created_at: i64,
}

/// A row of `delivery_receipts`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Receipt {
    pub id: i64,
    pub correlation_id: Option<String>,
    pub transid: Option<String>,
    pub code: Option<String>,
    pub status: Option<String>,
    pub channel: Option<String>,
    pub outbox_id: Option<i64>,
    pub received_at: i64,
}

/// A row of `webex_events`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebexEvent {
    pub id: String,
    pub state: String,
    pub received_at: i64,
}

/// A row of `audit_log`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Audit {
    pub actor: String,
    pub action: String,
    pub subject: String,
}

/// A row of `links`: one of icbridge's own links to a meeting.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Link {
    pub code: String,
    pub meeting_id: String,
    pub role: String,
    pub target: String,
    /// 1 for a link added for an extra guest.
    pub extra: i64,
    pub opened_at: Option<i64>,
}

/// A row of `appointments`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Appointment {
    pub id: String,
    pub customer: String,
    pub note: Option<String>,
    pub state: String,
}

/// A row of `console_sessions`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
    pub csrf_token: String,
}

/// A row of `oauth_logins`: a console login under way.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OauthLogin {
    pub state: String,
    pub code_verifier: String,
    pub browser_hash: Option<String>,
}

impl<'a> Stored<'a> {
    /// A view of the database behind this pool (for tests that run icbridge another way).
    pub fn in_db(db: &'a AnyPool) -> Self {
        Self { db }
    }

    async fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        sqlx::query_as(sql).fetch_all(self.db).await.unwrap()
    }

    /// The only row `rows` holds: a test that asks for "the" row expects exactly one.
    fn only<T: std::fmt::Debug>(mut rows: Vec<T>, what: &str) -> T {
        assert_eq!(rows.len(), 1, "one {what} expected: {rows:#?}");
        rows.remove(0)
    }

    /// The number of rows of `table`.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.db)
            .await
            .unwrap()
    }

    /// Counts of (messages, conversations, meetings, outbox rows).
    pub async fn counts(&self) -> (i64, i64, i64, i64) {
        (
            self.count("messages").await,
            self.count("conversations").await,
            self.count("meetings").await,
            self.count("outbox").await,
        )
    }

    /// How many rows of `table` have `needle` somewhere in `column`.
    pub async fn rows_mentioning(&self, table: &str, column: &str, needle: &str) -> i64 {
        sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} LIKE $1"
        ))
        .bind(format!("%{needle}%"))
        .fetch_one(self.db)
        .await
        .unwrap()
    }

    /// Every message, customers' and experts', in the order stored.
    pub async fn messages(&self) -> Vec<Message> {
        self.rows(
            "SELECT id, channel, customer, business, external_id, body, media, received_at,
                    conversation_id, meeting_id, opened_meeting, author, author_email
             FROM messages ORDER BY id",
        )
        .await
    }

    /// The only message stored.
    pub async fn the_message(&self) -> Message {
        Self::only(self.messages().await, "message")
    }

    /// The message with this (upstream) id.
    pub async fn message(&self, external_id: &str) -> Message {
        let matching = self.messages().await.into_iter();
        let matching = matching.filter(|m| m.external_id.as_deref() == Some(external_id));
        Self::only(matching.collect(), "message with that id")
    }

    /// Every conversation, oldest first.
    pub async fn conversations(&self) -> Vec<Conversation> {
        self.rows(
            "SELECT id, channel, customer, business, customer_name, state, created_at,
                    closed_at, closed_by, thread_message_id, assignee, desk, waiting_since
             FROM conversations ORDER BY created_at, id",
        )
        .await
    }

    /// The only conversation stored.
    pub async fn the_conversation(&self) -> Conversation {
        Self::only(self.conversations().await, "conversation")
    }

    /// The conversation with this id.
    pub async fn conversation(&self, id: &str) -> Conversation {
        let matching = self
            .conversations()
            .await
            .into_iter()
            .filter(|c| c.id == id);
        Self::only(matching.collect(), "conversation with that id")
    }

    /// Every meeting, oldest first.
    pub async fn meetings(&self) -> Vec<Meeting> {
        self.rows(
            "SELECT id, conversation_id, sub, host_url, guest_url, not_before, expires_at,
                    created_at
             FROM meetings ORDER BY created_at, id",
        )
        .await
    }

    /// The only meeting stored.
    pub async fn the_meeting(&self) -> Meeting {
        Self::only(self.meetings().await, "meeting")
    }

    /// How many of icbridge's own links lead to this meeting.
    pub async fn meeting_links(&self, meeting_id: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM meeting_links WHERE meeting_id = $1")
            .bind(meeting_id)
            .fetch_one(self.db)
            .await
            .unwrap()
    }

    /// Every row of the outbox, in the order queued.
    pub async fn outbox(&self) -> Vec<OutboxRow> {
        self.outbox_where("1 = 1").await
    }

    async fn outbox_where(&self, condition: &str) -> Vec<OutboxRow> {
        let sql = format!(
            "SELECT id, kind, conversation_id, recipient, payload, state, held, attempts,
                    next_attempt_at, leased_until, last_error, upstream_id, delivery_status,
                    delivery_code, created_at
             FROM outbox WHERE {condition} ORDER BY id"
        );
        self.rows(&sql).await
    }

    /// The outbox's rows of one kind (`customer_reply`, `expert_notification`, …), in order.
    pub async fn outbox_of_kind(&self, kind: &str) -> Vec<OutboxRow> {
        let rows = self.outbox().await.into_iter();
        rows.filter(|row| row.kind == kind).collect()
    }

    /// The outbox's rows in one state (`pending`, `sent`, `dead`, `cancelled`), in order.
    pub async fn outbox_in_state(&self, state: &str) -> Vec<OutboxRow> {
        let rows = self.outbox().await.into_iter();
        rows.filter(|row| row.state == state).collect()
    }

    /// The WhatsApp messages held until the customer's window opens again, in order.
    pub async fn held(&self) -> Vec<OutboxRow> {
        let rows = self.outbox().await.into_iter();
        rows.filter(|row| row.held == 1).collect()
    }

    /// The outbox's rows not (yet) sent, in order. (Filtered by the database: tests poll it
    /// while workers are busy with the table.)
    pub async fn unsent(&self) -> Vec<OutboxRow> {
        self.outbox_where("state <> 'sent'").await
    }

    /// The only row of the outbox.
    pub async fn the_outbox_row(&self) -> OutboxRow {
        Self::only(self.outbox().await, "outbox row")
    }

    /// The outbox's row with this id.
    pub async fn outbox_row(&self, id: i64) -> OutboxRow {
        let matching = self.outbox().await.into_iter().filter(|row| row.id == id);
        Self::only(matching.collect(), "outbox row with that id")
    }

    /// The newest row of the outbox.
    pub async fn newest_outbox_row(&self) -> OutboxRow {
        self.outbox().await.pop().expect("an outbox row")
    }

    /// The id of the newest reply to a customer.
    pub async fn newest_reply_id(&self) -> i64 {
        let replies = self.outbox_of_kind("customer_reply").await;
        replies.last().expect("a reply to a customer").id
    }

    /// Every delivery receipt, in the order received.
    pub async fn receipts(&self) -> Vec<Receipt> {
        self.rows(
            "SELECT id, correlation_id, transid, code, status, channel, outbox_id, received_at
             FROM delivery_receipts ORDER BY id",
        )
        .await
    }

    /// Every Webex event, in the order received.
    pub async fn webex_events(&self) -> Vec<WebexEvent> {
        self.rows("SELECT id, state, received_at FROM webex_events ORDER BY received_at, id")
            .await
    }

    /// The audit log, oldest first.
    pub async fn audit_log(&self) -> Vec<Audit> {
        self.rows("SELECT actor, action, subject FROM audit_log ORDER BY id")
            .await
    }

    /// The audit log's entries for these actions, oldest first.
    pub async fn audited(&self, actions: &[&str]) -> Vec<Audit> {
        let entries = self.audit_log().await.into_iter();
        entries
            .filter(|entry| actions.contains(&entry.action.as_str()))
            .collect()
    }

    /// Every one of icbridge's own links.
    pub async fn links(&self) -> Vec<Link> {
        self.rows(
            "SELECT code, meeting_id, role, target, extra, opened_at FROM links ORDER BY code",
        )
        .await
    }

    /// The only appointment stored.
    pub async fn the_appointment(&self) -> Appointment {
        let appointments = self
            .rows("SELECT id, customer, note, state FROM appointments")
            .await;
        Self::only(appointments, "appointment")
    }

    /// The only console session.
    pub async fn the_console_session(&self) -> ConsoleSession {
        let sessions = self
            .rows(
                "SELECT id_hash, email, access_token, refresh_token, csrf_token
                 FROM console_sessions",
            )
            .await;
        Self::only(sessions, "console session")
    }

    /// Every console login under way.
    pub async fn oauth_logins(&self) -> Vec<OauthLogin> {
        self.rows("SELECT state, code_verifier, browser_hash FROM oauth_logins")
            .await
    }

    /// The console login under way with this OAuth `state`.
    pub async fn oauth_login(&self, state: &str) -> OauthLogin {
        let matching = self.oauth_logins().await.into_iter();
        let matching = matching.filter(|login| login.state == state);
        Self::only(matching.collect(), "login with that state")
    }
}
