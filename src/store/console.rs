//! The expert console's logins, sessions and queue.

use super::sql::query;
use super::{ConversationInfo, Store, StoreError};

/// A signed-in expert.
#[derive(Clone)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub email: String,
    pub display_name: String,
    pub access_token: String,
    pub access_expires_at: i64,
    pub refresh_token: String,
    pub refresh_expires_at: i64,
    pub token_generation: i64,
    pub csrf_token: String,
}

impl std::fmt::Debug for ConsoleSession {
    // Tokens stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("email", &self.email)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// A line of the console's queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub conversation: ConversationInfo,
    pub last_message: Option<String>,
    pub last_message_at: Option<i64>,
    pub host_url: Option<String>,
}

impl Store {
    pub async fn create_login(
        &self,
        state: &str,
        code_verifier: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (state, code_verifier) = (state.to_string(), code_verifier.to_string());
        self.write(move |mut tx| {
            Box::pin(async move {
                query(
                    "INSERT INTO oauth_logins (state, code_verifier, created_at) VALUES ($1, $2, $3)",
                )
                .bind(state)
                .bind(code_verifier)
                .bind(now)
                .execute(&mut tx)
                .await?;
                // Logins never finished are of no use after a while.
                query("DELETE FROM oauth_logins WHERE created_at < $1")
                    .bind(now - 24 * 3_600_000)
                    .execute(&mut tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Uses up a login's `state`: returns its PKCE verifier if it exists and was created
    /// after `not_before`. A second use finds nothing.
    pub async fn take_login(
        &self,
        state: &str,
        not_before: i64,
    ) -> Result<Option<String>, StoreError> {
        let state = state.to_string();
        let taken = self
            .write(move |mut tx| {
                Box::pin(async move {
                    query(
                    "DELETE FROM oauth_logins WHERE state = $1 RETURNING code_verifier, created_at",
                )
                .bind(state).fetch_optional(&mut tx).await
                })
            })
            .await?;
        match taken {
            Some(row) if row.get::<i64>(1)? >= not_before => Ok(Some(row.get(0)?)),
            _ => Ok(None),
        }
    }

    pub async fn create_session(
        &self,
        session: &ConsoleSession,
        now: i64,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(move |mut tx| {
            Box::pin(async move {
                query(
                    "INSERT INTO console_sessions (id_hash, email, display_name, access_token,
                 access_expires_at, refresh_token, refresh_expires_at, csrf_token, created_at)
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
                .execute(&mut tx)
                .await
            })
        })
        .await?;
        Ok(())
    }

    /// The session, unless its refresh token (and so the session) ran out.
    pub async fn session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let row = query(
            "SELECT id_hash, email, display_name, access_token, access_expires_at, refresh_token,
                    refresh_expires_at, token_generation, csrf_token
             FROM console_sessions WHERE id_hash = $1 AND refresh_expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&mut self.reader()?.db())
        .await?;
        row.map(|row| {
            Ok(ConsoleSession {
                id_hash: row.get(0)?,
                email: row.get(1)?,
                display_name: row.get(2)?,
                access_token: row.get(3)?,
                access_expires_at: row.get(4)?,
                refresh_token: row.get(5)?,
                refresh_expires_at: row.get(6)?,
                token_generation: row.get(7)?,
                csrf_token: row.get(8)?,
            })
        })
        .transpose()
    }

    /// Stores refreshed tokens and counts the refresh.
    pub async fn refresh_session(&self, session: &ConsoleSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(move |mut tx| Box::pin(async move { query(
            "UPDATE console_sessions SET access_token = $1, access_expires_at = $2, refresh_token = $3,
                 refresh_expires_at = $4, token_generation = token_generation + 1
             WHERE id_hash = $5",
        )
        .bind(&session.access_token)
        .bind(session.access_expires_at)
        .bind(&session.refresh_token)
        .bind(session.refresh_expires_at)
        .bind(&session.id_hash).execute(&mut tx).await }))
        .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        self.write(move |mut tx| {
            Box::pin(async move {
                query("DELETE FROM console_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&mut tx)
                    .await
            })
        })
        .await?;
        Ok(())
    }

    /// Open conversations with their latest message and host link, newest activity first.
    pub async fn queue(&self, limit: i64) -> Result<Vec<QueueItem>, StoreError> {
        let conversations = self.open_conversations(limit).await?;
        let mut items = Vec::with_capacity(conversations.len());
        for conversation in conversations {
            let row = query(
                "SELECT m.body, m.received_at,
                    (SELECT host_url FROM meetings WHERE conversation_id = $1 ORDER BY expires_at DESC LIMIT 1)
                 FROM conversations c LEFT JOIN messages m ON m.id = c.last_message_id
                 WHERE c.id = $1",
            )
            .bind(&conversation.id)
            .fetch_one(&mut self.reader()?.db())
            .await?;
            items.push(QueueItem {
                conversation,
                last_message: row.get(0)?,
                last_message_at: row.get(1)?,
                host_url: row.get(2)?,
            });
        }
        items.sort_by_key(|item| {
            std::cmp::Reverse(item.last_message_at.unwrap_or(item.conversation.created_at))
        });
        Ok(items)
    }
}
