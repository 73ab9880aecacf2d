//! Customers who opted out: recording STOP and START, cancelling what waits to go to them,
//! and keeping their later messages for the experts.

use sqlx::AnyConnection;

use super::conversations::{open_conversation_for, Opening};
use super::events::{opt_out_changed, record_events};
use super::outbox::insert_outbox;
use super::{Store, StoreError};
use crate::domain::{ConversationKey, OutboxEntry};

/// What a keyword message changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutChange {
    /// STOP: the customer opts out.
    Out,
    /// START: back in.
    In,
    /// HELP: nothing.
    Nothing,
}

/// A customer's STOP, START or HELP, with its answers.
#[derive(Debug)]
pub struct KeywordMessage {
    pub key: ConversationKey,
    pub message_row: i64,
    pub change: OptOutChange,
    /// The answer to the customer (when icbridge sends replies), and the note for the open
    /// conversation's thread: queued unless a STOP finds the customer opted out already
    /// (they were told then).
    pub answer: Vec<OutboxEntry>,
    pub thread_note: OutboxEntry,
    /// Why cancelled deliveries were not sent (their `last_error`).
    pub cancel_reason: String,
    pub now: i64,
}

/// What a keyword message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordOutcome {
    /// The customer's open conversation, which keeps the message, if they have one.
    pub conversation_id: Option<String>,
    /// Whether the customer is opted out now.
    pub opted_out: bool,
    /// Whether it changed that.
    pub changed: bool,
    /// Deliveries to the customer cancelled by a STOP.
    pub cancelled: u64,
}

/// A message from a customer who opted out, kept for the experts.
#[derive(Debug)]
pub struct OptedOutMessage<'a> {
    pub key: &'a ConversationKey,
    pub customer_name: Option<&'a str>,
    /// Used if it opens a conversation (it makes no meeting).
    pub conversation_id: &'a str,
    pub desk: &'a str,
    pub message_row: i64,
    /// The message in the experts' thread, marked as from a customer who opted out.
    pub relay: Vec<OutboxEntry>,
    pub now: i64,
}

async fn is_opted_out(db: &mut AnyConnection, key: &ConversationKey) -> Result<bool, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM opt_outs WHERE channel = $1 AND customer = $2 AND business = $3",
    )
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .fetch_one(db)
    .await?;
    Ok(count > 0)
}

/// Puts message `message_row` in conversation `conversation_id`, unless it is in one.
/// Returns whether it did (false: a repeat, kept before).
async fn keep_message(
    tx: &mut AnyConnection,
    message_row: i64,
    conversation_id: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE messages SET conversation_id = $1 WHERE id = $2 AND conversation_id IS NULL",
    )
    .bind(conversation_id)
    .bind(message_row)
    .execute(tx)
    .await?
    .rows_affected()
        == 1)
}

impl Store {
    /// Whether the customer opted out of messages from the business address.
    pub async fn is_opted_out(&self, key: &ConversationKey) -> Result<bool, StoreError> {
        is_opted_out(&mut *self.reader.acquire().await?, key).await
    }

    /// Records a STOP, START or HELP in one transaction: the message goes to the customer's
    /// open conversation (if any); a STOP opts the customer out and cancels every delivery
    /// waiting to go to them (held ones included), a START opts them back in; the answer and
    /// the thread's note are queued.
    /// (One function on purpose, though long: one transaction whose statements read in the
    /// order they run, one per table it touches.)
    pub async fn record_keyword(
        &self,
        keyword: KeywordMessage,
    ) -> Result<KeywordOutcome, StoreError> {
        self.write(async move |tx| {
            let key = &keyword.key;
            let open: Option<String> = sqlx::query_scalar(
                "SELECT id FROM conversations
                 WHERE channel = $1 AND customer = $2 AND business = $3 AND state = 'open'",
            )
            .bind(key.channel.as_str())
            .bind(key.customer.as_str())
            .bind(key.business.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = &open {
                keep_message(tx, keyword.message_row, id).await?;
            }
            let (changed, cancelled) = match keyword.change {
                OptOutChange::Out => {
                    let changed = sqlx::query(
                        "INSERT INTO opt_outs (channel, customer, business, opted_out_at)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (channel, customer, business) DO NOTHING",
                    )
                    .bind(key.channel.as_str())
                    .bind(key.customer.as_str())
                    .bind(key.business.as_str())
                    .bind(keyword.now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    let cancelled = sqlx::query(
                        "UPDATE outbox SET state = 'cancelled', held = 0, leased_until = NULL,
                                           last_error = $1
                         WHERE state = 'pending' AND kind = 'customer_reply' AND EXISTS (
                             -- (Each pending row's conversation looked up: the pending
                             -- rows are few, a business's conversations are not.)
                             SELECT 1 FROM conversations c
                             WHERE c.id = outbox.conversation_id
                               AND c.channel = $2 AND c.business = $4
                               -- To this number, in any conversation of the business
                               -- (an invitation from another customer's too), and rows
                               -- queued before recipients were kept.
                               AND (outbox.recipient = $3
                                    OR outbox.recipient IS NULL AND c.customer = $3))",
                    )
                    .bind(&keyword.cancel_reason)
                    .bind(key.channel.as_str())
                    .bind(key.customer.as_str())
                    .bind(key.business.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    (changed, cancelled)
                }
                OptOutChange::In => {
                    let changed = sqlx::query(
                        "DELETE FROM opt_outs
                         WHERE channel = $1 AND customer = $2 AND business = $3",
                    )
                    .bind(key.channel.as_str())
                    .bind(key.customer.as_str())
                    .bind(key.business.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    (changed, 0)
                }
                OptOutChange::Nothing => (false, 0),
            };
            let opted_out = match keyword.change {
                OptOutChange::Out => true,
                OptOutChange::In => false,
                OptOutChange::Nothing => is_opted_out(tx, key).await?,
            };
            if changed {
                let event = opt_out_changed(opted_out, key);
                record_events(tx, &[event], keyword.now).await?;
            }
            // A STOP while opted out changes nothing and was answered before.
            if changed || keyword.change != OptOutChange::Out {
                let answer = keyword.answer.as_slice();
                insert_outbox(tx, answer, open.as_deref(), keyword.now).await?;
                if let Some(id) = &open {
                    let note = std::slice::from_ref(&keyword.thread_note);
                    insert_outbox(tx, note, Some(id), keyword.now).await?;
                }
            }
            Ok(KeywordOutcome {
                conversation_id: open,
                opted_out,
                changed,
                cancelled,
            })
        })
        .await
    }

    /// Keeps a message from a customer who opted out in their open conversation (opened,
    /// without a meeting, if none is) and queues its relay to the experts, once. Returns
    /// the conversation's id.
    pub async fn keep_opted_out_message(
        &self,
        message: OptedOutMessage<'_>,
    ) -> Result<String, StoreError> {
        let key = message.key.clone();
        let (customer_name, conversation_id, desk) = (
            message.customer_name.map(str::to_string),
            message.conversation_id.to_string(),
            message.desk.to_string(),
        );
        let (message_row, relay, now) = (message.message_row, message.relay, message.now);
        self.write(async move |tx| {
            let opening = Opening {
                key: &key,
                id: &conversation_id,
                customer_name: customer_name.as_deref(),
                desk: &desk,
                now,
            };
            let (id, _) = open_conversation_for(tx, opening, false).await?;
            if keep_message(tx, message_row, &id).await? {
                insert_outbox(tx, &relay, Some(&id), now).await?;
            }
            Ok(id)
        })
        .await
    }
}
