//! Conversations as the experts see them: by thread, open ones, closing, expert replies.

use crate::domain::AuditEntry;
use crate::domain::{Conversation, TakeOutcome};
use std::collections::HashMap;

use sqlx::AnyConnection;

use super::audit::insert_audit;
use super::conversation_events;
use super::engine::rows_of_placeholders;
use super::events::record_events;
use super::outbox::insert_outbox;
use super::surveys::{self, NewSurvey};
use super::{key_of, Key, Store, StoreError};
use crate::domain::events::EventType;
use crate::domain::{
    BusinessAddress, Channel, ConversationKey, CustomerAddress, ExpertFile, OutboxEntry,
};

/// An expert's reply, relayed to the customer.
#[derive(Debug)]
pub struct ExpertMessage<'a> {
    pub conversation: &'a Conversation,
    /// The Webex message id.
    pub message_id: &'a str,
    pub text: &'a str,
    pub author_email: Option<&'a str>,
    /// The files it carried (named in `text`).
    pub files: &'a [ExpertFile],
    /// Whether it goes to the customer (`message.sent`), or is only kept in the transcript
    /// (they opted out).
    pub to_customer: bool,
}

pub(super) const SELECT: &str = "SELECT c.id, c.channel, c.customer, c.business, c.customer_name,
        c.state, c.thread_message_id, c.created_at, c.closed_at, c.closed_by, c.assignee, c.desk,
        c.waiting_since,
        (SELECT MAX(t.expires_at) FROM meetings t WHERE t.conversation_id = c.id) AS links_expire_at,
        (SELECT s.rating FROM surveys s WHERE s.conversation_id = c.id) AS rating
    FROM conversations c";

/// A conversation as [`SELECT`] reads it (also from JSON, in the console's queue).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct ConversationRow {
    id: String,
    channel: String,
    customer: String,
    business: String,
    customer_name: Option<String>,
    state: String,
    thread_message_id: Option<String>,
    created_at: i64,
    closed_at: Option<i64>,
    closed_by: Option<String>,
    links_expire_at: Option<i64>,
    assignee: Option<String>,
    desk: Option<String>,
    waiting_since: Option<i64>,
    rating: Option<i64>,
}

impl TryFrom<ConversationRow> for Conversation {
    type Error = StoreError;

    fn try_from(row: ConversationRow) -> Result<Self, StoreError> {
        let channel = Channel::parse(&row.channel).ok_or_else(|| {
            StoreError::Corrupt(format!("conversation channel {:?}", row.channel))
        })?;
        Ok(Conversation {
            id: row.id,
            key: ConversationKey {
                channel,
                customer: CustomerAddress::from_stored(row.customer),
                business: BusinessAddress::from_stored(row.business),
            },
            customer_name: row.customer_name,
            open: row.state == "open",
            closed_at: row.closed_at,
            closed_by: row.closed_by,
            thread_message_id: row.thread_message_id,
            created_at: row.created_at,
            links_expire_at: row.links_expire_at,
            assignee: row.assignee,
            desk: row.desk,
            waiting_since: row.waiting_since,
            rating: row.rating,
        })
    }
}

/// Runs `update`, a change of conversation `id` that applies only in the state it expects,
/// and when it changed the conversation queues `deliveries` in the same transaction.
/// Returns whether it did.
pub(super) async fn change_conversation<'q>(
    tx: &mut AnyConnection,
    update: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    id: &str,
    deliveries: &[OutboxEntry],
    now: i64,
) -> Result<bool, StoreError> {
    let changed = update.execute(&mut *tx).await?.rows_affected() == 1;
    if changed {
        insert_outbox(tx, deliveries, Some(id), now).await?;
    }
    Ok(changed)
}

/// A conversation to open for a customer unless one is open.
pub(super) struct Opening<'a> {
    pub key: &'a ConversationKey,
    /// Used if it opens a new conversation.
    pub id: &'a str,
    pub customer_name: Option<&'a str>,
    pub desk: &'a str,
    pub now: i64,
}

/// The customer's open conversation, opened as `opening` says if none is: its id and desk.
/// With `meeting_made`, an open one that waited for its desk to open waits no more.
pub(super) async fn open_conversation_for(
    tx: &mut AnyConnection,
    opening: Opening<'_>,
    meeting_made: bool,
) -> Result<(String, Option<String>), StoreError> {
    let mut opened = open_conversations(tx, &[opening], meeting_made).await?;
    Ok(opened.remove(0))
}

/// [`open_conversation_for`] for the conversations of several customers (each key once),
/// in one statement; in the openings' order.
pub(super) async fn open_conversations(
    tx: &mut AnyConnection,
    openings: &[Opening<'_>],
    meeting_made: bool,
) -> Result<Vec<(String, Option<String>)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Opened {
        id: String,
        desk: Option<String>,
        channel: String,
        customer: String,
        business: String,
    }
    let on_conflict = if meeting_made {
        "DO UPDATE SET waiting_since = NULL"
    } else {
        // A no-op, so that RETURNING gives the open conversation.
        "DO UPDATE SET channel = conversations.channel"
    };
    let sql = format!(
        "INSERT INTO conversations (id, channel, customer, business, customer_name, created_at,
                                    desk)
         VALUES {}
         ON CONFLICT (channel, customer, business) WHERE state = 'open' {on_conflict}
         RETURNING id, desk, channel, customer, business",
        rows_of_placeholders(openings.len(), 7, 1)
    );
    let mut query = sqlx::query_as::<_, Opened>(&sql);
    for opening in openings {
        let key = opening.key;
        query = query
            .bind(opening.id)
            .bind(key.channel.as_str())
            .bind(key.customer.as_str())
            .bind(key.business.as_str())
            .bind(opening.customer_name)
            .bind(opening.now)
            .bind(opening.desk);
    }
    let mut opened: HashMap<Key, (String, Option<String>)> = query
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|row| {
            (
                (row.channel, row.customer, row.business),
                (row.id, row.desk),
            )
        })
        .collect();
    openings
        .iter()
        .map(|opening| {
            opened
                .remove(&key_of(opening.key))
                .ok_or_else(|| StoreError::Corrupt("a conversation was not opened".into()))
        })
        .collect()
}

pub(super) fn conversations(rows: Vec<ConversationRow>) -> Result<Vec<Conversation>, StoreError> {
    rows.into_iter().map(Conversation::try_from).collect()
}

impl Store {
    /// Moves an open conversation to `desk`, queuing `deliveries` (the note in the old
    /// thread, the new desk's notification, which opens a new thread). False when the
    /// conversation is not open.
    pub async fn transfer_conversation(
        &self,
        id: &str,
        desk: &str,
        deliveries: &[OutboxEntry],
        audit: AuditEntry,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (id, desk, deliveries) = (id.to_string(), desk.to_string(), deliveries.to_vec());
        self.write(async move |tx| {
            let from_desk = conversation_events::desk_of(tx, &id).await?;
            let update = sqlx::query(
                // The other desk is told now: the conversation waits for no opening.
                "UPDATE conversations SET desk = $1, thread_message_id = NULL,
                                          waiting_since = NULL
                 WHERE id = $2 AND state = 'open'",
            )
            .bind(&desk)
            .bind(&id);
            let moved = change_conversation(tx, update, &id, &deliveries, now).await?;
            if moved {
                insert_audit(tx, &audit).await?;
                let event = conversation_events::transferred(&id, from_desk.as_deref(), &desk);
                record_events(tx, &[event], now).await?;
            }
            Ok(moved)
        })
        .await
    }

    /// Makes `who` the conversation's assignee if nobody is, queuing `notice` with it. Of
    /// two experts taking at once, exactly one wins (the update checks and sets in one
    /// statement, on both databases).
    pub async fn take_conversation(
        &self,
        id: &str,
        who: &str,
        notice: &[OutboxEntry],
        now: i64,
    ) -> Result<TakeOutcome, StoreError> {
        let (id, who, notice) = (id.to_string(), who.to_string(), notice.to_vec());
        self.write(async move |tx| {
            let update = sqlx::query(
                "UPDATE conversations SET assignee = $1, assigned_at = $2
                 WHERE id = $3 AND state = 'open' AND assignee IS NULL",
            )
            .bind(&who)
            .bind(now)
            .bind(&id);
            if change_conversation(tx, update, &id, &notice, now).await? {
                let event =
                    conversation_events::assignment(tx, EventType::ConversationAssigned, &id, &who)
                        .await?;
                record_events(tx, &[event], now).await?;
                return Ok(TakeOutcome::Taken);
            }
            let found: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT state, assignee FROM conversations WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
            Ok(match found {
                None => TakeOutcome::Unknown,
                Some((_, Some(assignee))) if assignee == who => TakeOutcome::AlreadyYours,
                Some((_, Some(assignee))) => TakeOutcome::TakenBy(assignee),
                Some(_) => TakeOutcome::Closed,
            })
        })
        .await
    }

    /// Clears the assignee if it is `who`, queuing `notice`; returns whether it was.
    pub async fn release_conversation(
        &self,
        id: &str,
        who: &str,
        notice: &[OutboxEntry],
        now: i64,
    ) -> Result<bool, StoreError> {
        let (id, who, notice) = (id.to_string(), who.to_string(), notice.to_vec());
        self.write(async move |tx| {
            let update = sqlx::query(
                "UPDATE conversations SET assignee = NULL, assigned_at = NULL
                 WHERE id = $1 AND assignee = $2",
            )
            .bind(&id)
            .bind(&who);
            let released = change_conversation(tx, update, &id, &notice, now).await?;
            if released {
                let event =
                    conversation_events::assignment(tx, EventType::ConversationReleased, &id, &who)
                        .await?;
                record_events(tx, &[event], now).await?;
            }
            Ok(released)
        })
        .await
    }

    /// When the customer of a conversation last wrote (in any of their conversations on
    /// the same channel and business address): WhatsApp's 24-hour window runs from then.
    /// When the customer of conversation `conversation_id` last wrote to its business
    /// number, or, given a `recipient` (another number, e.g. a guest's), when that one did:
    /// WhatsApp's 24-hour window is each recipient's own.
    pub async fn last_customer_message_at(
        &self,
        conversation_id: &str,
        recipient: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        // Their messages are found through their conversations (a message's number is its
        // conversation's), and those outside any (a STOP) by number: no index of the
        // messages by number is kept for this alone.
        Ok(sqlx::query_scalar(
            "SELECT MAX(at) FROM (
                 SELECT m.received_at AS at FROM conversations c
                 JOIN conversations theirs
                   ON theirs.customer = COALESCE($2, c.customer)
                  AND theirs.channel = c.channel AND theirs.business = c.business
                 JOIN messages m ON m.conversation_id = theirs.id
                 WHERE c.id = $1 AND m.author = 'customer'
                 UNION ALL
                 SELECT m.received_at FROM conversations c
                 JOIN messages m
                   ON m.conversation_id IS NULL AND m.customer = COALESCE($2, c.customer)
                  AND m.channel = c.channel AND m.business = c.business
                 WHERE c.id = $1 AND m.author = 'customer') AS written",
        )
        .bind(conversation_id)
        .bind(recipient)
        .fetch_one(&self.reader)
        .await?)
    }

    pub async fn conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let row: Option<ConversationRow> = sqlx::query_as(&format!("{SELECT} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(Conversation::try_from).transpose()
    }

    /// The conversation a Webex message of the bot's is about: the message that opened
    /// its thread, or one of its expert notifications.
    pub async fn conversation_by_webex_message(
        &self,
        message_id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        let row: Option<ConversationRow> = sqlx::query_as(&format!(
            "{SELECT} WHERE c.thread_message_id = $1
                 OR c.id = (SELECT o.conversation_id FROM outbox o
                            -- Spelled out: the index covers only this kind.
                            WHERE o.upstream_id = $2 AND o.kind = 'expert_notification'
                            LIMIT 1)
             LIMIT 1"
        ))
        .bind(message_id)
        .bind(message_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(Conversation::try_from).transpose()
    }

    /// The customer's open conversation with the business, if there is one.
    pub async fn open_conversation(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<Conversation>, StoreError> {
        let row: Option<ConversationRow> = sqlx::query_as(&format!(
            "{SELECT} WHERE c.channel = $1 AND c.customer = $2 AND c.business = $3
                 AND c.state = 'open'"
        ))
        .bind(key.channel.as_str())
        .bind(key.customer.as_str())
        .bind(key.business.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(Conversation::try_from).transpose()
    }

    /// Open conversations, oldest first.
    pub async fn open_conversations(&self, limit: i64) -> Result<Vec<Conversation>, StoreError> {
        conversations(
            sqlx::query_as(&format!(
                "{SELECT} WHERE c.state = 'open' ORDER BY c.created_at, c.id LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?,
        )
    }

    /// Closes an open conversation, queueing `deliveries` and writing `audit` with it, and
    /// asking `survey` of its customer unless they opted out (see `surveys::ask`).
    /// Returns false when it was not open (already closed, or unknown).
    pub async fn close_conversation(
        &self,
        id: &str,
        closed_by: &str,
        deliveries: &[OutboxEntry],
        survey: Option<NewSurvey>,
        audit: AuditEntry,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (id, closed_by, deliveries) =
            (id.to_string(), closed_by.to_string(), deliveries.to_vec());
        self.write(async move |tx| {
            let update = sqlx::query(
                "UPDATE conversations SET state = 'closed', closed_at = $1, closed_by = $2
                 WHERE id = $3 AND state = 'open'",
            )
            .bind(now)
            .bind(&closed_by)
            .bind(&id);
            let closed = change_conversation(tx, update, &id, &deliveries, now).await?;
            if closed {
                insert_audit(tx, &audit).await?;
                let event = conversation_events::closed(tx, &id).await?;
                record_events(tx, &[event], now).await?;
                if let Some(survey) = &survey {
                    surveys::ask(tx, &id, survey, now).await?;
                }
            }
            Ok(closed)
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
        let (key, conversation_id, desk) = (
            message.conversation.key.clone(),
            message.conversation.id.clone(),
            message.conversation.desk.clone(),
        );
        let (message_id, text) = (message.message_id.to_string(), message.text.to_string());
        let to_customer = message.to_customer;
        let (author_email, files, deliveries) = (
            message.author_email.map(str::to_string),
            message.files.to_vec(),
            deliveries.to_vec(),
        );
        self.write(async move |tx| {
            let row: Option<i64> = sqlx::query_scalar(
                "INSERT INTO messages (channel, customer, business, external_id, body,
                                       received_at, conversation_id, author, author_email)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'expert', $8)
                 ON CONFLICT (channel, customer, business, external_id)
                     WHERE external_id IS NOT NULL DO NOTHING
                 RETURNING id",
            )
            .bind(key.channel.as_str())
            .bind(key.customer.as_str())
            .bind(key.business.as_str())
            .bind(&message_id)
            .bind(&text)
            .bind(now)
            .bind(&conversation_id)
            .bind(&author_email)
            .fetch_optional(&mut *tx)
            .await?;
            let inserted = row.is_some();
            if inserted {
                insert_outbox(tx, &deliveries, Some(&conversation_id), now).await?;
            }
            if let (Some(row), true) = (row, to_customer) {
                let event = conversation_events::message_sent(
                    &conversation_id,
                    desk.as_deref(),
                    key.customer.as_str(),
                    key.channel.as_str(),
                    row,
                    &text,
                    &files,
                );
                record_events(tx, &[event], now).await?;
            }
            Ok(inserted)
        })
        .await
    }
}
