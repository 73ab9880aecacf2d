//! Recording customers' messages, in batches (see [`super::engine`]): the messages of
//! concurrent requests are written together, with one statement per step for all of them.

use crate::domain::Answer;
use std::collections::HashMap;

use sqlx::AnyConnection;

use super::answers::{answer_of, AnswerRow};
use super::engine::rows_of_placeholders;
use super::{key_of, Key, Store, StoreError};
use crate::domain::{Channel, FollowUps, InboundMessage};

/// Messages written in one transaction at most; well within both databases' limits on
/// parameters per statement.
pub(super) const MAX_BATCH: usize = 64;

/// What recording a message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// First time this message is seen; it is answered with its conversation's live
    /// meeting, and its follow-up deliveries are queued.
    Answered(Answer),
    /// First time this message is seen; its conversation has no live meeting.
    New { message_row: i64 },
    /// The sender sent this message before; `answer` is what it got, if it got one.
    Repeat {
        message_row: i64,
        answer: Option<Answer>,
    },
}

/// A message waiting to be recorded.
#[derive(Clone)]
pub(super) struct Job {
    message: InboundMessage,
    valid_after: i64,
    follow_ups: FollowUps,
    now: i64,
}

/// A conversation's live meeting, with its key.
#[derive(sqlx::FromRow)]
struct LiveRow {
    channel: String,
    customer: String,
    business: String,
    #[sqlx(flatten)]
    answer: AnswerRow,
}

/// A message row as its insert or lookup returns it.
#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    channel: String,
    customer: String,
    business: String,
    external_id: Option<String>,
}

impl Store {
    /// Stores a customer's message, once per (channel, customer, business address, message
    /// id), and answers it with its conversation's live meeting (valid after
    /// `valid_after`) if there is one: then its `follow_ups` are queued in the same
    /// transaction. A repeated message writes nothing.
    pub async fn record_message(
        &self,
        message: &InboundMessage,
        valid_after: i64,
        follow_ups: &FollowUps,
        now: i64,
    ) -> Result<Recorded, StoreError> {
        let job = Job {
            message: message.clone(),
            valid_after,
            follow_ups: follow_ups.clone(),
            now,
        };
        let recorded = self
            .batches
            .as_ref()
            .expect("a store handed out by `connect` writes through its batches")
            .messages
            .write(job)
            .await?;
        match recorded {
            Some(recorded) => Ok(recorded),
            None => self.repeated(message).await,
        }
    }

    /// What a repeated message finds: the stored message (committed before) and its answer.
    async fn repeated(&self, message: &InboundMessage) -> Result<Recorded, StoreError> {
        let key = &message.key;
        let message_row: i64 = sqlx::query_scalar(
            "SELECT id FROM messages
             WHERE channel = $1 AND customer = $2 AND business = $3 AND external_id = $4",
        )
        .bind(key.channel.as_str())
        .bind(key.customer.as_str())
        .bind(key.business.as_str())
        .bind(message.message_id.as_ref().map(|id| id.as_str()))
        .fetch_one(&self.reader)
        .await?;
        Ok(Recorded::Repeat {
            message_row,
            answer: answer_of(&mut *self.reader.acquire().await?, message_row).await?,
        })
    }
}

/// Records `jobs` as one write: their conversations' live meetings, the messages and the
/// follow-ups of those answered (`None` for a repeat).
pub(super) async fn record_batch(
    store: Store,
    jobs: Vec<Job>,
) -> Result<Vec<Option<Recorded>>, StoreError> {
    store.write(async move |tx| record(tx, jobs).await).await
}

async fn record(
    tx: &mut AnyConnection,
    jobs: Vec<Job>,
) -> Result<Vec<Option<Recorded>>, StoreError> {
    let live = live_meetings(tx, &jobs).await?;
    let answers: Vec<Option<Answer>> = jobs
        .iter()
        .map(|job| {
            live.get(&key_of(&job.message.key))
                .filter(|live| live.expires_at > job.valid_after)
                .cloned()
        })
        .collect();
    let inserted = insert_messages(tx, &jobs, &answers).await?;
    release_held(tx, &jobs, &inserted).await?;
    // Messages stored with their conversation's live meeting are in it from now on (their
    // event built from what was just written, not read back).
    let received: Vec<_> = jobs
        .iter()
        .zip(&answers)
        .zip(&inserted)
        .filter_map(|((job, answer), row)| {
            let (answer, row) = (answer.as_ref()?, (*row)?);
            let (key, message) = (&job.message.key, &job.message);
            Some(super::events::message_received(
                row,
                &answer.conversation_id,
                answer.desk.as_deref(),
                (key.channel.as_str(), key.customer.as_str()),
                &message.text,
                message.media.to_stored().as_deref(),
            ))
        })
        .collect();
    let now = jobs.iter().map(|job| job.now).max().unwrap_or(0);
    super::events::record_events(tx, &received, now).await?;
    let mut deliveries = Vec::new();
    let recorded = jobs
        .iter()
        .zip(answers)
        .zip(inserted)
        .map(|((job, answer), row)| match (row, answer) {
            (Some(message_row), None) => Some(Recorded::New { message_row }),
            (Some(_), Some(live)) => {
                for entry in
                    job.follow_ups
                        .entries(&job.message.key, &live.guest_url, live.desk.as_deref())
                {
                    deliveries.push((entry, live.conversation_id.clone(), job.now));
                }
                Some(Recorded::Answered(live))
            }
            (None, _) => None,
        })
        .collect();
    let rows: Vec<_> = deliveries
        .iter()
        .map(|(entry, conversation_id, now)| (entry, Some(conversation_id.as_str()), *now))
        .collect();
    super::outbox::insert_outbox_rows(tx, &rows).await?;
    Ok(recorded)
}

/// The live meeting of each conversation of `jobs` (the newest of its open conversation,
/// valid after the earliest `valid_after` among them), by key.
async fn live_meetings(
    tx: &mut AnyConnection,
    jobs: &[Job],
) -> Result<HashMap<Key, Answer>, StoreError> {
    let valid_after = jobs.iter().map(|job| job.valid_after).min().unwrap_or(0);
    let now = jobs.iter().map(|job| job.now).min().unwrap_or(0);
    let sql = format!(
        "SELECT c.channel, c.customer, c.business, c.id AS conversation_id, t.id AS meeting_id,
                t.guest_url, t.host_url, t.expires_at, 0 AS opened_meeting, c.desk
         -- From the keys, so that the open conversations are found by their index, not
         -- all of them looked through.
         FROM (VALUES {}) AS k
         JOIN conversations c ON c.channel = k.column1 AND c.customer = k.column2
                             AND c.business = k.column3
         JOIN meetings t ON t.conversation_id = c.id
         WHERE c.state = 'open' AND t.expires_at > $1
           -- A booked consultation's meeting before its links work answers nothing: the
           -- message takes the slow path, which names the slot.
           AND (t.not_before IS NULL OR t.not_before <= $2)
           -- A customer who opted out gets no answer: their message takes the slow path.
           AND NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.channel = c.channel
                           AND o.customer = c.customer AND o.business = c.business)",
        rows_of_placeholders(jobs.len(), 3, 3)
    );
    let mut query = sqlx::query_as::<_, LiveRow>(&sql)
        .bind(valid_after)
        .bind(now);
    for job in jobs {
        let key = &job.message.key;
        query = query
            .bind(key.channel.as_str())
            .bind(key.customer.as_str())
            .bind(key.business.as_str());
    }
    let mut live: HashMap<Key, Answer> = HashMap::new();
    for row in query.fetch_all(tx).await? {
        let answer = Answer::from(row.answer);
        let newest = live
            .get(&(
                row.channel.clone(),
                row.customer.clone(),
                row.business.clone(),
            ))
            .is_none_or(|known| known.expires_at < answer.expires_at);
        if newest {
            live.insert((row.channel, row.customer, row.business), answer);
        }
    }
    Ok(live)
}

/// A customer who writes opens their WhatsApp window again: what was held for them is due
/// now, before what their message queues (the held rows are older).
async fn release_held(
    tx: &mut AnyConnection,
    jobs: &[Job],
    inserted: &[Option<i64>],
) -> Result<(), StoreError> {
    let writers: Vec<&Job> = jobs
        .iter()
        .zip(inserted)
        .filter(|(job, row)| row.is_some() && job.message.key.channel == Channel::Whatsapp)
        .map(|(job, _)| job)
        .collect();
    let Some(now) = writers.iter().map(|job| job.now).min() else {
        return Ok(());
    };
    let sql = format!(
        "UPDATE outbox SET held = 0, next_attempt_at = $1, last_error = NULL
         WHERE held = 1 AND conversation_id IN (
             -- From the keys, as in `live_meetings`: SQLite would look through every
             -- conversation for `(channel, customer, business) IN (VALUES …)`.
             SELECT c.id FROM (VALUES {}) AS k
             JOIN conversations c ON c.channel = k.column1 AND c.customer = k.column2
                                 AND c.business = k.column3)",
        rows_of_placeholders(writers.len(), 3, 2)
    );
    let mut query = sqlx::query(&sql).bind(now);
    for job in writers {
        let key = &job.message.key;
        query = query
            .bind(key.channel.as_str())
            .bind(key.customer.as_str())
            .bind(key.business.as_str());
    }
    query.execute(tx).await?;
    Ok(())
}

/// Inserts the messages; returns each one's row, or `None` for a repeat of a stored one.
async fn insert_messages(
    tx: &mut AnyConnection,
    jobs: &[Job],
    answers: &[Option<Answer>],
) -> Result<Vec<Option<i64>>, StoreError> {
    let sql = format!(
        "INSERT INTO messages (channel, customer, business, external_id, body, received_at,
                               conversation_id, meeting_id, media)
         VALUES {}
         ON CONFLICT (channel, customer, business, external_id)
             WHERE external_id IS NOT NULL DO NOTHING
         RETURNING id, channel, customer, business, external_id",
        rows_of_placeholders(jobs.len(), 9, 1)
    );
    let mut query = sqlx::query_as::<_, MessageRow>(&sql);
    for (job, answer) in jobs.iter().zip(answers) {
        let (message, key) = (&job.message, &job.message.key);
        query = query
            .bind(key.channel.as_str())
            .bind(key.customer.as_str())
            .bind(key.business.as_str())
            .bind(message.message_id.as_ref().map(|id| id.as_str()))
            .bind(&message.text)
            .bind(job.now)
            .bind(answer.as_ref().map(|a| a.conversation_id.as_str()))
            .bind(answer.as_ref().map(|a| a.meeting_id.as_str()))
            .bind(message.media.to_stored());
    }
    let mut rows = query.fetch_all(tx).await?;
    // Rows come back in the order they were inserted, which is the order of `jobs`; a
    // message whose id was stored before (or earlier in the batch) is not among them.
    rows.sort_by_key(|row| row.id);
    let mut rows = rows.into_iter().peekable();
    Ok(jobs
        .iter()
        .map(|job| {
            let key = key_of(&job.message.key);
            let external_id = job.message.message_id.as_ref().map(|id| id.as_str());
            let matches = rows.peek().is_some_and(|row| {
                (&row.channel, &row.customer, &row.business) == (&key.0, &key.1, &key.2)
                    && row.external_id.as_deref() == external_id
            });
            matches.then(|| rows.next().map(|row| row.id)).flatten()
        })
        .collect())
}
