//! Meetings (`meetings`): the broker's new meetings stored with everything that follows from them (their conversation, links, deliveries,
//! the answers to the messages that asked for them, the end of their claims), in batches
//! (see [`super::engine`]).

use std::collections::HashSet;

use sqlx::AnyConnection;

use super::answers::{answer_messages, AnswerRow};
use super::claims::end_claims;
use super::conversations::{open_conversations, Opening};
use super::engine::rows_of_placeholders;
use super::events::{
    conversation_opened, meeting_created, messages_received, record_events, unattached,
};
use super::links::insert_links;
use super::outbox::insert_outbox_rows;
use super::{Store, StoreError};
use crate::domain::events::NewEvent;
use crate::domain::{Answer, ConversationKey, MadeMeeting, OutboxEntry};

/// A meeting the broker just made, to be stored with everything that follows from it.
#[derive(Debug, Clone)]
pub struct NewMeeting {
    pub meeting: MadeMeeting,
    pub expires_at: i64,
    /// The message that needed the meeting, answered with it; `None` when an expert asked.
    pub message_row: Option<i64>,
    /// A meeting still valid past this instant makes ours unnecessary (a concurrent
    /// request stored one first).
    pub valid_after: i64,
    /// Side effects to deliver once the meeting is stored.
    pub deliveries: Vec<OutboxEntry>,
    pub now: i64,
}

impl Store {
    /// Stores a new meeting in one transaction with its conversation (opened if none is
    /// open; one that waited for its desk to open waits no more), the answer to the message
    /// that asked for it, and its outbox deliveries.
    ///
    /// If a concurrent request stored a live meeting for the conversation first, that one is
    /// kept and returned instead, so a conversation never has two live meetings.
    pub async fn store_meeting(&self, new: NewMeeting) -> Result<Answer, StoreError> {
        self.batches
            .as_ref()
            .expect("a store handed out by `connect` writes through its batches")
            .meetings
            .write(new)
            .await
    }
}

/// New meetings stored in one write at most.
pub(super) const MAX_MEETINGS: usize = 64;

/// Stores `jobs` in one write (see [`Store::store_meeting`]); each one's answer, in order.
pub(super) async fn store_meetings(
    store: Store,
    jobs: Vec<NewMeeting>,
) -> Result<Vec<Answer>, StoreError> {
    store
        .write(async move |tx| write_meetings(tx, jobs).await)
        .await
}

/// One statement per step for all of `jobs` when each is for a conversation of its own (as
/// their claims make them); otherwise one at a time.
async fn write_meetings(
    tx: &mut AnyConnection,
    jobs: Vec<NewMeeting>,
) -> Result<Vec<Answer>, StoreError> {
    let keys: HashSet<&ConversationKey> = jobs.iter().map(|job| &job.meeting.key).collect();
    if keys.len() == jobs.len() {
        return write_meeting_batch(tx, &jobs).await;
    }
    let mut answers = Vec::with_capacity(jobs.len());
    for job in &jobs {
        answers.extend(write_meeting_batch(tx, std::slice::from_ref(job)).await?);
    }
    Ok(answers)
}

/// Stores meetings of distinct conversations: each in its open conversation (opened if
/// none is), unless that conversation has a live meeting already, which is kept and
/// answered with; then their links, their deliveries, their messages' answers, and the end
/// of their claims.
async fn write_meeting_batch(
    tx: &mut AnyConnection,
    jobs: &[NewMeeting],
) -> Result<Vec<Answer>, StoreError> {
    let openings: Vec<_> = jobs
        .iter()
        .map(|job| Opening {
            key: &job.meeting.key,
            id: &job.meeting.conversation_id,
            customer_name: job.meeting.customer_name.as_deref(),
            desk: &job.meeting.desk,
            now: job.now,
        })
        .collect();
    let conversations = open_conversations(tx, &openings, true).await?;
    let inserted = insert_meetings(tx, jobs, &conversations).await?;
    let mut answers = Vec::with_capacity(jobs.len());
    for (job, (conversation_id, desk)) in jobs.iter().zip(conversations) {
        answers.push(if inserted.contains(job.meeting.meeting_id.as_str()) {
            Answer {
                conversation_id,
                meeting_id: job.meeting.meeting_id.clone(),
                guest_url: job.meeting.links.guest_url.to_string(),
                host_url: job.meeting.links.host_url.to_string(),
                expires_at: job.expires_at,
                opened_meeting: true,
                desk,
            }
        } else {
            kept_meeting(tx, job, &conversation_id, desk).await?
        });
    }
    let stored: Vec<_> = jobs
        .iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.opened_meeting)
        .collect();
    let links: Vec<_> = stored
        .iter()
        .map(|(job, _)| {
            (
                job.meeting.meeting_id.as_str(),
                &job.meeting.links,
                &job.meeting.redirects[..],
                job.now,
            )
        })
        .collect();
    insert_links(tx, &links).await?;
    let deliveries: Vec<_> = stored
        .iter()
        .flat_map(|(job, answer)| {
            job.deliveries
                .iter()
                .map(|entry| (entry, Some(answer.conversation_id.as_str()), job.now))
        })
        .collect();
    insert_outbox_rows(tx, &deliveries).await?;
    let answered: Vec<_> = jobs
        .iter()
        .zip(&answers)
        .filter_map(|(job, answer)| Some((job.message_row?, answer)))
        .collect();
    let message_rows: Vec<i64> = answered.iter().map(|(row, _)| *row).collect();
    let newly_attached = unattached(tx, &message_rows).await?;
    answer_messages(tx, &answered).await?;
    let made: Vec<&MadeMeeting> = jobs.iter().map(|job| &job.meeting).collect();
    end_claims(tx, &made).await?;
    let events = meeting_events(tx, jobs, &answers, &newly_attached).await?;
    record_events(
        tx,
        &events,
        jobs.iter().map(|job| job.now).max().unwrap_or(0),
    )
    .await?;
    Ok(answers)
}

/// What the systems of record hear of new meetings: each conversation opened, the message
/// that opened it, and the meeting (in that order, per conversation).
async fn meeting_events(
    tx: &mut AnyConnection,
    jobs: &[NewMeeting],
    answers: &[Answer],
    newly_attached: &[i64],
) -> Result<Vec<NewEvent>, StoreError> {
    let mut events: Vec<NewEvent> = jobs
        .iter()
        .zip(answers)
        .filter(|(job, answer)| answer.conversation_id == job.meeting.conversation_id)
        .map(|(job, answer)| {
            conversation_opened(
                &answer.conversation_id,
                &job.meeting.key,
                answer.desk.as_deref(),
            )
        })
        .collect();
    events.extend(messages_received(tx, newly_attached).await?);
    events.extend(
        jobs.iter()
            .zip(answers)
            .filter(|(_, answer)| answer.opened_meeting)
            .map(|(job, answer)| {
                meeting_created(
                    &answer.conversation_id,
                    answer.desk.as_deref(),
                    &answer.meeting_id,
                    &job.meeting.links,
                    job.expires_at,
                )
            }),
    );
    Ok(events)
}

/// Inserts the meetings of conversations that have no meeting valid past the job's
/// `valid_after`; returns the ids of those inserted.
async fn insert_meetings(
    tx: &mut AnyConnection,
    jobs: &[NewMeeting],
    conversations: &[(String, Option<String>)],
) -> Result<HashSet<String>, StoreError> {
    let sql = format!(
        "INSERT INTO meetings (id, conversation_id, sub, host_url, guest_url, expires_at,
                               created_at)
         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7
         FROM (VALUES {}) AS v
         WHERE NOT EXISTS (SELECT 1 FROM meetings m
                           WHERE m.conversation_id = v.column2 AND m.expires_at > v.column8)
         RETURNING id",
        rows_of_placeholders(jobs.len(), 8, 1)
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for (job, (conversation_id, _)) in jobs.iter().zip(conversations) {
        query = query
            .bind(&job.meeting.meeting_id)
            .bind(conversation_id)
            .bind(&job.meeting.sub)
            .bind(job.meeting.links.host_url.as_str())
            .bind(job.meeting.links.guest_url.as_str())
            .bind(job.expires_at)
            .bind(job.now)
            .bind(job.valid_after);
    }
    Ok(query.fetch_all(tx).await?.into_iter().collect())
}

/// Only after a claim ran out (its holder crashed or stalled) can another request have
/// stored a live meeting first: that one is the answer, and the customer opened none after
/// all (the start the claim reserved is given back).
async fn kept_meeting(
    tx: &mut AnyConnection,
    job: &NewMeeting,
    conversation_id: &str,
    desk: Option<String>,
) -> Result<Answer, StoreError> {
    sqlx::query("DELETE FROM meeting_starts WHERE claim_id = $1")
        .bind(&job.meeting.claim_id)
        .execute(&mut *tx)
        .await?;
    let kept: AnswerRow = sqlx::query_as(
        "SELECT conversation_id, id AS meeting_id, guest_url, host_url, expires_at,
                0 AS opened_meeting, NULL AS desk
         FROM meetings WHERE conversation_id = $1 AND expires_at > $2
         ORDER BY expires_at DESC LIMIT 1",
    )
    .bind(conversation_id)
    .bind(job.valid_after)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Answer {
        desk,
        ..kept.into()
    })
}
