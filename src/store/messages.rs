//! Customer messages and the meetings that answer them: recording a message once, finding
//! its conversation's live meeting, claiming the right to make a new one, storing it with
//! its deliveries, the hourly limit per customer, and delivery receipts.

use crate::domain::{Answer, Redirect};
use std::collections::HashSet;

use futures_util::future::BoxFuture;
use sqlx::AnyConnection;

use super::conversations::{open_conversations, Opening};
use super::engine::{rows_of_placeholders, Backend};
use super::links::insert_links;
use super::outbox::insert_outbox;
use super::{Store, StoreError};
use crate::domain::DeliveryReceipt;
use crate::domain::{ConversationKey, FollowUps, MeetingLinks, OutboxEntry};

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

/// A request's try to become the one that creates a conversation's meeting.
#[derive(Debug, Clone)]
pub struct MeetingClaim {
    pub key: ConversationKey,
    pub claim_id: String,
    /// The subject taken unless an earlier claim that stored no meeting left one.
    pub new_sub: String,
    /// When the request arrived: a broker failure of the holder after it is shared.
    pub arrived_at: i64,
    pub now: i64,
    pub until: i64,
    pub limit: Option<StartLimit>,
    /// The message that needs the meeting; `None` when an expert asked for one.
    pub message: Option<UnansweredMessage>,
}

/// A customer's message waiting for its conversation's meeting.
#[derive(Debug, Clone)]
pub struct UnansweredMessage {
    pub row: i64,
    /// A meeting still valid past this instant answers the message.
    pub valid_after: i64,
    pub follow_ups: FollowUps,
}

/// The outcome of trying to become the one request that creates a conversation's meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request creates the meeting, with this subject: the one an earlier attempt
    /// that stored no meeting asked the broker for, so that a retry gets that meeting
    /// again rather than a second one.
    /// `over_limit` is set, with the oldest start within the window, when the claim could
    /// not reserve a new meeting of the customer's hour (see [`StartLimit`]): the caller
    /// releases the claim.
    Claimed {
        sub: String,
        over_limit: Option<i64>,
    },
    /// The message needs no new meeting after all: this is its answer (the previous
    /// holder's meeting, or what a concurrent delivery of it got).
    Answered(Answer),
    /// Another request is creating it; `failed_at` is set when the last one gave up.
    Busy { failed_at: Option<i64> },
}

/// The customer's (channel and number, any business address) new meetings allowed per
/// window, reserved by the claim that opens one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartLimit {
    pub max: i64,
    pub window_start: i64,
}

/// A meeting the broker just made, to be stored with everything that follows from it.
#[derive(Debug, Clone)]
pub struct NewMeeting {
    pub key: ConversationKey,
    pub customer_name: Option<String>,
    /// Used if this opens a new conversation.
    pub conversation_id: String,
    /// The desk of a new conversation (an open one keeps its own).
    pub desk: String,
    pub meeting_id: String,
    pub sub: String,
    pub links: MeetingLinks,
    pub expires_at: i64,
    /// The message that needed the meeting, answered with it; `None` when an expert asked.
    pub message_row: Option<i64>,
    /// A meeting still valid past this instant makes ours unnecessary (a concurrent
    /// request stored one first).
    pub valid_after: i64,
    /// The claim under which the meeting was made; released with the commit.
    pub claim_id: String,
    /// Side effects to deliver once the meeting is stored.
    pub deliveries: Vec<OutboxEntry>,
    /// The codes handed out for its links (with ICB_PUBLIC_URL), stored with it.
    pub redirects: Vec<Redirect>,
    pub now: i64,
}

/// The outbound message a delivery receipt reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptMatch {
    pub outbox_id: i64,
    pub conversation_id: Option<String>,
    pub kind: String,
    /// The delivery, as queued (its JSON).
    pub payload: String,
    /// A receipt with the same code was received before for this message.
    pub repeated: bool,
}

/// The open conversation's newest meeting whose links work at `now` and are still valid
/// after `valid_after`.
async fn live_meeting(
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

    /// Tries to become the request that creates the conversation's meeting, until
    /// `claim.until`. Succeeds when nobody holds the claim or the holder's claim ran out,
    /// unless the last holder gave up on a broker failure after `arrived_at`: a request that
    /// was waiting for that attempt shares its failure instead of trying again. The claim
    /// keeps the subject of an earlier claim that stored no meeting, or takes `new_sub`.
    ///
    /// A waiting message that a live meeting can answer is answered instead: the previous
    /// holder may have stored its meeting since the message found none.
    ///
    /// With a `limit`, the claim also reserves one of the customer's new meetings, in the
    /// same transaction (the reservation ends with the claim if no meeting is stored).
    pub async fn claim_meeting(&self, claim: MeetingClaim) -> Result<Claim, StoreError> {
        let (backend, now) = (self.backend, claim.now);
        // What the look after the commit needs, on PostgreSQL only (see below).
        let look_after = match (backend, &claim.message) {
            (Backend::Postgres, Some(message)) => {
                Some((claim.key.clone(), claim.claim_id.clone(), message.clone()))
            }
            _ => None,
        };
        let claimed = self
            .batches
            .as_ref()
            .expect("a store handed out by `connect` writes through its batches")
            .claims
            .write(claim)
            .await?;
        // On PostgreSQL the claim is made whether or not a live meeting is there (see the
        // free `claim_meeting`): looked for now, when every earlier commit is visible.
        let (Claim::Claimed { .. }, Some((key, claim_id, message))) = (&claimed, look_after) else {
            return Ok(claimed);
        };
        let live = live_meeting(
            &mut *self.reader.acquire().await?,
            &key,
            now,
            message.valid_after,
        )
        .await?;
        if live.is_none() {
            return Ok(claimed);
        }
        self.write(async move |tx| {
            release_claim(tx, &key, &claim_id, None).await?;
            let answer = answer_waiting(tx, &key, &message, now).await?;
            // Closed meanwhile: the next try claims again.
            Ok(answer.map_or(Claim::Busy { failed_at: None }, Claim::Answered))
        })
        .await
    }

    /// Gives a claim up without a meeting, and the meeting start it reserved;
    /// `failed_at` tells waiters the broker failed.
    pub async fn release_claim(
        &self,
        key: &ConversationKey,
        claim_id: &str,
        failed_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (key, claim_id) = (key.clone(), claim_id.to_string());
        self.write(async move |tx| release_claim(tx, &key, &claim_id, failed_at).await)
            .await
    }

    /// Stores a delivery receipt and updates the outbound message it reports on (found by
    /// `outbox_id`, from the receipt's correlation id, or by Webex Connect's transaction id).
    pub async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
        outbox_id: Option<i64>,
        status: &str,
        payload: &str,
        now: i64,
    ) -> Result<Option<ReceiptMatch>, StoreError> {
        let (receipt, status, payload) = (receipt.clone(), status.to_string(), payload.to_string());
        self.write(async move |tx| {
            let matched: Option<(i64, Option<String>, String, String)> = sqlx::query_as(
                "UPDATE outbox SET delivery_status = $1, delivery_code = $2
                 WHERE id = (SELECT id FROM outbox
                             -- Only customer replies are sent through Webex Connect.
                             WHERE id = $3 OR (upstream_id = $4 AND kind = 'customer_reply')
                             ORDER BY id LIMIT 1)
                 RETURNING id, conversation_id, kind, payload",
            )
            .bind(&status)
            .bind(&receipt.code)
            .bind(outbox_id)
            .bind(&receipt.transid)
            .fetch_optional(&mut *tx)
            .await?;
            let matched = match matched {
                Some((outbox_id, conversation_id, kind, payload)) => {
                    let earlier: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM delivery_receipts
                         WHERE outbox_id = $1 AND code IS NOT DISTINCT FROM $2",
                    )
                    .bind(outbox_id)
                    .bind(&receipt.code)
                    .fetch_one(&mut *tx)
                    .await?;
                    Some(ReceiptMatch {
                        outbox_id,
                        conversation_id,
                        kind,
                        payload,
                        repeated: earlier > 0,
                    })
                }
                None => None,
            };
            sqlx::query(
                "INSERT INTO delivery_receipts (correlation_id, transid, code, status,
                                                channel, outbox_id, payload, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&receipt.correlation_id)
            .bind(&receipt.transid)
            .bind(&receipt.code)
            .bind(&status)
            .bind(&receipt.channel)
            .bind(matched.as_ref().map(|m| m.outbox_id))
            .bind(&payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(matched)
        })
        .await
    }

    /// Queues deliveries on their own.
    pub async fn enqueue(
        &self,
        entries: &[OutboxEntry],
        conversation_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (entries, conversation_id) = (entries.to_vec(), conversation_id.map(str::to_string));
        self.write(async move |tx| {
            insert_outbox(tx, &entries, conversation_id.as_deref(), now).await
        })
        .await
    }
}

/// Claims in one write, one after the other (see [`Store::claim_meeting`]); each one's
/// outcome, in order. Together they share one savepoint instead of one each.
pub(super) fn claim_meetings(
    store: Store,
    claims: Vec<MeetingClaim>,
) -> BoxFuture<'static, Result<Vec<Claim>, StoreError>> {
    let backend = store.backend;
    Box::pin(async move {
        store
            .write(async move |tx| {
                let mut outcomes = Vec::with_capacity(claims.len());
                for claim in claims {
                    outcomes.push(claim_meeting(tx, backend, claim).await?);
                }
                Ok(outcomes)
            })
            .await
    })
}

/// See [`Store::claim_meeting`].
async fn claim_meeting(
    tx: &mut AnyConnection,
    backend: Backend,
    claim: MeetingClaim,
) -> Result<Claim, StoreError> {
    let MeetingClaim { key, claim_id, .. } = &claim;
    let valid_after = claim
        .message
        .as_ref()
        .map_or(i64::MAX, |message| message.valid_after);
    // Only while no live meeting makes the claim unnecessary. On SQLite the claim's own
    // statement looks: one write runs at a time, so it sees whatever was committed before.
    // A PostgreSQL statement that waited for the previous holder's commit judges by what was
    // committed when it began; there the look comes after the commit, on a reader (see
    // `Store::claim_meeting`), which also spares the one writer, PostgreSQL's bottleneck.
    let no_live_meeting = match backend {
        Backend::Sqlite => {
            "NOT EXISTS (
                 SELECT 1 FROM conversations c JOIN meetings t ON t.conversation_id = c.id
                 WHERE c.channel = $1 AND c.customer = $2 AND c.business = $3
                   AND c.state = 'open' AND t.expires_at > $9
                   AND (t.not_before IS NULL OR t.not_before <= $7))"
        }
        Backend::Postgres => "true",
    };
    let claimed: Option<String> = sqlx::query_scalar(&format!(
        "INSERT INTO meeting_claims (channel, customer, business, claim_id, claimed_until, sub)
         SELECT $1, $2, $3, $4, $5, $6 WHERE {no_live_meeting}
         ON CONFLICT (channel, customer, business) DO UPDATE
             SET claim_id = excluded.claim_id,
                 claimed_until = excluded.claimed_until,
                 failed_at = NULL,
                 sub = COALESCE(meeting_claims.sub, excluded.sub)
             WHERE meeting_claims.claimed_until <= $7
               AND (meeting_claims.failed_at IS NULL OR meeting_claims.failed_at < $8)
         RETURNING sub"
    ))
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .bind(claim_id)
    .bind(claim.until)
    .bind(&claim.new_sub)
    .bind(claim.now)
    .bind(claim.arrived_at)
    .bind(valid_after)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(sub) = claimed {
        let over_limit = match claim.limit {
            Some(limit) => reserve_start(tx, backend, key, claim_id, limit, claim.now).await?,
            None => None,
        };
        return Ok(Claim::Claimed { sub, over_limit });
    }
    // Not claimed on SQLite: perhaps the live meeting is there.
    if let (Some(message), Backend::Sqlite) = (&claim.message, backend) {
        if let Some(answer) = answer_waiting(tx, key, message, claim.now).await? {
            return Ok(Claim::Answered(answer));
        }
    }
    let failed_at = sqlx::query_scalar(
        "SELECT failed_at FROM meeting_claims
         WHERE channel = $1 AND customer = $2 AND business = $3",
    )
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    Ok(Claim::Busy { failed_at })
}

/// See [`Store::answer_waiting`].
async fn answer_waiting(
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

/// Gives a claim up without a meeting, and the meeting start it reserved.
async fn release_claim(
    tx: &mut AnyConnection,
    key: &ConversationKey,
    claim_id: &str,
    failed_at: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE meeting_claims SET claimed_until = 0, failed_at = $1
         WHERE channel = $2 AND customer = $3 AND business = $4 AND claim_id = $5",
    )
    .bind(failed_at)
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .bind(claim_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM meeting_starts WHERE claim_id = $1")
        .bind(claim_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Reserves one of the customer's new meetings of the window for the claim `claim_id`:
/// `None` when reserved, or the oldest start within the window when the limit is reached.
/// On PostgreSQL concurrent reservations for one customer wait for each other (the upsert
/// on `meeting_limit_locks` locks the customer's row until the commit), so that together
/// they never pass the limit; SQLite runs one write transaction at a time anyway.
async fn reserve_start(
    tx: &mut AnyConnection,
    backend: Backend,
    key: &ConversationKey,
    claim_id: &str,
    limit: StartLimit,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let (channel, customer) = (key.channel.as_str(), key.customer.as_str());
    if backend == Backend::Postgres {
        sqlx::query(
            "INSERT INTO meeting_limit_locks (channel, customer) VALUES ($1, $2)
             ON CONFLICT (channel, customer) DO UPDATE SET channel = excluded.channel",
        )
        .bind(channel)
        .bind(customer)
        .execute(&mut *tx)
        .await?;
    }
    let (started, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(started_at) FROM meeting_starts
         WHERE channel = $1 AND customer = $2 AND started_at > $3",
    )
    .bind(channel)
    .bind(customer)
    .bind(limit.window_start)
    .fetch_one(&mut *tx)
    .await?;
    if started >= limit.max {
        return Ok(Some(oldest.unwrap_or(now)));
    }
    sqlx::query(
        "INSERT INTO meeting_starts (channel, customer, claim_id, started_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(channel)
    .bind(customer)
    .bind(claim_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(None)
}

/// New meetings stored in one write at most.
pub(super) const MAX_MEETINGS: usize = 64;

/// Stores `jobs` in one write (see [`Store::store_meeting`]); each one's answer, in order.
pub(super) fn store_meetings(
    store: Store,
    jobs: Vec<NewMeeting>,
) -> BoxFuture<'static, Result<Vec<Answer>, StoreError>> {
    Box::pin(async move {
        store
            .write(async move |tx| write_meetings(tx, jobs).await)
            .await
    })
}

/// One statement per step for all of `jobs` when each is for a conversation of its own (as
/// their claims make them); otherwise one at a time.
async fn write_meetings(
    tx: &mut AnyConnection,
    jobs: Vec<NewMeeting>,
) -> Result<Vec<Answer>, StoreError> {
    let keys: HashSet<&ConversationKey> = jobs.iter().map(|job| &job.key).collect();
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
            key: &job.key,
            id: &job.conversation_id,
            customer_name: job.customer_name.as_deref(),
            desk: &job.desk,
            now: job.now,
        })
        .collect();
    let conversations = open_conversations(tx, &openings, true).await?;
    let inserted = insert_meetings(tx, jobs, &conversations).await?;
    let mut answers = Vec::with_capacity(jobs.len());
    for (job, (conversation_id, desk)) in jobs.iter().zip(conversations) {
        answers.push(if inserted.contains(job.meeting_id.as_str()) {
            Answer {
                conversation_id,
                meeting_id: job.meeting_id.clone(),
                guest_url: job.links.guest_url.to_string(),
                host_url: job.links.host_url.to_string(),
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
                job.meeting_id.as_str(),
                &job.links,
                &job.redirects[..],
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
    super::outbox::insert_outbox_rows(tx, &deliveries).await?;
    answer_messages(tx, jobs, &answers).await?;
    end_claims(tx, jobs).await?;
    Ok(answers)
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
            .bind(&job.meeting_id)
            .bind(conversation_id)
            .bind(&job.sub)
            .bind(job.links.host_url.as_str())
            .bind(job.links.guest_url.as_str())
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
        .bind(&job.claim_id)
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

/// The messages that needed the meetings, answered with them (unless answered already).
async fn answer_messages(
    tx: &mut AnyConnection,
    jobs: &[NewMeeting],
    answers: &[Answer],
) -> Result<(), StoreError> {
    let answered: Vec<_> = jobs
        .iter()
        .zip(answers)
        .filter_map(|(job, answer)| Some((job.message_row?, answer)))
        .collect();
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
    for (message_row, answer) in answered {
        query = query
            .bind(message_row)
            .bind(&answer.conversation_id)
            .bind(&answer.meeting_id)
            .bind(i64::from(answer.opened_meeting));
    }
    query.execute(tx).await?;
    Ok(())
}

/// The claims end, with the subjects they kept (also when a later claimant of a claim that
/// ran out took the subject over: it is used now).
async fn end_claims(tx: &mut AnyConnection, jobs: &[NewMeeting]) -> Result<(), StoreError> {
    // Row values, so that each claim is found by its key, not every claim looked through.
    let sql = format!(
        "WITH v AS (VALUES {})
         DELETE FROM meeting_claims
         WHERE (channel, customer, business, claim_id)
                   IN (SELECT column1, column2, column3, column4 FROM v)
            OR (channel, customer, business, sub)
                   IN (SELECT column1, column2, column3, column5 FROM v)",
        rows_of_placeholders(jobs.len(), 5, 1)
    );
    let mut query = sqlx::query(&sql);
    for job in jobs {
        query = query
            .bind(job.key.channel.as_str())
            .bind(job.key.customer.as_str())
            .bind(job.key.business.as_str())
            .bind(&job.claim_id)
            .bind(&job.sub);
    }
    query.execute(tx).await?;
    Ok(())
}
