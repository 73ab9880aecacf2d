//! What operators see and do: conversations with their transcripts, and retention.

use super::conversations::{conversations, SELECT};
use super::{Store, StoreError, ERASED};
use crate::domain::Conversation;
use crate::domain::Meeting;
use crate::domain::{PurgeReport, TranscriptEntry};

/// What retention removes: data received before `before`, and handled Webex events received
/// before `events_before` (kept at least as long as events may be replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCutoffs {
    pub before: i64,
    pub events_before: i64,
    pub now: i64,
}

impl Store {
    /// The server secret `name`: `candidate` if none was made before (by any instance),
    /// else the one made first.
    pub async fn server_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let (name, candidate) = (name.to_string(), candidate.to_string());
        self.write(async move |tx| {
            sqlx::query(
                "INSERT INTO server_secrets (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&name)
            .bind(&candidate)
            .execute(&mut *tx)
            .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
                    .bind(&name)
                    .fetch_one(&mut *tx)
                    .await?,
            )
        })
        .await
    }

    /// Conversations, newest first: `open`, `closed`, or all of them.
    pub async fn conversations(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        // Two statements, so that each reads its index from the newest end and stops at
        // the limit (`$1 IS NULL OR state = $1` would read every conversation).
        let rows = match state {
            Some(state) => {
                sqlx::query_as(&format!(
                    "{SELECT} WHERE c.state = $1 ORDER BY c.created_at DESC, c.id LIMIT $2"
                ))
                .bind(state)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "{SELECT} ORDER BY c.created_at DESC, c.id LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
        };
        conversations(rows)
    }

    /// A conversation's messages, customer's and experts', in the order they arrived.
    pub async fn transcript(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT author, author_email, body AS text, media, received_at AS at FROM messages
             WHERE conversation_id = $1 ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn meetings_of(&self, conversation_id: &str) -> Result<Vec<Meeting>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, conversation_id, sub, host_url, guest_url, not_before, expires_at, created_at FROM meetings
             WHERE conversation_id = $1 ORDER BY created_at",
        )
        .bind(conversation_id)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Applies retention: erases and anonymises what is older than the cutoffs.
    /// (One function on purpose, though long: one transaction whose statements read in the
    /// order they run, one per table it touches.)
    pub async fn purge(&self, cutoffs: PurgeCutoffs) -> Result<PurgeReport, StoreError> {
        let PurgeCutoffs {
            before,
            events_before,
            now,
        } = cutoffs;
        self.write(async move |tx| {
            let message_texts_erased = sqlx::query(
                "UPDATE messages SET body = '', media = NULL
                 WHERE received_at < $1 AND (body != '' OR media IS NOT NULL)",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let conversations_anonymised = sqlx::query(
                "UPDATE conversations SET customer = $1, customer_name = NULL, closed_by = NULL
                 WHERE state = 'closed' AND closed_at < $2 AND customer != $1",
            )
            .bind(ERASED)
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Without their sender's message ids: they identified a message with its
            // number, and another anonymised customer's message may have had the same.
            sqlx::query(
                "UPDATE messages SET customer = $1, author_email = NULL, external_id = NULL
                 WHERE customer != $1 AND conversation_id IN
                       (SELECT id FROM conversations WHERE customer = $1)",
            )
            .bind(ERASED)
            .execute(&mut *tx)
            .await?;
            let receipts_deleted =
                sqlx::query("DELETE FROM delivery_receipts WHERE received_at < $1")
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            // A WhatsApp message held for a customer who never wrote again is not kept
            // past the retention either: nothing of it was ever sent.
            let held_messages_dropped =
                sqlx::query("DELETE FROM outbox WHERE held = 1 AND created_at < $1")
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            let outbox_payloads_cleared = sqlx::query(
                "UPDATE outbox SET payload = '{}'
                 WHERE state != 'pending' AND created_at < $1 AND payload != '{}'",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let webex_events_deleted = sqlx::query(
                "DELETE FROM webex_events WHERE state != 'pending' AND received_at < $1",
            )
            .bind(events_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let events_deleted = super::events::purge_events(tx, before).await?;
            let sessions_deleted =
                sqlx::query("DELETE FROM console_sessions WHERE refresh_expires_at < $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            // Starts older than a day no longer count against any hourly limit.
            sqlx::query("DELETE FROM meeting_starts WHERE started_at < $1")
                .bind(now - 24 * 3_600_000)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM meeting_limit_locks WHERE NOT EXISTS (
                     SELECT 1 FROM meeting_starts s
                     WHERE s.channel = meeting_limit_locks.channel
                       AND s.customer = meeting_limit_locks.customer)",
            )
            .execute(&mut *tx)
            .await?;
            Ok(PurgeReport {
                message_texts_erased,
                conversations_anonymised,
                receipts_deleted,
                outbox_payloads_cleared,
                held_messages_dropped,
                webex_events_deleted,
                events_deleted,
                sessions_deleted,
            })
        })
        .await
    }
}
