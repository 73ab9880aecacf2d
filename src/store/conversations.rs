//! Conversations as the experts see them: by thread, open ones, closing, the transcript.

use super::sql::{query, Row};
use super::{outbox, OutboxEntry, Store, StoreError};
use crate::domain::{BusinessAddress, Channel, ConversationKey, CustomerAddress};

/// A stored conversation with what the expert desk shows of it.
#[derive(Debug, Clone)]
pub struct ConversationInfo {
    pub id: String,
    pub key: ConversationKey,
    pub customer_name: Option<String>,
    pub open: bool,
    /// The Webex message that opened the conversation's thread, once delivered.
    pub thread_message_id: Option<String>,
    pub created_at: i64,
    /// When the newest meeting's links run out.
    pub links_expire_at: Option<i64>,
}

/// An expert's reply, relayed to the customer.
#[derive(Debug)]
pub struct ExpertMessage<'a> {
    pub conversation: &'a ConversationInfo,
    /// The Webex message id.
    pub message_id: &'a str,
    pub text: &'a str,
    pub author_email: Option<&'a str>,
}

pub(super) const SELECT: &str =
    "SELECT c.id, c.channel, c.customer, c.business, c.customer_name, c.state,
        c.thread_message_id, c.created_at,
        (SELECT MAX(t.expires_at) FROM meetings t WHERE t.conversation_id = c.id)
    FROM conversations c";

pub(super) fn from_row(row: &Row) -> Result<ConversationInfo, StoreError> {
    let channel: String = row.get(1)?;
    let channel = Channel::parse(&channel)
        .ok_or_else(|| StoreError::Corrupt(format!("conversation channel {channel:?}")))?;
    let state: String = row.get(5)?;
    Ok(ConversationInfo {
        id: row.get(0)?,
        key: ConversationKey {
            channel,
            customer: CustomerAddress::from_stored(row.get(2)?),
            business: BusinessAddress::from_stored(row.get(3)?),
        },
        customer_name: row.get(4)?,
        open: state == "open",
        thread_message_id: row.get(6)?,
        created_at: row.get(7)?,
        links_expire_at: row.get(8)?,
    })
}

impl Store {
    pub async fn conversation(&self, id: &str) -> Result<Option<ConversationInfo>, StoreError> {
        let row = query(&format!("{SELECT} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&mut self.reader()?.db())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The conversation a Webex message of the bot's is about: the message that opened
    /// its thread, or any expert notification sent for it (a later meeting's card).
    pub async fn conversation_by_webex_message(
        &self,
        message_id: &str,
    ) -> Result<Option<ConversationInfo>, StoreError> {
        let row = query(&format!(
            "{SELECT} WHERE c.thread_message_id = $1
                 OR c.id = (SELECT o.conversation_id FROM outbox o
                            -- Spelled out: the index covers only this kind.
                            WHERE o.upstream_id = $2 AND o.kind = 'expert_notification'
                            LIMIT 1)
             LIMIT 1"
        ))
        .bind(message_id)
        .bind(message_id)
        .fetch_optional(&mut self.reader()?.db())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Open conversations, oldest first.
    pub async fn open_conversations(
        &self,
        limit: i64,
    ) -> Result<Vec<ConversationInfo>, StoreError> {
        let rows = query(&format!(
            "{SELECT} WHERE c.state = 'open' ORDER BY c.created_at, c.id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&mut self.reader()?.db())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Closes an open conversation, queueing `deliveries` with it. Returns false when it
    /// was not open (already closed, or unknown).
    pub async fn close_conversation(
        &self,
        id: &str,
        closed_by: Option<&str>,
        deliveries: &[OutboxEntry],
        now: i64,
    ) -> Result<bool, StoreError> {
        let (id, closed_by, deliveries) = (
            id.to_string(),
            closed_by.map(str::to_string),
            deliveries.to_vec(),
        );
        self.write(move |mut tx| {
            Box::pin(async move {
                let (id, closed_by) = (id.as_str(), closed_by.as_deref());

                let closed = query(
                    "UPDATE conversations SET state = 'closed', closed_at = $1, closed_by = $2
             WHERE id = $3 AND state = 'open'",
                )
                .bind(now)
                .bind(closed_by)
                .bind(id)
                .execute(&mut tx)
                .await?
                    == 1;
                if closed {
                    for entry in &deliveries {
                        outbox::insert(&mut tx, entry, Some(id), now).await?;
                    }
                }
                Ok(closed)
            })
        })
        .await
    }

    /// Stores an expert's reply in the transcript together with its deliveries. Returns
    /// false when this Webex message was stored before (a repeated event).
    pub async fn record_expert_message(
        &self,
        message: ExpertMessage<'_>,
        deliveries: &[OutboxEntry],
        now: i64,
    ) -> Result<bool, StoreError> {
        let key = &message.conversation.key;
        let (conversation_id, message_id, text, author_email) = (
            message.conversation.id.clone(),
            message.message_id.to_string(),
            message.text.to_string(),
            message.author_email.map(str::to_string),
        );
        let (key, deliveries) = (key.clone(), deliveries.to_vec());
        self.write(move |mut tx| {
            Box::pin(async move {
                let previous = super::last_message_of(&mut tx, &conversation_id).await?;
                let inserted = query(
            "INSERT INTO messages (channel, customer, business, external_id, body, received_at,
                                   conversation_id, author, author_email, previous_message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'expert', $8, $9)
             ON CONFLICT (channel, customer, business, external_id)
                 WHERE external_id IS NOT NULL DO NOTHING",
        )
        .bind(key.channel.as_str())
        .bind(key.customer.as_str())
        .bind(key.business.as_str())
        .bind(&message_id)
        .bind(&text)
        .bind(now)
        .bind(&conversation_id)
        .bind(&author_email)
        .bind(previous)
        .insert(&mut tx)
        .await?;
                if let Some(message_row) = inserted {
                    super::append_to_conversation(&mut tx, &conversation_id, message_row, previous)
                        .await?;
                    for entry in &deliveries {
                        outbox::insert(&mut tx, entry, Some(&conversation_id), now).await?;
                    }
                }
                Ok(inserted.is_some())
            })
        })
        .await
    }

    /// Whether an expert notification for the conversation is still waiting to be sent:
    /// its thread will exist once it is.
    pub async fn notification_pending(&self, conversation_id: &str) -> Result<bool, StoreError> {
        let pending: i64 = query(
            "SELECT COUNT(*) FROM outbox
             WHERE conversation_id = $1 AND kind = $2 AND state = 'pending'",
        )
        .bind(conversation_id)
        .bind(super::EXPERT_NOTIFICATION)
        .fetch_one(&mut self.reader()?.db())
        .await?
        .get(0)?;
        Ok(pending > 0)
    }
}
