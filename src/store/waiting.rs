//! Conversations that wait for their desk to open: a message that needed a meeting came out
//! of hours, and its desk queues such conversations until it opens.

use super::conversations::{
    change_conversation, conversations, open_conversation_for, ConversationRow, Opening, SELECT,
};
use super::events::{conversation_opened, messages_received, record_events};
use super::outbox::insert_outbox;
use super::{Store, StoreError};
use crate::domain::Conversation;
use crate::domain::Waiting;
use crate::domain::{ConversationKey, OutboxEntry};

/// A message that needed a meeting out of hours, to be kept in a waiting conversation.
#[derive(Debug)]
pub struct WaitingMessage {
    pub key: ConversationKey,
    pub customer_name: Option<String>,
    /// Used if this opens a new conversation (an open one keeps its id and desk).
    pub conversation_id: String,
    pub desk: String,
    pub message_row: i64,
    /// Queued only when the conversation starts waiting (the out-of-hours text), so that a
    /// customer who writes three times at night is told once.
    pub deliveries: Vec<OutboxEntry>,
    pub now: i64,
}

impl Store {
    /// Keeps a message in its open conversation (opened if none is), which waits for its
    /// desk from now on unless it waits already; the deliveries are queued when it starts
    /// waiting. One transaction: a repeat of the message finds it kept and queues nothing.
    pub async fn wait_for_opening(&self, waiting: WaitingMessage) -> Result<Waiting, StoreError> {
        self.write(async move |tx| {
            let key = &waiting.key;
            let opening = Opening {
                key,
                id: &waiting.conversation_id,
                customer_name: waiting.customer_name.as_deref(),
                desk: &waiting.desk,
                now: waiting.now,
            };
            let (conversation_id, desk) = open_conversation_for(tx, opening, false).await?;
            let kept = sqlx::query(
                "UPDATE messages SET conversation_id = $1
                 WHERE id = $2 AND conversation_id IS NULL",
            )
            .bind(&conversation_id)
            .bind(waiting.message_row)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let started_waiting = kept
                && sqlx::query(
                    "UPDATE conversations SET waiting_since = $1
                     WHERE id = $2 AND waiting_since IS NULL",
                )
                .bind(waiting.now)
                .bind(&conversation_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
            if started_waiting {
                insert_outbox(tx, &waiting.deliveries, Some(&conversation_id), waiting.now).await?;
            }
            let mut events = Vec::new();
            if conversation_id == waiting.conversation_id {
                events.push(conversation_opened(&conversation_id, key, desk.as_deref()));
            }
            if kept {
                events.extend(messages_received(tx, &[waiting.message_row]).await?);
            }
            record_events(tx, &events, waiting.now).await?;
            Ok(Waiting {
                opened_conversation: conversation_id == waiting.conversation_id,
                conversation_id,
                desk,
                started_waiting,
            })
        })
        .await
    }

    /// The desks (as stored: `None` for conversations from before desks) that have
    /// conversations waiting.
    pub async fn desks_with_waiting(&self) -> Result<Vec<Option<String>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT desk FROM conversations
             WHERE waiting_since IS NOT NULL AND state = 'open'",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    /// The open conversations waiting for `desk` (as stored), longest waiting first.
    pub async fn waiting_conversations(
        &self,
        desk: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Conversation>, StoreError> {
        let rows: Vec<ConversationRow> = sqlx::query_as(&format!(
            "{SELECT} WHERE c.waiting_since IS NOT NULL AND c.state = 'open'
                 AND (c.desk = $1 OR ($1 IS NULL AND c.desk IS NULL))
             ORDER BY c.waiting_since, c.id LIMIT $2"
        ))
        .bind(desk)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        conversations(rows)
    }

    /// Hands a waiting conversation to its desk, queuing `deliveries` (its notification)
    /// due at `due`, unless it stopped waiting since `waiting_since` was read (a meeting was made, it was
    /// closed, or another instance handed it over first). Returns whether it did.
    pub async fn end_waiting(
        &self,
        id: &str,
        waiting_since: i64,
        deliveries: &[OutboxEntry],
        due: i64,
    ) -> Result<bool, StoreError> {
        let (id, deliveries) = (id.to_string(), deliveries.to_vec());
        self.write(async move |tx| {
            let update = sqlx::query(
                // The notification opens the conversation's thread (a new one, if it had
                // one before it waited).
                "UPDATE conversations SET waiting_since = NULL, thread_message_id = NULL
                 WHERE id = $1 AND waiting_since = $2 AND state = 'open'",
            )
            .bind(&id)
            .bind(waiting_since);
            change_conversation(tx, update, &id, &deliveries, due).await
        })
        .await
    }
}
