//! Customers' messages' answers (the meeting of a row of `messages`): the answer a message
//! got, a conversation's live meeting (the answer it gives now), and answering a waiting message with its conversation's live meeting, its
//! follow-ups queued with the answer.

use sqlx::AnyConnection;

use super::engine::rows_of_placeholders;
use super::outbox::insert_outbox;
use super::{Store, StoreError};
use crate::domain::{Answer, ConversationKey, FollowUps};

/// An [`Answer`] as selected: `opened_meeting` is a 0/1 integer on both databases.
#[derive(sqlx::FromRow)]
pub(super) struct AnswerRow {
    conversation_id: String,
    meeting_id: String,
    guest_url: String,
    host_url: String,
    expires_at: i64,
    opened_meeting: i64,
    desk: Option<String>,
}

impl From<AnswerRow> for Answer {
    fn from(row: AnswerRow) -> Self {
        Answer {
            conversation_id: row.conversation_id,
            meeting_id: row.meeting_id,
            guest_url: row.guest_url,
            host_url: row.host_url,
            expires_at: row.expires_at,
            opened_meeting: row.opened_meeting != 0,
            desk: row.desk,
        }
    }
}

/// A customer's message waiting for its conversation's meeting.
#[derive(Debug, Clone)]
pub struct UnansweredMessage {
    pub row: i64,
    /// A meeting still valid past this instant answers the message.
    pub valid_after: i64,
    pub follow_ups: FollowUps,
}

/// The answer a message got, if it got one.
pub(super) async fn answer_of(
    db: &mut AnyConnection,
    message_row: i64,
) -> Result<Option<Answer>, StoreError> {
    let answer: Option<AnswerRow> = sqlx::query_as(
        "SELECT m.conversation_id, m.meeting_id, t.guest_url, t.host_url, t.expires_at,
                m.opened_meeting,
                (SELECT c.desk FROM conversations c WHERE c.id = m.conversation_id) AS desk
         FROM messages m JOIN meetings t ON t.id = m.meeting_id
         WHERE m.id = $1",
    )
    .bind(message_row)
    .fetch_optional(db)
    .await?;
    Ok(answer.map(Answer::from))
}

/// Records a message's answer, unless it has one already. Returns whether it was recorded.
async fn answer_message(
    tx: &mut AnyConnection,
    message_row: i64,
    answer: &Answer,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE messages SET conversation_id = $1, meeting_id = $2, opened_meeting = $3
         WHERE id = $4 AND meeting_id IS NULL",
    )
    .bind(&answer.conversation_id)
    .bind(&answer.meeting_id)
    .bind(i64::from(answer.opened_meeting))
    .bind(message_row)
    .execute(tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The open conversation's newest meeting whose links work at `now` and are still valid
/// after `valid_after`.
pub(super) async fn live_meeting(
    db: &mut AnyConnection,
    key: &ConversationKey,
    now: i64,
    valid_after: i64,
) -> Result<Option<Answer>, StoreError> {
    let live: Option<AnswerRow> = sqlx::query_as(
        "SELECT c.id AS conversation_id, t.id AS meeting_id, t.guest_url, t.host_url,
                t.expires_at, 0 AS opened_meeting, c.desk
         FROM conversations c JOIN meetings t ON t.conversation_id = c.id
         WHERE c.channel = $1 AND c.customer = $2 AND c.business = $3 AND c.state = 'open'
           AND t.expires_at > $4 AND (t.not_before IS NULL OR t.not_before <= $5)
         ORDER BY t.expires_at DESC LIMIT 1",
    )
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .bind(valid_after)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(live.map(Answer::from))
}

impl Store {
    /// The answer a waiting message can get without a new meeting: the one a concurrent
    /// delivery of it got, or the conversation's live meeting, with the message's
    /// follow-ups (queued only if this answers it).
    pub async fn answer_waiting(
        &self,
        key: &ConversationKey,
        message: &UnansweredMessage,
        now: i64,
    ) -> Result<Option<Answer>, StoreError> {
        let (key, message) = (key.clone(), message.clone());
        self.write(async move |tx| answer_waiting(tx, &key, &message, now).await)
            .await
    }

    /// Answers a message with an existing meeting, queueing its `follow_ups`, unless a
    /// concurrent delivery of the same message was answered first: then that first answer
    /// is returned and kept, and nothing is queued.
    pub async fn answer_with(
        &self,
        message_row: i64,
        key: &ConversationKey,
        answer: &Answer,
        follow_ups: &FollowUps,
        now: i64,
    ) -> Result<Answer, StoreError> {
        let (key, answer, follow_ups) = (key.clone(), answer.clone(), follow_ups.clone());
        self.write(async move |tx| {
            answer_with(tx, message_row, &key, answer, &follow_ups, now).await
        })
        .await
    }
}

/// See [`Store::answer_waiting`].
pub(super) async fn answer_waiting(
    tx: &mut AnyConnection,
    key: &ConversationKey,
    message: &UnansweredMessage,
    now: i64,
) -> Result<Option<Answer>, StoreError> {
    if let Some(answer) = answer_of(tx, message.row).await? {
        return Ok(Some(answer));
    }
    let Some(live) = live_meeting(tx, key, now, message.valid_after).await? else {
        return Ok(None);
    };
    let answer = answer_with(tx, message.row, key, live, &message.follow_ups, now).await?;
    Ok(Some(answer))
}

/// See [`Store::answer_with`].
async fn answer_with(
    tx: &mut AnyConnection,
    message_row: i64,
    key: &ConversationKey,
    answer: Answer,
    follow_ups: &FollowUps,
    now: i64,
) -> Result<Answer, StoreError> {
    if answer_message(tx, message_row, &answer).await? {
        let entries = follow_ups.entries(key, &answer.guest_url, answer.desk.as_deref());
        insert_outbox(tx, &entries, Some(&answer.conversation_id), now).await?;
        return Ok(answer);
    }
    Ok(answer_of(tx, message_row).await?.unwrap_or(answer))
}

/// The messages that needed the meetings (their rows), answered with them (unless
/// answered already).
pub(super) async fn answer_messages(
    tx: &mut AnyConnection,
    answered: &[(i64, &Answer)],
) -> Result<(), StoreError> {
    if answered.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE messages SET conversation_id = v.column2, meeting_id = v.column3,
                             opened_meeting = v.column4
         FROM (VALUES {}) AS v WHERE messages.id = v.column1 AND messages.meeting_id IS NULL",
        rows_of_placeholders(answered.len(), 4, 1)
    );
    let mut query = sqlx::query(&sql);
    for (message_row, answer) in answered.iter().copied() {
        query = query
            .bind(message_row)
            .bind(&answer.conversation_id)
            .bind(&answer.meeting_id)
            .bind(i64::from(answer.opened_meeting));
    }
    query.execute(tx).await?;
    Ok(())
}
