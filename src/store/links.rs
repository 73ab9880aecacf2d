//! The links icbridge hands out in place of Instant Connect's: where each code leads, whether
//! its meeting is still the conversation's live one, and its first opening.

use super::{insert_outbox, Store, StoreError};
use crate::domain::OutboxEntry;

/// A code icbridge hands out, and the Instant Connect link it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub code: String,
    /// `guest` or `host`.
    pub role: &'static str,
    pub target: String,
}

/// A handed-out link as a visit finds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkRecord {
    pub target: String,
    pub role: String,
    pub conversation_id: String,
    /// When the meeting was made: when its links were sent.
    pub created_at: i64,
    pub expires_at: i64,
    pub opened_at: Option<i64>,
    /// 1 while the conversation is open and this is its newest meeting, else 0.
    pub current: i64,
}

impl Store {
    pub async fn link(&self, code: &str) -> Result<Option<LinkRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT l.target, l.role, t.conversation_id, t.created_at, t.expires_at, l.opened_at,
                    (CASE WHEN c.state = 'open' AND t.id = (
                         -- The meeting messages are answered with (see `live_meeting`).
                         SELECT m.id FROM meetings m WHERE m.conversation_id = t.conversation_id
                         ORDER BY m.expires_at DESC, m.created_at DESC LIMIT 1)
                     THEN 1 ELSE 0 END) AS current
             FROM links l JOIN meetings t ON t.id = l.meeting_id
                          JOIN conversations c ON c.id = t.conversation_id
             WHERE l.code = $1",
        )
        .bind(code)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Records the first opening of link `code` and queues `notice` with it; false when it
    /// was opened before.
    pub async fn record_opening(
        &self,
        code: &str,
        conversation_id: &str,
        notice: OutboxEntry,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (code, conversation_id) = (code.to_string(), conversation_id.to_string());
        self.write(move |tx| {
            Box::pin(async move {
                let first = sqlx::query(
                    "UPDATE links SET opened_at = $1 WHERE code = $2 AND opened_at IS NULL",
                )
                .bind(now)
                .bind(&code)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if first {
                    insert_outbox(tx, &[notice], Some(&conversation_id), now).await?;
                }
                Ok(first)
            })
        })
        .await
    }
}
