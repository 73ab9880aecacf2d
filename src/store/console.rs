//! The expert console's logins, sessions and queue.

use super::conversations::{ConversationRow, SELECT};
use super::engine::Backend;
use super::{Store, StoreError};
use crate::domain::ConsoleSession;
use crate::domain::QueueItem;

impl std::fmt::Debug for ConsoleSession {
    // Tokens stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("email", &self.email)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// A queue line as selected: the conversation's columns and its latest message and link,
/// each a field of the line's JSON object (see [`Store::queue`]).
#[derive(serde::Deserialize)]
struct QueueRow {
    #[serde(flatten)]
    conversation: ConversationRow,
    last_message: Option<String>,
    last_message_at: Option<i64>,
    host_url: Option<String>,
    link_opened_at: Option<i64>,
    booked_for: Option<i64>,
}

/// The fields of a queue line's JSON object: [`ConversationRow`]'s and [`QueueRow`]'s.
const QUEUE_FIELDS: [&str; 20] = [
    "id",
    "channel",
    "customer",
    "business",
    "customer_name",
    "state",
    "thread_message_id",
    "created_at",
    "closed_at",
    "closed_by",
    "assignee",
    "desk",
    "waiting_since",
    "links_expire_at",
    "rating",
    "last_message",
    "last_message_at",
    "host_url",
    "link_opened_at",
    "booked_for",
];

impl Store {
    /// A login in progress: its `state`, its PKCE verifier and the hash of the value that
    /// the browser which started it holds.
    pub async fn create_login(
        &self,
        state: &str,
        code_verifier: &str,
        browser_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (state, code_verifier, browser_hash) = (
            state.to_string(),
            code_verifier.to_string(),
            browser_hash.to_string(),
        );
        self.write(async move |tx| {
            sqlx::query(
                "INSERT INTO oauth_logins (state, code_verifier, browser_hash, created_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&state)
            .bind(&code_verifier)
            .bind(&browser_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // Logins never finished are of no use after a while.
            sqlx::query("DELETE FROM oauth_logins WHERE created_at < $1")
                .bind(now - 24 * 3_600_000)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
        .await
    }

    /// Uses up a login's `state`, started by the browser of `browser_hash`: returns its PKCE
    /// verifier if it exists and was created after `not_before`. A second use, or one from
    /// another browser, finds nothing (and the other browser leaves the login as it was).
    pub async fn take_login(
        &self,
        state: &str,
        browser_hash: &str,
        not_before: i64,
    ) -> Result<Option<String>, StoreError> {
        let (state, browser_hash) = (state.to_string(), browser_hash.to_string());
        let taken: Option<(String, i64)> = self
            .write(async move |tx| {
                Ok(sqlx::query_as(
                    "DELETE FROM oauth_logins WHERE state = $1 AND browser_hash = $2
                     RETURNING code_verifier, created_at",
                )
                .bind(&state)
                .bind(&browser_hash)
                .fetch_optional(tx)
                .await?)
            })
            .await?;
        Ok(taken
            .filter(|(_, created_at)| *created_at >= not_before)
            .map(|(verifier, _)| verifier))
    }

    pub async fn create_session(
        &self,
        session: &ConsoleSession,
        now: i64,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(async move |tx| {
            sqlx::query(
                "INSERT INTO console_sessions (id_hash, email, display_name, access_token,
                     access_expires_at, refresh_token, refresh_expires_at, csrf_token,
                     created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&session.id_hash)
            .bind(&session.email)
            .bind(&session.display_name)
            .bind(&session.access_token)
            .bind(session.access_expires_at)
            .bind(&session.refresh_token)
            .bind(session.refresh_expires_at)
            .bind(&session.csrf_token)
            .bind(now)
            .execute(tx)
            .await?;
            Ok(())
        })
        .await
    }

    /// The session, unless its refresh token (and so the session) ran out.
    pub async fn session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id_hash, email, display_name, access_token, access_expires_at, refresh_token,
                    refresh_expires_at, token_generation, csrf_token
             FROM console_sessions WHERE id_hash = $1 AND refresh_expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Stores refreshed tokens and counts the refresh.
    pub async fn refresh_session(&self, session: &ConsoleSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(async move |tx| {
            sqlx::query(
                "UPDATE console_sessions SET access_token = $1, access_expires_at = $2,
                     refresh_token = $3, refresh_expires_at = $4,
                     token_generation = token_generation + 1
                 WHERE id_hash = $5",
            )
            .bind(&session.access_token)
            .bind(session.access_expires_at)
            .bind(&session.refresh_token)
            .bind(session.refresh_expires_at)
            .bind(&session.id_hash)
            .execute(tx)
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        self.write(async move |tx| {
            sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                .bind(&id_hash)
                .execute(tx)
                .await?;
            Ok(())
        })
        .await
    }

    /// Open conversations with their latest message and host link, newest activity first.
    ///
    /// The database hands the lines over as one JSON array in one row: handed over a row
    /// at a time, a queue of 200 lines cost more than the statement itself (on SQLite sqlx
    /// passes each row from the connection's thread and wakes the request for it, 15 µs a
    /// row on the benchmark's machine, and converts each of its values).
    pub async fn queue(&self, limit: i64, now: i64) -> Result<Vec<QueueItem>, StoreError> {
        let fields = QUEUE_FIELDS
            .iter()
            .map(|field| format!("'{field}', r.{field}"))
            .collect::<Vec<_>>()
            .join(", ");
        let lines = queue_lines();
        let array = match self.backend {
            Backend::Sqlite => format!("SELECT json_group_array(json_object({fields})) FROM ({lines}) r"),
            // `json_agg` of no rows is NULL, not an empty array.
            Backend::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_object({fields})), '[]')::text FROM ({lines}) r"
            ),
        };
        let json: String = sqlx::query_scalar(&array)
            .bind(limit)
            .bind(now)
            .fetch_one(&self.reader)
            .await?;
        let rows: Vec<QueueRow> = serde_json::from_str(&json)
            // Not the error itself, which can quote a value: a customer's message.
            .map_err(|error| {
                StoreError::Corrupt(format!(
                    "the queue's lines: {:?} error at column {}",
                    error.classify(),
                    error.column()
                ))
            })?;
        let mut items = rows
            .into_iter()
            .map(|row| {
                Ok(QueueItem {
                    conversation: row.conversation.try_into()?,
                    last_message: row.last_message,
                    last_message_at: row.last_message_at,
                    host_url: row.host_url,
                    link_opened_at: row.link_opened_at,
                    booked_for: row.booked_for,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        items.sort_by_key(|item| {
            std::cmp::Reverse(item.last_message_at.unwrap_or(item.conversation.created_at))
        });
        Ok(items)
    }
}

/// The queue's lines, a row each, with [`QUEUE_FIELDS`] for columns: `$1` the most lines, `$2`
/// now (an appointment still ahead shows).
fn queue_lines() -> String {
    format!(
        "WITH q AS ({SELECT} WHERE c.state = 'open' ORDER BY c.created_at, c.id LIMIT $1)
         SELECT q.*, m.body AS last_message, m.received_at AS last_message_at, t.host_url,
             (SELECT l.opened_at FROM links l
              WHERE l.meeting_id = t.id AND l.role = 'guest' AND l.extra = 0) AS link_opened_at,
             (SELECT a.starts_at FROM appointments a
              WHERE a.conversation_id = q.id AND a.state = 'booked' AND a.ends_at > $2
              ORDER BY a.starts_at LIMIT 1) AS booked_for
         FROM q
         -- The latest message and the current meeting, each found once for the
         -- columns taken from it.
         LEFT JOIN messages m ON m.id = (SELECT MAX(x.id) FROM messages x
                                         WHERE x.conversation_id = q.id)
         LEFT JOIN meetings t ON t.id = (SELECT y.id FROM meetings y
                                         WHERE y.conversation_id = q.id
                                         ORDER BY y.expires_at DESC LIMIT 1)"
    )
}

#[cfg(test)]
mod tests {
    use sqlx::{Column, Executor, Statement};

    use super::*;

    /// The queue's JSON objects are built from [`QUEUE_FIELDS`]: a column its statement
    /// selects but the list lacks would be missing from every line (and read as `None`).
    #[tokio::test]
    async fn the_queue_fields_are_the_columns_its_statement_selects() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("icbridge.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let lines = queue_lines();
        let statement = (&store.reader).prepare(&lines).await.unwrap();
        let columns: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
        assert_eq!(columns, QUEUE_FIELDS);
    }
}
