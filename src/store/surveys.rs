//! The rating asked of a customer after their conversation is closed: the question, asked
//! with the close, and the answer, recorded once.

use crate::domain::RatingRecord;
use sqlx::AnyConnection;

use super::conversation_events;
use super::events::record_events;
use super::outbox::insert_outbox;
use super::{Store, StoreError};
use crate::domain::{ConversationKey, MessageId, OutboxEntry};

/// The question to a customer whose conversation is being closed.
#[derive(Debug, Clone)]
pub struct NewSurvey {
    /// The question, to the customer.
    pub question: OutboxEntry,
}

/// The newest survey of a customer (channel, number and business address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestSurvey {
    pub conversation_id: String,
    /// The desk of its conversation (`None`: the default desk's).
    pub desk: Option<String>,
    /// The rating, once answered, and the id the answering message had (if it had one).
    pub answered: Option<(i64, Option<String>)>,
    /// Whether the customer has an open conversation now: a digit they send there is
    /// part of it, not an answer.
    pub customer_busy: bool,
}

/// A customer's answer to their survey, with what it causes.
#[derive(Debug, Clone)]
pub struct Rating {
    pub conversation_id: String,
    /// The customer's message, kept in the closed conversation's transcript.
    pub message_row: i64,
    pub rating: i64,
    /// The thanks to the customer (when icbridge sends replies) and the note in the thread.
    pub deliveries: Vec<OutboxEntry>,
    pub now: i64,
}

/// What became of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatingOutcome {
    Recorded,
    /// This message answered it before (a repeat delivered concurrently).
    AlreadyRecorded,
    /// Another message answered it first: this one is a message like any other.
    AnsweredByAnother,
}

#[derive(sqlx::FromRow)]
struct LatestRow {
    conversation_id: String,
    desk: Option<String>,
    rating: Option<i64>,
    answered_at: Option<i64>,
    answer_external_id: Option<String>,
    open_conversations: i64,
}

/// Asks `survey` of the customer of conversation `id`, closed in this transaction, unless
/// they opted out: the survey row and its question are written together. Returns whether
/// it was asked.
pub(super) async fn ask(
    tx: &mut AnyConnection,
    id: &str,
    survey: &NewSurvey,
    now: i64,
) -> Result<bool, StoreError> {
    let asked = sqlx::query(
        "INSERT INTO surveys (conversation_id, asked_at)
         SELECT c.id, $1 FROM conversations c
         WHERE c.id = $2
           AND NOT EXISTS (SELECT 1 FROM opt_outs o
                           WHERE o.channel = c.channel AND o.customer = c.customer
                             AND o.business = c.business)
         ON CONFLICT (conversation_id) DO NOTHING",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if asked {
        insert_outbox(tx, std::slice::from_ref(&survey.question), Some(id), now).await?;
    }
    Ok(asked)
}

impl Store {
    /// Open conversations whose newest meeting's links ran out in `(since, now]` with no
    /// message (the customer's or an expert's) since: their consultation is over.
    pub async fn conversations_of_ended_meetings(
        &self,
        since: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT e.id FROM (
                 SELECT c.id, (SELECT MAX(m.expires_at) FROM meetings m
                               WHERE m.conversation_id = c.id) AS ended_at
                 FROM conversations c WHERE c.state = 'open') e
             WHERE e.ended_at > $1 AND e.ended_at <= $2
               AND NOT EXISTS (SELECT 1 FROM messages g
                               WHERE g.conversation_id = e.id AND g.received_at > e.ended_at)
             ORDER BY e.ended_at LIMIT $3",
        )
        .bind(since)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The customer's newest survey asked after `asked_after`, answered or not.
    pub async fn latest_survey(
        &self,
        key: &ConversationKey,
        asked_after: i64,
    ) -> Result<Option<LatestSurvey>, StoreError> {
        let row: Option<LatestRow> = sqlx::query_as(
            "SELECT s.conversation_id, c.desk, s.rating, s.answered_at,
                    m.external_id AS answer_external_id,
                    (SELECT COUNT(*) FROM conversations o
                     WHERE o.channel = c.channel AND o.customer = c.customer
                       AND o.business = c.business AND o.state = 'open') AS open_conversations
             FROM surveys s
             JOIN conversations c ON c.id = s.conversation_id
             LEFT JOIN messages m ON m.id = s.answer_message_id
             WHERE c.channel = $1 AND c.customer = $2 AND c.business = $3 AND s.asked_at > $4
             ORDER BY s.asked_at DESC LIMIT 1",
        )
        .bind(key.channel.as_str())
        .bind(key.customer.as_str())
        .bind(key.business.as_str())
        .bind(asked_after)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|row| LatestSurvey {
            conversation_id: row.conversation_id,
            desk: row.desk,
            answered: row
                .answered_at
                .and(row.rating)
                .map(|rating| (rating, row.answer_external_id)),
            customer_busy: row.open_conversations > 0,
        }))
    }

    /// Records a customer's rating, once: the survey is answered, the message goes to the
    /// closed conversation's transcript, and the thanks and the thread's note are queued,
    /// in one transaction.
    pub async fn record_rating(&self, rating: Rating) -> Result<RatingOutcome, StoreError> {
        self.write(async move |tx| {
            let answered = sqlx::query(
                "UPDATE surveys SET rating = $1, answered_at = $2, answer_message_id = $3
                 WHERE conversation_id = $4 AND answered_at IS NULL",
            )
            .bind(rating.rating)
            .bind(rating.now)
            .bind(rating.message_row)
            .bind(&rating.conversation_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !answered {
                let by: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT answer_message_id FROM surveys WHERE conversation_id = $1",
                )
                .bind(&rating.conversation_id)
                .fetch_optional(&mut *tx)
                .await?;
                return Ok(if by.flatten() == Some(rating.message_row) {
                    RatingOutcome::AlreadyRecorded
                } else {
                    RatingOutcome::AnsweredByAnother
                });
            }
            sqlx::query(
                "UPDATE messages SET conversation_id = $1
                 WHERE id = $2 AND conversation_id IS NULL",
            )
            .bind(&rating.conversation_id)
            .bind(rating.message_row)
            .execute(&mut *tx)
            .await?;
            let id = Some(rating.conversation_id.as_str());
            insert_outbox(tx, &rating.deliveries, id, rating.now).await?;
            let event =
                conversation_events::rating_received(tx, &rating.conversation_id, rating.rating)
                    .await?;
            record_events(tx, &[event], rating.now).await?;
            Ok(RatingOutcome::Recorded)
        })
        .await
    }

    /// The newest `limit` ratings.
    pub async fn ratings(&self, limit: i64) -> Result<Vec<RatingRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT s.conversation_id, c.channel, c.customer, c.desk, s.rating, s.asked_at,
                    s.answered_at
             FROM surveys s JOIN conversations c ON c.id = s.conversation_id
             WHERE s.answered_at IS NOT NULL
             ORDER BY s.answered_at DESC, s.conversation_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
}

/// Whether a survey answered by the message with id `answered_by` was answered by `message`
/// (a repeat of it): only messages with ids can be told apart.
pub fn same_message(answered_by: Option<&str>, message: Option<&MessageId>) -> bool {
    matches!((answered_by, message), (Some(by), Some(id)) if by == id.as_str())
}
