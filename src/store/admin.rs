//! What operators see and do: conversations with their transcripts.

use super::conversations::{conversations, SELECT};
use super::{Store, StoreError};
use crate::domain::Conversation;
use crate::domain::Meeting;
use crate::domain::TranscriptEntry;

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
}
